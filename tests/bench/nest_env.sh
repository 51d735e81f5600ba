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
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
exec bash "$HERE/isolated_env.sh" "${NEST_VENV:-$ROOT/.bench-venv-nest}" nest "nest-simulator==3.*" numpy
