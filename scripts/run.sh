#!/usr/bin/env bash
# Set up and run sessionpack on the embedded defaults (SQLite under ./var, a broker that needs
# no server): a virtualenv and the schema; a local Stripe test server (localstripe) when
# STRIPE_API_KEY is not set; the web process (customer pages on $PORT, default 8000), the worker
# and beat, together; then the demo (a 3-session package booked, one session cancelled, one
# rescheduled, with a summary and the customer's manage link to open in a browser).
# SKIP_DEMO=1 skips the demo. Ctrl-C stops everything this script started.
# The screen gets progress lines, the demo's summary and what to try next, last; the details go
# to $VAR/log/ (each process's output, the demo's booking object as JSON).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh
progress "setup: database schema (sessionpack migrate)"
.venv/bin/sessionpack migrate >/dev/null

export PORT=${PORT:-8000}
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://localhost:$PORT}
VAR=${SESSIONPACK_VAR_DIR:-var}
mkdir -p "$VAR/log"

pids=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start() {  # start NAME COMMAND...: a background process logging to $VAR/log/NAME.log
  # In its own session: a Ctrl-C reaches this script only, which then stops each process in
  # order (a worker's pool is not signalled behind its back).
  local name=$1; shift
  progress "starting $name (log: $VAR/log/$name.log)"
  setsid "$@" >"$VAR/log/$name.log" 2>&1 &
  pids+=($!)
}

if [ -z "${STRIPE_API_KEY:-}" ]; then
  stripe_port=$(.venv/bin/python -c 'from services.devtools.localstripe import free_port; print(free_port())')
  start localstripe .venv/bin/localstripe --port "$stripe_port" --from-scratch
  export STRIPE_API_KEY=sk_test_sessionpack_local STRIPE_API_BASE=http://127.0.0.1:$stripe_port
  for _ in $(seq 100); do
    curl -fs -X DELETE "$STRIPE_API_BASE/_config/data" >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

start web .venv/bin/uvicorn --factory web.app:create_app --host 127.0.0.1 --port "$PORT"
start worker .venv/bin/celery -A worker worker --loglevel=INFO --concurrency=2 -E
start beat .venv/bin/celery -A worker beat --loglevel=INFO --schedule="$VAR/celerybeat-schedule"

for _ in $(seq 150); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "the web process did not start; see $VAR/log/web.log" >&2; exit 1; }

if [ "${SKIP_DEMO:-0}" != "1" ]; then
  progress "running the demo (its booking object: $VAR/log/demo.json)"
  .venv/bin/sessionpack demo >"$VAR/log/demo.json"
fi

cat >&2 <<TXT

sessionpack is running on the embedded defaults ($VAR); Ctrl-C stops it.
  customer pages:  $PUBLIC_BASE_URL/manage/<token>  (open the manage link above, or one from $VAR/outbox/*.eml)
  web process:     http://127.0.0.1:$PORT   (log: $VAR/log/web.log)
  worker and beat: logs in $VAR/log/worker.log and $VAR/log/beat.log
  payments:        ${STRIPE_API_BASE:-Stripe}
In another shell, try:
  . .venv/bin/activate
  sessionpack slots demo/package-3 --from $(date -u -d '+2 days' +%F) --to $(date -u -d '+9 days' +%F)
  sessionpack book examples/request-demo.json --first-free --wait 60   # book the demo page yourself
  sessionpack activity --limit 10
  sessionpack doctor
The CLI, the configuration file, the booking request and the booking object: docs/.
TXT
wait -n "${pids[@]}" || true
echo "a process stopped; see $VAR/log/ — stopping the others" >&2
