#!/usr/bin/env bash
# Set up and run the whole test suite: a virtualenv with the project and its test extras,
# PostgreSQL and Redis answering on loopback (started when they are not), Chromium and its
# driver for the browser tests and Node.js for the frontend example (installed when missing), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -q`.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh

# The integration suites need real servers; start the ones that are not answering.
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

exec .venv/bin/python -m pytest "$@"
