"""Safe, bounded YAML for experiment files.

PyYAML's safe loader lets the last of two equal keys win silently (``metric: euclidean``
then ``metric: angular``) and expands aliases without limit (a 1 KB alias bomb grows past
8 GB); both are refused here with one line, as are binary, non-UTF-8 and NUL-bearing files
and a folder given as the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bench.core.errors import BenchError

#: an experiment file is a few KB; this is far above any real one
MAX_BYTES = 1 << 20
#: nodes after alias expansion; a real experiment has a few hundred
MAX_NODES = 100_000


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the first is at line "
                    f"{seen[key].start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (memoised per node, so the
    count itself stays linear in the file)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_NODES + 1  # a recursive alias counts as too large
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


def read_text(source: Path) -> str:
    """The file's text, or one line saying why it is not an experiment file."""
    if source.is_dir():
        raise BenchError(f"{source}: is a folder; expected an experiment YAML file")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise BenchError(f"{source}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise BenchError(f"{source}: {len(data)} bytes; an experiment file is at most "
                         f"{MAX_BYTES} bytes")
    if b"\x00" in data:
        raise BenchError(f"{source}: contains NUL bytes; expected a YAML text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{source}: not UTF-8 text (byte {exc.start}); expected a YAML "
                         "text file") from None


def load_yaml(text: str, source: Path) -> Any:
    """Parse ``text``: duplicate keys and documents that expand past MAX_NODES fail."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, {}) > MAX_NODES:
                raise BenchError(f"{source}: expands to more than {MAX_NODES} YAML nodes "
                                 "(aliases); refusing to load it")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise BenchError(f"{source}: not valid YAML: "
                         + re.sub(r"\s+", " ", str(exc)).strip()) from None


def builtin_files(folder: str) -> dict[str, Path]:
    """The built-in YAML files shipped in ``bench/config/<folder>/``, by stem."""
    from importlib import resources

    root = resources.files("bench.config") / folder
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir()
            if p.name.endswith((".yaml", ".yml"))}


def resolve_file(spec: str | Path, builtins: dict[str, Path], what: str) -> Path:
    """A YAML path, or the name of a built-in: one rule for experiments and fine-tuning
    configs, with one wording when it is neither."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():  # a folder is named by the reader, in one line
            raise BenchError(f"{spec}: {what} file not found")
        return path
    if str(spec) in builtins:
        return builtins[str(spec)]
    raise BenchError(f"unknown {what} {str(spec)!r}: not a file, and not a built-in "
                     f"({', '.join(sorted(builtins))})")
