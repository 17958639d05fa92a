#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (needs uv: pip install uv). Versions
# already locked are kept unless pyproject.toml rules them out; --upgrade moves all.
#   requirements/runtime.txt   what `bootstrap.sh serve` installs: the service only
#   requirements/test.txt      + test, data and bench extras: what `bootstrap.sh test` installs
#   requirements/dev.txt       + ruff, mypy, pip-audit: what CI and developers install
# Each is constrained by the one before, so the three agree on every shared package.
set -euo pipefail
cd "$(dirname "$0")/.."
compile() { uv pip compile pyproject.toml --quiet --python-version 3.11 --generate-hashes --no-header \
              --index-url https://pypi.org/simple "$@"; }
compile -o requirements/runtime.txt "$@"
compile --extra test --extra data --extra bench -c requirements/runtime.txt -o requirements/test.txt "$@"
compile --extra test --extra data --extra bench --extra dev -c requirements/test.txt -o requirements/dev.txt "$@"
