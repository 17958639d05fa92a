"""gunicorn entry point: ``gunicorn --preload wsgi:app``."""
from app import create_app

app = create_app()
