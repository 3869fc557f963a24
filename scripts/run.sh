#!/usr/bin/env bash
# Set up and run sessionpack on the embedded defaults (SQLite under ./var, a broker that needs
# no server): a virtualenv, the schema, then the end-to-end demo of a session package's life.
# Pass `worker` to start the worker in the foreground instead of the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/sessionpack migrate >/dev/null

if [ "${1:-demo}" = "worker" ]; then
  exec .venv/bin/celery -A worker worker --loglevel=INFO --concurrency=2 -E
fi
exec .venv/bin/sessionpack demo
