"""Exceptions users can cause, each with a message that says what to change."""

from __future__ import annotations


class SpikeWorkbenchError(Exception):
    """Base class of every error the engine raises on purpose."""


class DataError(SpikeWorkbenchError, ValueError):
    """A data file is missing, corrupt, truncated or of the wrong shape."""


class ConfigError(SpikeWorkbenchError, ValueError):
    """A parameter or architecture is out of range or inconsistent."""


class CheckpointError(SpikeWorkbenchError, ValueError):
    """A checkpoint cannot be read, or belongs to another rule / architecture."""


class NumericalError(SpikeWorkbenchError, FloatingPointError):
    """Non-finite values (NaN / Inf) appeared in weights or updates."""
