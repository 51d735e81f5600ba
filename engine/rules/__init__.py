"""Learning rules, registered by short name.

>>> from spikewb.engine.rules import rule_names
>>> "desire" in rule_names()
True
"""

from spikewb.engine.rules.base import LearningRule, load_plugins, make_rule, register, rule_class, rule_names
from spikewb.engine.rules import desire  # noqa: F401  (registers "desire")
from spikewb.engine.rules import ssnn  # noqa: F401
from spikewb.engine.rules import stidi  # noqa: F401
from spikewb.engine.rules import normad  # noqa: F401
from spikewb.engine.rules import multispike  # noqa: F401

__all__ = ["LearningRule", "load_plugins", "make_rule", "register", "rule_class", "rule_names"]
