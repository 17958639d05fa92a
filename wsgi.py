"""gunicorn entry point: ``gunicorn --preload wsgi:app``."""

import gc
import os

# Before anything loads an OpenMP runtime: a worker serves one request at a time, and GNU
# OpenMP cannot start a thread team in a process forked after its parent had one (a
# worker loading a new model version through LightGBM hung on its first parallel region).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from app import create_app  # noqa: E402  (the environment above must come first)

app = create_app()
# The index holds millions of long-lived objects. Freezing them before gunicorn forks keeps
# the cyclic GC from walking them on every full collection, and from writing to (and so
# copying) the pages the workers share with the master.
gc.freeze()
