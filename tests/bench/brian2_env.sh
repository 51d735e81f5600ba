#!/usr/bin/env bash
# Create (once) the isolated Brian2 environment used by tests/bench/bench_cuba.py.
#
# Brian2 2.9.0 fails to import with NumPy >= 2.4 (ndarray.ptp was removed), while
# the workbench itself runs on NumPy 2.4, so Brian2 lives in its own venv:
#   .bench-venv-brian2/  (repository root; ignored by git through its own .gitignore)
#
# Usage:  tests/bench/brian2_env.sh            # create if missing, print the python path
#         BRIAN2_VENV=/path tests/bench/brian2_env.sh
# bench_cuba.py calls this only when SPIKEWB_BENCH_BRIAN2=1.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
exec bash "$HERE/isolated_env.sh" "${BRIAN2_VENV:-$ROOT/.bench-venv-brian2}" brian2 "brian2==2.9.*" "numpy<2.4"
