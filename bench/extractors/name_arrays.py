"""Arrays of names saved by ``numpy.save`` as object arrays, read without unpickling.

The original study saved its features as ``Features/<set>-<algo>_features.npy`` and
the name of each row as ``<set>-<algo>_map_to_names.npy``, an object array of
strings. ``np.load(allow_pickle=True)`` would run whatever the file's pickle stream
asks for; here the stream is only *parsed* (``pickletools.genops`` decodes opcodes,
it executes nothing) by a small stack machine that knows the handful of opcodes and
the three numpy globals an object array of strings consists of. Anything else (a
number, a dict, another global, an unknown opcode) is refused with one line.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError

#: the only globals an object ndarray's pickle names (old and new numpy module paths)
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                                                             "_reconstruct")}
_ALLOWED = _RECONSTRUCT | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
            "BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}
_INTS = {"BININT", "BININT1", "BININT2", "INT", "LONG1", "LONG"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


@dataclass
class _Global:
    module: str
    name: str


@dataclass
class _Object:
    """The result of a REDUCE (a call the machine records, never makes)."""

    func: _Global
    args: tuple[Any, ...]
    state: Any = field(default=None)


_MARK = object()


def read_name_array(path: Path) -> list[str]:
    """Row names from a .npy file: a str/bytes array, or an object array of str/bytes."""
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = header(fh)
        except ValueError as exc:
            raise BenchError(f"{path}: not a numpy .npy file ({exc})") from None
        if dtype.kind in "US":
            return [_text(v) for v in np.load(path, allow_pickle=False).reshape(-1).tolist()]
        if dtype.kind != "O":
            raise BenchError(f"{path}: names must be strings, got a {dtype} array")
        items = _parse(fh.read(), path)
    if len(items) != int(np.prod(shape)):
        raise BenchError(f"{path}: {len(items)} names for an array of shape {shape}")
    return items


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _refuse(path: Path, what: str) -> BenchError:
    return BenchError(f"{path}: {what}; only arrays of str/bytes names are read (the file "
                      "is parsed, never unpickled)")


def _parse(stream: bytes, path: Path) -> list[str]:
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    marks: list[int] = []
    try:
        ops = list(pickletools.genops(stream))
    except Exception as exc:  # noqa: BLE001 - any malformed stream is the same refusal
        raise _refuse(path, f"unreadable pickle stream ({exc})") from None
    for op, arg, _ in ops:
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name in _STRINGS or name in _INTS:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in _MEMO_PUT:
            memo[arg] = stack[-1]
        elif name in _MEMO_GET:
            stack.append(memo[arg])
        elif name == "MARK":
            marks.append(len(stack))
        elif name in ("TUPLE", "LIST", "APPENDS"):
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            if name == "APPENDS":
                stack[-1].extend(items)
            else:
                stack.append(tuple(items) if name == "TUPLE" else list(items))
        elif name in _TUPLES:
            n = _TUPLES[name]
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "APPEND":
            value = stack.pop()
            stack[-1].append(value)
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            module, attr = (arg.split(" ", 1) if name == "GLOBAL"
                            else (stack.pop(-2), stack.pop()))
            if (module, attr) not in _ALLOWED:
                raise _refuse(path, f"the names file refers to {module}.{attr}")
            stack.append(_Global(module, attr))
        elif name == "REDUCE":
            args = stack.pop()
            func = stack.pop()
            if (func.module, func.name) == ("_codecs", "encode"):  # protocol 2 bytes
                stack.append(str(args[0]).encode(str(args[1])))
            else:
                stack.append(_Object(func, args))
        elif name == "BUILD":
            state = stack.pop()
            stack[-1].state = state
        else:
            raise _refuse(path, f"the names file holds pickle opcode {name}")
    return _items(stack[-1] if stack else None, path)


def _items(obj: Any, path: Path) -> list[str]:
    """The element list of the reconstructed ndarray, every element checked."""
    if not (isinstance(obj, _Object) and (obj.func.module, obj.func.name) in _RECONSTRUCT
            and isinstance(obj.state, tuple) and len(obj.state) == 5
            and isinstance(obj.state[4], list)):
        raise _refuse(path, "the pickle stream is not a plain object array")
    out = []
    for i, value in enumerate(obj.state[4]):
        if not isinstance(value, str | bytes):
            raise _refuse(path, f"name {i} is a {type(value).__name__}, not a string")
        out.append(_text(value))
    return out
