"""Learning rules, registered by short name.

>>> from spikewb.engine.rules import rule_names
>>> "desire" in rule_names()
True
"""

from .base import LearningRule, load_plugins, make_rule, register, rule_class, rule_names
from . import desire  # noqa: F401  (registers "desire")
from . import ssnn  # noqa: F401
from . import stidi  # noqa: F401
from . import normad  # noqa: F401
from . import multispike  # noqa: F401

__all__ = ["LearningRule", "load_plugins", "make_rule", "register", "rule_class", "rule_names"]
