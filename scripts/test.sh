#!/usr/bin/env bash
# Set up and run the whole test suite: a virtualenv with the project and its test extras,
# PostgreSQL and Redis answering on loopback (started when they are not), Chromium and its
# driver for the browser tests and Node.js for the frontend example (installed when missing), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -q` (the unit tier: no server).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh

# The integration suites need real servers (and Chromium for the browser tests): start or install
# what is missing. The unit tier (tests/unit) needs none of it: when only it is asked for,
# nothing is started or installed.
unit_paths=0
other_args=0
option_value=0
for arg in "$@"; do
  if [ "$option_value" = 1 ]; then option_value=0; continue; fi
  case "$arg" in
    -p | -k | -m | -o | -c | --deselect | --ignore | --rootdir | --durations) option_value=1 ;;
    -*) ;;
    tests/unit | tests/unit/*) unit_paths=$((unit_paths + 1)) ;;
    *) other_args=$((other_args + 1)) ;;
  esac
done
if [ "$unit_paths" -eq 0 ] || [ "$other_args" -gt 0 ]; then
  .venv/bin/python - <<'PY'
from tests.servers import ensure_postgres, ensure_redis
ensure_postgres()
ensure_redis()
PY

  # The browser tests drive Debian's Chromium through its chromedriver (Selenium); install both
  # when missing (CI runs as root; elsewhere through sudo).
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi

  # The frontend example (examples/, tests/integration/test_node_example.py) runs on Node.js with npm.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
fi

exec .venv/bin/python -m pytest "$@"
