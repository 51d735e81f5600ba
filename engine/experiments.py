"""Built-in experiments: small studies over one hyperparameter, returning plain rows.

Each function trains fresh networks with the engine's :class:`~spikewb.engine.trainer.Trainer` and
returns a list of dicts (one per setting and epoch), ready for a table or a plot.
"""

from __future__ import annotations


def t_sweep(dataset: str = "fashion-5k", t_values=(21, 51, 101, 201), epochs: int = 2,
            n_train: int | None = None, n_test: int | None = None, hidden=(1000,), seed: int = 0,
            callback=None, **rule_params) -> list[dict]:
    """SSNN-BP test accuracy against spike-train length T (the paper's quantisation study).

    For each ``T`` a fresh 784-H-C SSNN-BP network (``rule_params`` on top of the
    defaults; ``tau = T/10``, ``tau_b = T/100`` and ``M = floor(T/2)`` follow T)
    is trained for ``epochs`` epochs on ``dataset`` (optionally cut to
    ``n_train`` / ``n_test`` samples) with the same seed.

    Returns
    -------
    list of dict
        One row per (T, epoch): ``T``, ``epoch``, ``train_accuracy``,
        ``test_accuracy`` (fractions), ``seconds`` (wall time of that T so far).
    """
    import time

    from .datasets import load_dataset
    from .network import Architecture
    from .rules import make_rule
    from .trainer import Trainer

    data = load_dataset(dataset)
    if n_train is not None or n_test is not None:
        data = data.subset(n_train, n_test)
    rows = []
    for T in t_values:
        rule = make_rule("ssnn", n_steps=int(T), **rule_params)
        arch = Architecture(n_inputs=data.n_features, hidden=list(hidden), n_outputs=data.n_classes)
        tr = Trainer(rule, data, arch, seed=seed)
        t0 = time.perf_counter()
        for epoch in range(epochs):
            tr.fit(epoch + 1)
            h = tr.history[-1]
            row = dict(T=int(T), epoch=epoch, train_accuracy=h.train_accuracy, test_accuracy=h.test_accuracy,
                       seconds=time.perf_counter() - t0)
            rows.append(row)
            if callback is not None:
                callback(row)
    return rows
