"""Training runs with one BLAS thread: in a session worker and in ``spikewb train``.

BLAS thread pools are process-wide, so each check runs in a fresh child process
whose BLAS starts with 2 threads (``OPENBLAS_NUM_THREADS=2``): the check fails
if the code under test leaves that setting alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def _child(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=CHILD_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _blas_threads() -> str:
    return ("import threadpoolctl; "
            "print('BLAS', sorted({i['num_threads'] for i in threadpoolctl.threadpool_info() "
            "if i['user_api'] == 'blas'}))")


def test_child_blas_starts_with_two_threads():
    # the premise of the tests below: without our code the child's BLAS has 2 threads
    out = _child("import numpy\n" + _blas_threads())
    assert "BLAS [2]" in out, out


def test_session_worker_trains_with_one_blas_thread():
    out = _child(f"""
        import time, numpy, threadpoolctl
        from spikewb.engine.data.datasets import load_dataset
        from spikewb.workbench.sessions.session import TrainingSession
        s = TrainingSession(rule="desire", hidden=[20], dataset=load_dataset("mnist-5k").subset(n_train=50, n_test=20))
        seen = []
        s.play()
        t0 = time.time()
        while s.samples < 5 and time.time() - t0 < 60:
            time.sleep(0.05)
        print("samples", s.samples)
        {_blas_threads()}
        s.close()
    """)
    assert "BLAS [1]" in out, out
    assert int(out.split("samples ")[1].split()[0]) >= 5, out


def test_cli_train_runs_with_one_blas_thread(tmp_path):
    out = _child(f"""
        import threadpoolctl, spikewb.workbench.cli as cli
        from spikewb.engine.training.trainer import Trainer
        fit = Trainer.fit
        def spy(self, *a, **k):
            {_blas_threads()}
            return fit(self, *a, **k)
        Trainer.fit = spy
        import sys
        sys.argv = ["spikewb", "train", "--hidden", "20", "--epochs", "1", "--train-limit", "40",
                    "--eval-limit", "20", "--no-progress", "--out", {str(tmp_path / "run")!r}]
        try:
            cli.main()
        except SystemExit as e:
            assert e.code in (0, None), e.code
    """)
    assert "BLAS [1]" in out, out
