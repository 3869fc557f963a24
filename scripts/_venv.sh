# Sourced by run.sh and test.sh: a virtualenv in .venv with the project and its test extras.
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" > .venv/pip-install.log 2>&1; then
  cat .venv/pip-install.log >&2
  echo "installing sessionpack into .venv failed (log above)" >&2
  exit 1
fi
