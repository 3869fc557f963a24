#!/usr/bin/env bash
# Set up and run sessionpack on the embedded defaults (SQLite under ./var, a broker that needs
# no server): a virtualenv and the schema, then the demo (a 3-session package booked, one
# session cancelled, one rescheduled, with a summary), then the worker in the foreground.
# SKIP_DEMO=1 starts the worker straight away.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh
.venv/bin/sessionpack migrate >/dev/null

if [ "${SKIP_DEMO:-0}" != "1" ]; then
  .venv/bin/sessionpack demo
fi

cat >&2 <<TXT

sessionpack's worker is starting on the embedded defaults (./var); Ctrl-C stops it.
In another shell, try:
  . .venv/bin/activate
  sessionpack slots demo/package-3 --from $(date -u -d '+2 days' +%F) --to $(date -u -d '+9 days' +%F)
  sessionpack activity --limit 10
  sessionpack doctor
TXT
exec .venv/bin/celery -A worker worker --loglevel=INFO --concurrency=2 -E
