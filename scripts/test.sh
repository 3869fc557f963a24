#!/usr/bin/env bash
# Set up and run the whole test suite: a virtualenv with the project and its test extras,
# PostgreSQL and Redis answering on loopback (started when they are not), then pytest.
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

exec .venv/bin/python -m pytest "$@"
