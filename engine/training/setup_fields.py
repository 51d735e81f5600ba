"""The declarations of a run's setup fields: rule, dataset, hidden layers, seed.

:class:`SetupFields` declares the four settings that rebuild a network, with
their labels, help texts, defaults and bounds, and imports nothing but
``param``.  :class:`~spikewb.engine.training.setup.RunSetup` extends it with the
rule's hyperparameters and the text codec; the command line reads its option
help from here without importing the rules (and numba) at start-up; the
trainer page builds its four network-and-data widgets from these declarations.

>>> SetupFields.param["seed"].label
'Seed'
>>> help_text("hidden")[:36]
'Hidden layer sizes, input side first'
"""

from __future__ import annotations

import param

#: Largest seed (exclusive); seeds are NumPy ``SeedSequence`` entropy and fit in 31 bits.
SEED_LIMIT = 2**31


class SetupFields(param.Parameterized):
    """Learning rule, dataset, hidden layers and seed: what fixes a fresh network."""

    rule = param.String("desire", label="Learning rule",
                        doc="Learning rule (the list: `spikewb rules`).")
    dataset = param.String("mnist-5k", label="Dataset",
                           doc="Training data: mnist-5k or fashion-5k (embedded), mnist or fashion-mnist (from the cache "
                               "or $SPIKEWB_DATA), or your own IDX files (uploaded on the trainer page, a folder "
                               "on the command line).")
    hidden = param.List(None, item_type=int, allow_None=True, label="Hidden layers (neurons, input side first)",
                        doc="Hidden layer sizes, input side first, comma-separated, e.g. 1000, 100; "
                            "empty: no hidden layer (default: the rule's paper net).")
    seed = param.Integer(0, bounds=(0, SEED_LIMIT - 1), label="Seed",
                         doc="Seed for weights, dropout and shuffling.")

    #: The fields, in link order.
    FIELDS = ("rule", "dataset", "hidden", "seed")


def help_text(name: str) -> str:
    """The help text of setup field ``name`` (``rule``, ``dataset``, ``hidden``, ``seed``)."""
    return SetupFields.param[name].doc
