"""The run setup: the one declaration of what rebuilds a network.

A run is fixed by its learning rule, the rule's hyperparameters, the hidden
layer sizes, the dataset and the seed.  :class:`RunSetup` declares these once,
with ``param``; everything that reads or writes a setup goes through it:

* the trainer page's link (:mod:`spikewb.workbench.urlstate`) and the compare
  page's per-pane links (:mod:`spikewb.workbench.sessions.compare`) read their
  query with :meth:`RunSetup.from_text` and write it with :meth:`RunSetup.to_text`;
* ``spikewb train`` reads its ``-p KEY=VALUE`` values through :meth:`RunSetup.parse_assignment`
  and ``--hidden`` through :meth:`RunSetup.parse_hidden`; its ``--rule``, ``--dataset``,
  ``--hidden`` and ``--seed`` help texts are the declarations' docs (read from
  :mod:`~spikewb.engine.training.setup_fields`, which does not import the rules);
* the trainer's rule, dataset, hidden-layers and seed widgets take their labels and
  tooltips from the same declarations;
* sweep grids (:mod:`spikewb.engine.training.sweep`) read every value the same way;
* the trainer's hidden-layers field and the compare page's settings box use
  :meth:`RunSetup.parse_hidden` and :meth:`RunSetup.parse_settings`.

Text is read with :mod:`spikewb.engine.text` against the declaration of the
field (or of the rule's hyperparameter), and bounds are checked by the
declarations themselves.  Reading text never raises: what cannot be used is
left at its default and returned as a :class:`SetupProblem`, which a page shows
as a notice and the command line as an error.

>>> setup, problems = RunSetup.from_text({"rule": "desire", "hidden": "500", "v_th": "0.5", "seed": "3"})
>>> setup.hidden, setup.params, setup.seed, problems
([500], {'v_th': 0.5}, 3, [])
>>> setup.to_text()
{'rule': 'desire', 'dataset': 'mnist-5k', 'hidden': '500', 'seed': '3', 'v_th': '0.5'}
>>> RunSetup.from_text({"seed": "-1", "colour": "red"})[1]
[SetupProblem(key='seed', text='-1', reason='expected an integer in [0, 2^31)'), SetupProblem(key='colour', text='red', reason=None)]
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, NamedTuple

import param

from spikewb.engine.data.datasets import available
from spikewb.engine.errors import ConfigError
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule, rule_class, rule_names
from spikewb.engine.text import parse_int, parse_value, value_text
from spikewb.engine.training.setup_fields import SEED_LIMIT, SetupFields


class SetupProblem(NamedTuple):
    """One setting that could not be used: its key, its text, and why (``None``: unknown key)."""

    key: str
    text: str
    reason: str | None


class RunSetup(SetupFields):
    """Rule, hyperparameters, hidden layers, dataset and seed of one run.

    The four fields that are not hyperparameters are declared once in
    :class:`~spikewb.engine.training.setup_fields.SetupFields` (labels, help
    texts, bounds).  ``params`` holds the rule's hyperparameters that differ
    from its defaults (so a default setup writes a short link); ``hidden=None``
    means the rule's own default network (``rule_class(rule).default_hidden``).
    """

    params = param.Dict({}, doc="The rule's hyperparameters that differ from its defaults.")

    # ----------------------------------------------------------- reading one value
    @staticmethod
    def parse_hidden(text: str) -> list[int]:
        """``"1000, 100"`` -> ``[1000, 100]`` (ASCII digits, each >= 1); ``""`` -> ``[]``.

        Raises :class:`ConfigError` (a ValueError) with a message for the user.
        """
        return Architecture.parse_hidden(text)

    @staticmethod
    def parse_seed(text: str) -> int:
        seed = parse_int(text)
        if not 0 <= seed < SEED_LIMIT:
            raise ValueError("expected an integer in [0, 2^31)")
        return seed

    @staticmethod
    def parse_param(rule: str, key: str, text: str) -> Any:
        """Hyperparameter ``key`` of ``rule`` from text, checked against its declaration.

        Raises :class:`ConfigError` for an unknown key and ValueError / TypeError
        for a value the declaration refuses.

        >>> RunSetup.parse_param("desire", "lr", "3e-4")
        0.0003
        """
        cls = rule_class(rule)
        if key not in cls.param or key == "name":
            raise ConfigError(f"rule {cls.key!r} has no parameter {key!r}; parameters: "
                              f"{', '.join(k for k in cls.param if k != 'name')}")
        value = parse_value(cls.param[key], str(text).strip())
        cls(**{key: value})                 # type, bounds and cross-checks of the declaration
        return value

    @classmethod
    def parse_settings(cls, rule: str, text: str) -> dict[str, Any]:
        """``"lr=0.003, v_th=0.5"`` -> validated hyperparameters of ``rule`` (raises ConfigError).

        >>> RunSetup.parse_settings("desire", "lr=0.003")
        {'lr': 0.003}
        """
        out: dict[str, Any] = {}
        for part in re.split(r"[,;\s]+", str(text).strip()):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(f"{part[:40]!r}: settings are written name=value")
            out[key.strip()] = cls.parse_assignment(rule, key.strip(), value)
        return out

    @classmethod
    def parse_assignment(cls, rule: str, key: str, text: str) -> Any:
        """:meth:`parse_param` with every failure as one :class:`ConfigError` naming the setting."""
        try:
            return cls.parse_param(rule, key, text)
        except ConfigError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{key}={str(text).strip()[:40]!r}: {exc}") from None

    # --------------------------------------------------------------- whole setups
    @classmethod
    def from_text(cls, values: Mapping[str, str], *, datasets: Iterable[str] | None = None,
                  defaults: "RunSetup | None" = None, fields: Iterable[str] = SetupFields.FIELDS
                  ) -> tuple["RunSetup", list[SetupProblem]]:
        """A setup from ``{key: text}`` (a link's query, a pane's settings); never raises.

        ``datasets`` are the dataset names allowed (default: every named one,
        never a folder); ``defaults`` supplies what ``values`` leave out;
        ``fields`` are the non-rule keys read (the compare page reads its shared
        seed and dataset itself).  Unusable values are left at the default and
        returned as problems.
        """
        base = defaults if defaults is not None else cls()
        out = {"rule": base.rule, "dataset": base.dataset, "hidden": base.hidden, "seed": base.seed,
               "params": dict(base.params)}
        allowed = list(datasets) if datasets is not None else available()
        fields = tuple(fields)
        problems: list[SetupProblem] = []
        if "rule" in values and "rule" in fields:
            text = values["rule"]
            if text in rule_names():
                if text != out["rule"]:
                    out["rule"], out["params"] = text, {}
            else:
                problems.append(SetupProblem("rule", text, f"choose one of {', '.join(rule_names())}; "
                                                           f"{out['rule']} used"))
        for key, text in values.items():
            if key == "rule" and "rule" in fields:
                continue
            try:
                if key == "hidden" and key in fields:
                    out["hidden"] = cls.parse_hidden(text)
                elif key == "seed" and key in fields:
                    out["seed"] = cls.parse_seed(text)
                elif key == "dataset" and key in fields:   # a name only: text never names a folder
                    if text not in allowed:
                        raise ValueError(f"choose one of {', '.join(allowed)}")
                    out["dataset"] = text
                elif key in cls.FIELDS or key == "name" or key not in rule_class(out["rule"]).param:
                    problems.append(SetupProblem(key, text, None))
                else:
                    out["params"][key] = cls.parse_param(out["rule"], key, text)
            except Exception as exc:   # ValueError, TypeError, ConfigError: text never breaks a caller
                problems.append(SetupProblem(key, text, str(exc) or type(exc).__name__))
        return cls(**out), problems

    @classmethod
    def of_rule(cls, rule_obj, *, rule: str | None = None, dataset: str = "mnist-5k",
                hidden: Iterable[int] | None = None, seed: int = 0) -> "RunSetup":
        """The setup of a built rule object: its hyperparameters that differ from the defaults."""
        rcls = type(rule_obj)
        params = {}
        for name, p in rcls.param.objects("existing").items():
            if name != "name" and getattr(rule_obj, name) != p.default:
                params[name] = getattr(rule_obj, name)
        return cls(rule=rule or rcls.key, dataset=str(dataset), seed=int(seed), params=params,
                   hidden=None if hidden is None else [int(h) for h in hidden])

    @property
    def hidden_sizes(self) -> list[int]:
        """The hidden sizes, the rule's default network where none are set."""
        return list(self.hidden) if self.hidden is not None else list(rule_class(self.rule).default_hidden)

    def as_dict(self) -> dict[str, Any]:
        """``{"rule", "dataset", "hidden", "seed", **params}`` (hidden only when set)."""
        d: dict[str, Any] = {"rule": self.rule, "dataset": self.dataset, "seed": int(self.seed)}
        if self.hidden is not None:
            d["hidden"] = list(self.hidden)
        d.update(self.params)
        return d

    def to_text(self, fields: Iterable[str] = SetupFields.FIELDS) -> dict[str, str]:
        """The setup as ``{key: text}`` (rule hyperparameters only where not default)."""
        d = self.as_dict()
        out = {k: value_text(d[k]) for k in fields if k in d}
        out.update({k: value_text(v) for k, v in self.params.items()})
        return out

    def make_rule(self):
        """A new rule object with these hyperparameters (raises ConfigError)."""
        try:
            return make_rule(self.rule, **self.params)
        except TypeError as exc:
            raise ConfigError(f"{self.rule}: {exc}") from None

    def architecture(self, n_inputs: int, n_outputs: int) -> Architecture:
        return Architecture(n_inputs=int(n_inputs), hidden=self.hidden_sizes, n_outputs=int(n_outputs))

    def label(self) -> str:
        """Short description: ``desire 100 lr=0.003``."""
        extra = " ".join(f"{k}={value_text(v)}" for k, v in sorted(self.params.items()))
        net = "-".join(map(str, self.hidden_sizes)) or "no hidden"
        return " ".join(s for s in (self.rule, net, extra) if s)


__all__ = ["RunSetup", "SetupProblem", "SEED_LIMIT"]
