"""Engine-wide constants and JIT settings, kept in one place.

Every numba kernel in :mod:`engine` is compiled with :data:`JIT`; no kernel
hard-codes its own flags (the STUMPY habit).  ``cache=True`` keeps the compiled
machine code in ``__pycache__`` (or ``$NUMBA_CACHE_DIR``) so a second start does
not recompile; ``nogil=True`` lets a training thread run while the web server
thread keeps serving.
"""

from __future__ import annotations

import numba

#: Keyword arguments for every ``numba.njit`` kernel of the engine.
JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

#: Format version written into every checkpoint; bumped on incompatible change.
CHECKPOINT_FORMAT = 1

#: Largest IDX payload (bytes, after decompression) the loader will allocate.
IDX_MAX_BYTES = 2 * 1024**3

#: Largest total size (bytes, as declared by the arrays' headers) of a checkpoint's arrays.
CHECKPOINT_MAX_BYTES = 2 * 1024**3

#: Largest number of synapses a network may have before ``build`` refuses it.
MAX_SYNAPSES = 50_000_000


def njit(func=None, **overrides):
    """``numba.njit`` with the engine's :data:`JIT` flags (overridable)."""
    flags = {**JIT, **overrides}
    if func is None:
        return lambda f: numba.njit(**flags)(f)
    return numba.njit(**flags)(func)


#: The process-wide BLAS thread limit set by :func:`use_one_blas_thread` (kept alive here).
_BLAS_LIMIT = None


def use_one_blas_thread() -> None:
    """Run the process's BLAS (OpenBLAS, MKL, BLIS) single-threaded from now on.

    A training step does many small matrix-vector products; with BLAS threads
    they fight the server's and the other sessions' threads for the cores
    (measured on 2 cores: 784-1600-800-10 went from 3-4 ms to 60 ms per sample
    while another multi-threaded process ran).  BLAS thread pools are
    process-wide, so this is called once by every place that starts training
    work (session workers, page threads, ``spikewb train`` / ``reproduce`` /
    ``serve``) and never undone.  Idempotent; does nothing when threadpoolctl
    finds no BLAS.
    """
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
