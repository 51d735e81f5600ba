"""Child process of the checkpoint fuzzer (tests/engine/training/test_checkpoint_fuzz.py); not a test module.

``python tests/checkpoint_fuzz_child.py RULE WORKDIR`` trains RULE for two samples
on a tiny network, saves a checkpoint, writes hostile variants of it (every
array: wrong shapes, dtypes, NaN/Inf, bad indices, missing; extra arrays,
huge declared headers, hostile metadata) and, for each, loads it with
``Trainer.from_checkpoint`` and trains one sample.  One JSON line per variant
goes to stdout *before* (``"start"``) and after (``"end"``) its attempt, so a
crash of the interpreter names the variant that caused it.  It uses only the
engine's public API of every version, so it also runs against old code (put
another ``engine`` first on ``PYTHONPATH``).
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

#: Tiny networks and rule settings that make the step after loading use every state array.
RULES = {
    "desire": {},
    "stidi": {},
    "multispike": {"batch_size": 3},   # 2 trained + 1 step: the step applies Adam
    "ssnn": {"batch_size": 3, "momentum": 0.9},  # the step reads velocity + look-ahead and applies
    "normad": {},
}
HIDDEN = [6]
N_TRAIN, N_TEST = 40, 10


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=True)
    return buf.getvalue()


def huge_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A ``.npy`` header declaring ``shape`` followed by only 16 bytes of data."""
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    pad = 64 - (10 + len(d) + 1) % 64
    header = (d + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 16


def write_npz(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


def array_variants(key: str, a: np.ndarray, n_train: int):
    """(label, replacement bytes or None for 'drop', expect) for one array.

    ``expect`` is ``"refuse"`` (must end in a clear error) or ``"any"`` (a
    refusal or a finite step are both fine: a safe cast, an optional array).
    """
    out = []
    fl = a.dtype.kind == "f"
    out.append(("shape_1" if a.shape != (1,) else "shape_2", npy_bytes(np.zeros((1,) if a.shape != (1,) else (2,),
                                                                              a.dtype)), "refuse"))
    out.append(("empty", npy_bytes(np.zeros((0,), a.dtype)), "refuse"))
    out.append(("scalar", npy_bytes(np.array(0, a.dtype)), "refuse"))
    if a.ndim >= 1 and a.shape[0] > 1:
        out.append(("short", npy_bytes(a[: a.shape[0] // 2]), "refuse"))
    out.append(("transposed_or_2d", npy_bytes(a.reshape(1, -1) if a.ndim == 1 else a.T.copy()
                                              if a.shape[0] != a.shape[-1] else a[:, :1].copy()), "refuse"))
    out.append(("complex", npy_bytes(a.astype(np.complex128)), "refuse"))
    out.append(("str", npy_bytes(np.full(a.shape, "x", dtype="<U3")), "refuse"))
    out.append(("object", npy_bytes(np.empty(a.shape, dtype=object)), "refuse"))
    out.append(("bool", npy_bytes(np.zeros(a.shape, bool)), "refuse" if fl else "any"))
    if fl:
        out.append(("int", npy_bytes(a.astype(np.int64)), "refuse"))
        other = np.float32 if a.dtype == np.float64 else np.float64
        out.append(("other_float", npy_bytes(a.astype(other)), "any"))
        for label, v in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
            b = a.copy()
            if b.size:
                b.flat[b.size // 2] = v
                out.append((label, npy_bytes(b), "refuse"))
        out.append(("huge_values", npy_bytes(np.full(a.shape, 1e300, a.dtype) if a.dtype == np.float64
                                             else np.full(a.shape, 3e38, a.dtype)), "any"))
    else:
        out.append(("float", npy_bytes(a.astype(np.float64)), "refuse"))
        out.append(("int32", npy_bytes(a.astype(np.int32)), "any"))
        out.append(("negative", npy_bytes(np.full(a.shape, -1, np.int64)), "refuse"))
        out.append(("huge_int", npy_bytes(np.full(a.shape, 2**62, np.int64)),
                    "refuse" if key in ("state_order",) or key.startswith("state_mask") else "any"))
    if key == "state_order":
        dup = a.copy()
        dup[0] = dup[1]
        out.append(("duplicate", npy_bytes(dup), "refuse"))
        oob = a.copy()
        oob[0] = n_train
        out.append(("out_of_bounds", npy_bytes(oob), "refuse"))
        big = a.copy()
        big[0] = 10**9
        out.append(("far_out_of_bounds", npy_bytes(big), "refuse"))
        neg = a.copy()
        neg[0] = -5
        out.append(("negative_index", npy_bytes(neg), "refuse"))
        out.append(("longer", npy_bytes(np.arange(n_train + 7)), "any"))
    out.append(("huge_header", huge_header((10**6, 10**6), a.dtype.str if a.dtype.kind in "fiu" else "<f8"),
                "refuse"))
    required_w = key.startswith("w")
    out.append(("missing", None, "refuse" if required_w or key == "meta" else "any"))
    return out


def meta_variants(meta: dict):
    def m(**ch):
        return {**meta, **ch}
    html = "<script>window.__pwned=1</script>"
    return [
        ("rule_html", m(rule=html), "refuse"),
        ("rule_img", m(rule='<img src=x onerror="window.__pwned=1">'), "refuse"),
        ("rule_int", m(rule=3), "refuse"),
        ("rule_list", m(rule=["desire"]), "refuse"),
        ("rule_params_list", m(rule_params=[1, 2]), "refuse"),
        ("rule_param_unknown", m(rule_params={**meta["rule_params"], "zzz": 1}), "refuse"),
        ("rule_param_nan", m(rule_params={**meta["rule_params"], "lr": float("nan")}), "refuse"),
        ("arch_extra_key", m(arch={**meta["arch"], "evil": 1}), "refuse"),
        ("arch_hidden_neg", m(arch={**meta["arch"], "hidden": [-3]}), "refuse"),
        ("arch_hidden_str", m(arch={**meta["arch"], "hidden": "6"}), "refuse"),
        ("sizes_bogus", m(sizes=[1, 2]), "refuse"),
        ("position_neg", m(position=-1), "refuse"),
        ("position_past_end", m(position=N_TRAIN + 3), "refuse"),
        ("position_float", m(position=1.5), "refuse"),
        ("epoch_neg", m(epoch=-2), "refuse"),
        ("epoch_str", m(epoch="1"), "refuse"),
        ("seed_huge", m(seed=10**30), "refuse"),
        ("rng_junk", m(rng={"bit_generator": "PCG64", "state": 5}), "refuse"),
        ("rng_other_gen", m(rng={"bit_generator": "MT19937"}), "refuse"),
        ("rng_missing", {k: v for k, v in meta.items() if k != "rng"}, "refuse"),
        ("history_junk", m(history=[{"epoch": 0, "bogus": 1}]), "refuse"),
        ("history_str", m(history="x"), "refuse"),
        ("running_junk", m(running={"correct": "a"}), "refuse"),
        ("format_2", m(format=2), "refuse"),
        ("meta_list", [1, 2], "refuse"),
    ]


def main(rule_key: str, workdir: str) -> int:
    from spikewb.engine.data.datasets import load_dataset
    from spikewb.engine.network import Architecture
    from spikewb.engine.rules import make_rule
    from spikewb.engine.training.trainer import Trainer

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = load_dataset("mnist-5k").subset(N_TRAIN, N_TEST)
    rule = make_rule(rule_key, **RULES[rule_key])
    trainer = Trainer(rule, data, Architecture(n_inputs=data.n_features, hidden=HIDDEN,
                                               n_outputs=data.n_classes), seed=1, eval_limit=5)
    trainer.step()
    trainer.step()
    good = trainer.save(work / "good.npz")
    with zipfile.ZipFile(good) as zf:
        members = {n[:-4]: zf.read(n) for n in zf.namelist()}
    arrays = {k: np.load(io.BytesIO(v), allow_pickle=False) for k, v in members.items()}
    meta = json.loads(str(arrays["meta"]))

    variants = [("baseline", dict(members), "ok")]
    for key, a in arrays.items():
        if key == "meta":
            continue
        for label, blob, expect in array_variants(key, a, N_TRAIN):
            v = dict(members)
            if blob is None:
                v.pop(key)
            else:
                v[key] = blob
            variants.append((f"{key}:{label}", v, expect))
    extra = dict(members)
    extra["state_extra"] = npy_bytes(np.zeros(3))
    variants.append(("extra:state_extra", extra, "refuse"))
    extra = dict(members)
    extra["junk"] = npy_bytes(np.zeros(3))
    variants.append(("extra:junk", extra, "refuse"))
    extra = dict(members)
    extra["state_big"] = huge_header((2**31, 8))
    variants.append(("extra:huge_header", extra, "refuse"))
    extra = dict(members)
    extra[f"w{sum(1 for k in arrays if k.startswith('w'))}"] = npy_bytes(np.zeros((6, 10), np.float32))
    variants.append(("extra:weight_layer", extra, "refuse"))
    variants.append(("meta:missing", {k: v for k, v in members.items() if k != "meta"}, "refuse"))
    for label, new_meta, expect in meta_variants(meta):
        v = dict(members)
        v["meta"] = npy_bytes(np.array(json.dumps(new_meta)))
        variants.append((f"meta:{label}", v, expect))

    error_types = ("SpikeWorkbenchError",)  # the engine's own errors: DataError, ConfigError, CheckpointError, ...
    for label, v, expect in variants:
        path = work / "variant.npz"
        write_npz(path, v)
        print(json.dumps({"variant": label, "phase": "start", "expect": expect}), flush=True)
        rec = {"variant": label, "phase": "end", "expect": expect}
        try:
            t = Trainer.from_checkpoint(path, data=data)
            t.eval_limit = 5
            t.step()
            finite = all(bool(np.all(np.isfinite(w))) for w in t.model.weights)
            rec.update(outcome="ok", finite=finite)
        except Exception as exc:  # noqa: BLE001 -- every outcome is reported to the parent
            names = [c.__name__ for c in type(exc).__mro__]
            rec.update(outcome="error", type=type(exc).__name__,
                       clear=any(n in error_types for n in names), message=str(exc)[:300])
        print(json.dumps(rec), flush=True)
    print(json.dumps({"phase": "done", "variants": len(variants)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
