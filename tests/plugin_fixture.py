"""A rule package installed the way a third party would ship one: a module plus
``*.dist-info`` metadata whose ``entry_points.txt`` declares it in the
``spikewb.rules`` group.  Put the folder on ``PYTHONPATH`` and the standard
``importlib.metadata`` machinery finds it, as it finds any installed package."""

from __future__ import annotations

from pathlib import Path

TOY_MODULE = '''"""A toy learning rule shipped as a separate package (spikewb plugin test)."""
from typing import ClassVar

import param

from spikewb.engine.rules.desire import DesireBP


class ToyRule(DesireBP):
    """Desire BP under another name, with a bigger default learning rate."""

    key: ClassVar[str] = "toy"
    title: ClassVar[str] = "Toy plugin rule"
    default_hidden: ClassVar[tuple[int, ...]] = (32,)
    lr = param.Number(3e-4, bounds=(0.0, 1.0), label="Learning rate", doc="Toy default.")
'''


def install_toy_plugin(folder: Path, broken: bool = True) -> Path:
    """Write the toy plugin (and, with ``broken``, a plugin whose target does not exist) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spikewb_toyrule.py").write_text(TOY_MODULE)
    info = folder / "spikewb_toyrule-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spikewb-toyrule\nVersion: 0.1\n")
    eps = "[spikewb.rules]\ntoy = spikewb_toyrule:ToyRule\n"
    if broken:
        eps += "broken = spikewb_toyrule:NoSuchRule\n"
    (info / "entry_points.txt").write_text(eps)
    return folder
