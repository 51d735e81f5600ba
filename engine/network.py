"""Architecture specification and the trained model container."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import param

from spikewb.engine.config import MAX_SYNAPSES
from spikewb.engine.errors import ConfigError
from spikewb.engine.text import parse_int_list


class Architecture(param.Parameterized):
    """Layer sizes of a fully connected feed-forward network.

    ``n_inputs`` and ``n_outputs`` normally come from the dataset; ``hidden``
    lists the hidden layer sizes from input to output.
    """

    n_inputs = param.Integer(784, bounds=(1, 100_000), label="Inputs",
                             doc="Number of input neurons (pixels).")
    hidden = param.List([1000, 100], item_type=int, label="Hidden layers",
                        doc="Sizes of the hidden layers, input side first, e.g. [1000, 100].")
    n_outputs = param.Integer(10, bounds=(1, 10_000), label="Outputs",
                              doc="Number of output neurons (classes).")

    @param.depends("hidden", watch=True, on_init=True)
    def _check_hidden(self):
        bad = [h for h in self.hidden if not isinstance(h, (int, np.integer)) or h < 1]
        if bad:
            raise ConfigError(f"hidden layer sizes must be positive integers; got {list(self.hidden)}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """All layer sizes, input first."""
        return (int(self.n_inputs), *(int(h) for h in self.hidden), int(self.n_outputs))

    @property
    def n_synapses(self) -> int:
        s = self.sizes
        return int(sum(a * b for a, b in zip(s[:-1], s[1:])))

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the network is unusable or too large."""
        self._check_hidden()
        if self.n_synapses > MAX_SYNAPSES:
            raise ConfigError(f"network {self.describe()} has {self.n_synapses:,} synapses, "
                              f"more than the limit of {MAX_SYNAPSES:,}")

    def describe(self) -> str:
        return "-".join(str(s) for s in self.sizes)

    def to_dict(self) -> dict[str, Any]:
        return {"n_inputs": self.n_inputs, "hidden": list(self.hidden), "n_outputs": self.n_outputs}

    @staticmethod
    def check_sizes(sizes) -> list[int]:
        """Hidden layer sizes as a list of positive ints (raises :class:`ConfigError`)."""
        sizes = list(sizes)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
            raise ConfigError(f"hidden layer sizes must be positive whole numbers, got {sizes}")
        return [int(s) for s in sizes]

    @classmethod
    def parse_hidden(cls, text: str) -> list[int]:
        """``"1000,100"`` -> ``[1000, 100]``; ``""`` -> ``[]`` (ASCII digits only).

        >>> Architecture.parse_hidden("1000, 100")
        [1000, 100]
        """
        try:
            sizes = parse_int_list(str(text))
        except ValueError:
            raise ConfigError(f"hidden sizes must be comma-separated whole numbers, got {str(text)[:60]!r}") from None
        return cls.check_sizes(sizes)


@lru_cache(maxsize=64)
def layer_names(n_layers: int) -> tuple[str, ...]:
    """Display names of layers 0..L: input, hidden 1.., output (a shared tuple per count)."""
    return ("input", *(f"hidden {i}" for i in range(1, n_layers - 1)), "output")


@dataclass
class Model:
    """Weights and state of a network built by a rule.

    ``weights[l]`` connects layer ``l`` to layer ``l + 1`` (pre-major, shape
    ``(n_pre, n_post)``).  ``state`` holds whatever else the rule keeps across
    samples (e.g. optimiser moments); ``epoch`` is set by the Trainer and read
    by the learning-rate schedule.
    """

    rule: str
    sizes: tuple[int, ...]
    weights: list[np.ndarray]
    rng: np.random.Generator
    epoch: int = 0
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def copy(self) -> "Model":
        rng = np.random.Generator(type(self.rng.bit_generator)())
        rng.bit_generator.state = self.rng.bit_generator.state
        return Model(self.rule, self.sizes, [w.copy() for w in self.weights], rng, self.epoch,
                     {k: v.copy() for k, v in self.state.items()})

    def check_finite(self) -> None:
        """Raise :class:`~spikewb.engine.errors.NumericalError` if any weight is NaN or Inf."""
        from spikewb.engine.errors import NumericalError
        for l, w in enumerate(self.weights, start=1):
            if not np.all(np.isfinite(w)):
                n_bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
                raise NumericalError(
                    f"weight layer {l} ({w.shape[0]}x{w.shape[1]}) contains {n_bad} NaN/Inf values; "
                    "lower the learning rate or reset the network")
