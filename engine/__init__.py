"""Spike Workbench simulation engine: numba kernels, learning rules, training.

The engine imports NumPy, numba and param only -- never a UI library.
"""

__version__ = "0.1.0"
