"""gunicorn entry point: ``gunicorn --preload wsgi:app``."""

import gc

from app import create_app

app = create_app()
# The index holds millions of long-lived objects. Freezing them before gunicorn forks keeps
# the cyclic GC from walking them on every full collection, and from writing to (and so
# copying) the pages the workers share with the master.
gc.freeze()
