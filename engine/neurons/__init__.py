"""Neuron models, one module each: pure numba kernels and thin wrappers."""
