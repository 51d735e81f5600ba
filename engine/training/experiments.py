"""Built-in experiments: small studies over one hyperparameter, returning plain rows.

Each function trains fresh networks with the engine's :class:`~spikewb.engine.training.trainer.Trainer` and
returns a list of dicts (one per setting and epoch), ready for a table or a plot.
"""

from __future__ import annotations

import time

import numpy as np

from spikewb.engine.data.datasets import Dataset, load_dataset
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer


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


def tau_sweep(dataset: str = "fashion-5k", tau_s_values=(1.0, 2.5, 5.0, 10.0, 20.0), ratio: float = 2.0,
              epochs: int = 1, n_train: int | None = None, n_test: int | None = None, hidden=(400,),
              single_spike: bool = True, seed: int = 0, callback=None, progress=None,
              **rule_params) -> list[dict]:
    """Test accuracy and spike count against the time constants (the paper's central study).

    For each ``tau_s`` (``tau_m = ratio * tau_s``) a fresh 784-H-C ``multispike``
    network (``rule_params`` on top of the defaults) is trained for ``epochs``
    epochs on ``dataset`` (optionally cut to ``n_train`` / ``n_test``) with the
    same seed; with ``single_spike`` the same network restricted to one spike per
    neuron (both buffers 1) is trained next to it.  ``dataset`` is a name or a
    loaded :class:`~spikewb.engine.data.datasets.Dataset`.  ``callback(row)`` is called with
    each finished row; ``progress(fraction)`` (optional) after every training
    sample with the fraction of all training samples done (an exception raised
    by it stops the sweep: that is how a caller cancels).

    Returns
    -------
    list of dict
        One row per (mode, tau_s, epoch): ``mode`` ("multi" / "single"), ``tau_s``,
        ``tau_m`` (ms), ``epoch``, ``train_accuracy``, ``test_accuracy`` (fractions),
        ``hidden_spikes`` and ``output_spikes`` (mean spikes per neuron on up to
        200 test samples), ``hidden_overflow`` (mean suppressed crossings per
        hidden neuron), ``seconds`` (wall time of that setting so far).
    """
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if n_train is not None or n_test is not None:
        data = data.subset(n_train, n_test)
    modes = ["multi", "single"] if single_spike else ["multi"]
    rows = []
    total = max(1, len(modes) * len(tau_s_values) * epochs * len(data.y_train))
    done = [0]

    def tick(_frame):
        done[0] += 1
        progress(done[0] / total)

    for mode in modes:
        for tau_s in tau_s_values:
            params = dict(rule_params, tau_s=float(tau_s), tau_m=float(ratio * tau_s))
            if mode == "single":
                params.update(max_spikes_hidden=1, max_spikes_out=1)
            rule = make_rule("multispike", **params)
            arch = Architecture(n_inputs=data.n_features, hidden=list(hidden), n_outputs=data.n_classes)
            tr = Trainer(rule, data, arch, seed=seed)
            t0 = time.perf_counter()
            for epoch in range(epochs):
                tr.fit(epoch + 1, callback=tick if progress is not None else None)
                h = tr.history[-1]
                X = data.x_test[:200].astype(np.float32) / np.float32(255)
                hid, out, ovf = [], [], []
                for x in X:
                    _, layers = rule._forward(tr.model, x)
                    hid.append(np.mean([ls.n.mean() for ls in layers[:-1]]) if len(layers) > 1 else 0.0)
                    out.append(layers[-1].n.mean())
                    ovf.append(np.mean([ls.overflow.mean() for ls in layers[:-1]]) if len(layers) > 1 else 0.0)
                row = dict(mode=mode, tau_s=float(tau_s), tau_m=float(ratio * tau_s), epoch=epoch + 1,
                           train_accuracy=h.train_accuracy, test_accuracy=h.test_accuracy,
                           hidden_spikes=float(np.mean(hid)), output_spikes=float(np.mean(out)),
                           hidden_overflow=float(np.mean(ovf)), seconds=time.perf_counter() - t0)
                rows.append(row)
                if callback is not None:
                    callback(row)
    return rows
