#!/usr/bin/env bash
# Set up and run sessionpack on the embedded defaults (SQLite under ./var, a broker that needs
# no server): a virtualenv, the schema, the example configuration, then the worker in the
# foreground. Book from another shell (see the README's tour).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh
.venv/bin/sessionpack migrate >/dev/null

.venv/bin/sessionpack config apply tests/fixtures/example_config.json >/dev/null
echo "sessionpack is running on the embedded defaults (./var). In another shell:" >&2
echo "  . .venv/bin/activate && sessionpack slots dana/consult-10 --from $(date -u -d '+7 days' +%F) --to $(date -u -d '+30 days' +%F)" >&2
exec .venv/bin/celery -A worker worker --loglevel=INFO --concurrency=2 -E
