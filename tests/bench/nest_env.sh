#!/usr/bin/env bash
# Create (once) the isolated NEST 3 environment used by tests/bench/bench_cuba.py.
#
# NEST 3 ships manylinux wheels ("nest-simulator" on the package index, e.g.
# nest_simulator-3.10.0 for CPython 3.11).  It lives in its own venv so that
# its NumPy and compiled extensions never touch the workbench environment:
#   .bench-venv-nest/  (repository root; ignored by git through its own .gitignore)
#
# Usage:  tests/bench/nest_env.sh            # create if missing, print the python path
#         NEST_VENV=/path tests/bench/nest_env.sh
# bench_cuba.py calls this only when SPIKEWB_BENCH_NEST=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${NEST_VENV:-$ROOT/.bench-venv-nest}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import nest" >/dev/null 2>&1; then
  echo "creating NEST benchmark environment in $VENV" >&2
  "$PY" -m venv "$VENV"
  printf '*\n' > "$VENV/.gitignore"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "nest-simulator==3.*" numpy >&2
fi
echo "$VENV/bin/python"
