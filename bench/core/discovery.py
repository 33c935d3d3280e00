"""Find the built-in modules of a registry package without a hand-kept list.

Each backend, extractor or dataset module registers itself on import, so adding
a module file is enough to add a built-in. Modules must import optional
third-party libraries lazily (inside methods), so discovery never fails on a
missing extra.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module


def submodules(package: str, skip: tuple[str, ...] = ("base", "store")) -> tuple[str, ...]:
    pkg = import_module(package)
    names = []
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") or leaf in skip:
            continue
        names.append(info.name)
    return tuple(sorted(names))
