#!/usr/bin/env bash
# One entry point for a fresh machine with Python 3.11:
#   bash scripts/bootstrap.sh serve   # set up, make data and a model if missing, serve on 127.0.0.1:8000
#   bash scripts/bootstrap.sh test    # set up, then run the test suite (-m "not slow": the quick tier)
#   bash scripts/bootstrap.sh lint    # ruff and mypy, as CI runs them
# Setup is a virtualenv in .venv with one of the hashed lock files under requirements/
# (generated from pyproject.toml by scripts/lock.sh): serve installs the runtime set only,
# test adds the test tools, CI adds lint and types (dev). An install is skipped when its
# lock file has not changed since it was last installed.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; return 1
}

setup() {
  local set="${1:-runtime}"
  if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
  fi
  local lock="requirements/$set.txt" stamp=".venv/.lock-$set.sha256"
  if ! sha256sum --status -c "$stamp" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r "$lock"
    sha256sum "$lock" > "$stamp"
  fi
  # Browser libraries for the two web pages (Leaflet, Chart.js), pinned by app/web/package-lock.json.
  local web_stamp=app/web/node_modules/.lock.sha256
  if command -v npm >/dev/null 2>&1; then
    if ! sha256sum --status -c "$web_stamp" 2>/dev/null; then
      npm ci --prefix app/web --no-audit --no-fund --loglevel=error
      sha256sum app/web/package-lock.json > "$web_stamp"
    fi
  else
    echo "npm not found: the map widget and dashboard pages need it (their browser tests will skip)" >&2
  fi
}

browser() {
  # CI runs the browser tests in Debian's Chromium; elsewhere they skip when it is missing.
  if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 ||
        echo "could not install chromium: browser tests will skip" >&2
    fi
  fi
}

prepare() {
  # The bundled catalogue is committed; behaviour data and a first model are made here
  # (seeded; about 2 minutes once), so a fresh clone serves personalised deals at once.
  if [ ! -f data/generated/helsinki/deals.csv ]; then
    .venv/bin/python -m scripts.data.generate_behaviour
  fi
  # A model in this code's artifact format (an older one is refused at load).
  if ! .venv/bin/python -c "import sys; from recommender.artifact import current_versions as c; sys.exit(not c('artifacts'))"; then
    .venv/bin/python -m scripts.train
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  serve)
    setup runtime
    prepare
    exec .venv/bin/gunicorn --preload --workers "${WORKERS:-2}" --bind "127.0.0.1:${PORT:-8000}" \
      --access-logfile - wsgi:app "$@"
    ;;
  test)
    setup test
    browser
    exec .venv/bin/python -m pytest "$@"
    ;;
  lint)
    # ruff (lint and format) and mypy, configured in pyproject.toml; any finding fails.
    setup dev
    .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
    ;;
  setup)
    setup "${1:-runtime}"   # runtime | test | dev
    ;;
  *)
    echo "usage: bash scripts/bootstrap.sh serve|test|lint|setup [args...]" >&2; exit 2
    ;;
esac
