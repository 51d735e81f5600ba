"""Training throughput with the neuron inspector open on one neuron vs closed, same run.

A headless :class:`~spikewb.workbench.sessions.session.TrainingSession` trains the 784-1000-100-10
Desire BP net at full speed; for alternating windows the inspector's recording is
on (per-sample history observer, the neuron's potential, weight update,
contributions and top-24 error-flow links in every published frame) or off.
Frames are published at 20 Hz as in the live page.  Ratio = open / closed rate.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.workbench.sessions.inspection import NeuronHistory  # noqa: E402
from spikewb.workbench.sessions.session import TrainingSession  # noqa: E402


def _rate(session: TrainingSession, seconds: float) -> float:
    n0, t0 = session.samples, time.perf_counter()
    time.sleep(seconds)
    return (session.samples - n0) / (time.perf_counter() - t0)


def run(quick: bool = False) -> list[dict]:
    window = 3.0 if quick else 15.0
    rounds = 1 if quick else 3
    s = TrainingSession(hidden=[1000, 100], eval_limit=200)
    s.publish_interval = 0.05
    try:
        s.play()
        time.sleep(2.0)                                 # warm-up (compile, caches)
        closed, opened = [], []
        hist = NeuronHistory(2, 7, 500)
        for _ in range(rounds):
            s.set_extra_record()
            s.observers[:] = []
            closed.append(_rate(s, window))
            s.observers.append(hist.observe)
            s.set_extra_record(neurons=[(2, 7)], weight_updates=True, flow=24)
            opened.append(_rate(s, window))
        s.pause()
    finally:
        s.close()
    c, o = sum(closed) / len(closed), sum(opened) / len(opened)
    return [dict(metric="training samples/s with the inspector open on one neuron", value=o, unit="samples/s",
                 reference="inspector closed", reference_value=c, ratio=o / c, target=">= 0.90",
                 notes=f"784-1000-100-10 Desire BP, {rounds} x {window:.0f} s windows each, alternating; "
                       f"history kept {len(hist)} samples")]
