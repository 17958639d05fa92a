"""gunicorn settings read from the project root (`gunicorn wsgi:app` finds this file).

Metrics: prometheus-client's multiprocess mode needs its directory in the environment
before the app imports the library, empty at start-up, and each dead worker marked.
Shutdown: a worker stopping (SIGTERM, a restart, max-requests) writes its buffered
impressions before it exits.
Errors: what gunicorn refuses itself (a request line over 4094 bytes, say) is answered
as problem+json too (``app.http.gunicorn_errors``).
"""

import os
import shutil
import tempfile

_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
    tempfile.gettempdir(), f"o2o-metrics-{os.getpid()}"
)
shutil.rmtree(_metrics_dir, ignore_errors=True)
os.makedirs(_metrics_dir, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

graceful_timeout = 20
# Access lines as JSON too, with the request id the app answered with (X-Request-ID).
access_log_format = (
    '{"ts":"%(t)s","request_id":"%({x-request-id}o)s","method":"%(m)s","path":"%(U)s",'
    '"status":%(s)s,"ms":%(M)s,"bytes":"%(B)s"}'
)


def post_worker_init(worker):
    # In the worker, once the app is loaded: the config file runs before wsgi.py sets up
    # the environment, so it imports nothing of the app itself.
    from app.http.gunicorn_errors import install

    install()


def worker_exit(server, worker):
    from app.storage.impressions import ImpressionLog

    ImpressionLog.flush_all()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
