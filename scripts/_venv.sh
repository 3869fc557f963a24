# Sourced by run.sh and test.sh: a virtualenv in .venv with the project and its test extras.
# pip runs only when pyproject.toml changed since the last install (a stamp in .venv), so a second
# run starts at once; its output goes to .venv/pip-install.log, progress lines to the terminal.
PYTHON=${PYTHON:-python3}
progress() { printf '%s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  progress "setup: creating the virtualenv .venv ($("$PYTHON" --version 2>&1))"
  "$PYTHON" -m venv .venv
fi
VENV_STAMP=.venv/.sessionpack-installed
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1) $(.venv/bin/python -c 'import sys; print(sys.version)' | head -1)"
if [ "$(cat "$VENV_STAMP" 2>/dev/null)" = "$wanted" ] && [ -x .venv/bin/sessionpack ]; then
  progress "setup: .venv is up to date with pyproject.toml (no install needed)"
else
  progress "setup: installing sessionpack and its dependencies into .venv (a minute or two the first time; log: .venv/pip-install.log)"
  rm -f "$VENV_STAMP"
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "installing sessionpack into .venv failed (log above)" >&2
    exit 1
  fi
  printf '%s\n' "$wanted" > "$VENV_STAMP"
  progress "setup: installed"
fi
