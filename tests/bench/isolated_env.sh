#!/usr/bin/env bash
# Create (once) an isolated virtual environment for a reference simulator and print its python.
#
# Usage: isolated_env.sh VENV MODULE PIP_SPEC...
#   VENV      the environment's folder (ignored by git through its own .gitignore)
#   MODULE    imported to check that an existing environment works
#   PIP_SPEC  what pip installs into a new one
# Called by brian2_env.sh and nest_env.sh.
set -euo pipefail
VENV="$1"; MODULE="$2"; shift 2
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import $MODULE" >/dev/null 2>&1; then
  echo "creating the $MODULE benchmark environment in $VENV" >&2
  "$PY" -m venv "$VENV"
  printf '*\n' > "$VENV/.gitignore"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "$@" >&2
fi
echo "$VENV/bin/python"
