"""Instruction counts of the searches, under Valgrind: the deterministic counter.

Wall time on a shared machine moves by tens of percent; the number of instructions a
search executes does not (CodSpeed's and SQLite's practice). With ``counter:
instructions`` the worker builds natively as usual, saves the index (``Backend.save``;
Faiss, hnswlib, Annoy and bruteforce can), and for every query point runs a fresh
Python under ``valgrind --tool=cachegrind --cache-sim=no`` that loads the index and
runs only that point's searches, once over the queries. A run of the same child with
zero queries (imports, loading, ``set_query_params``) is subtracted, so the figure is
the searches' own instructions. ``PYTHONHASHSEED`` is fixed and one thread is used,
so fresh processes agree to about 1 %.

The child is ``python -m bench.run.instructions SPEC.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError

VALGRIND_ARGS = ("--tool=cachegrind", "--cache-sim=no")
#: a Python start under Valgrind is ~50x slower than native; generous per child
CHILD_TIMEOUT_S = 1800


def valgrind() -> str | None:
    return shutil.which("valgrind")


def require_valgrind() -> str:
    path = valgrind()
    if path is None:
        raise BenchError("counter: instructions needs valgrind on PATH (Debian/Ubuntu: "
                         "apt-get install valgrind)")
    return path


def class_path(backend: Any) -> str:
    cls = type(backend)
    return f"{cls.__module__}:{cls.__qualname__}"


def count(spec: dict[str, Any], n_queries: int, workdir: Path) -> int:
    """Instructions (cachegrind's ``Ir``) of one child run over ``n_queries`` queries."""
    exe = require_valgrind()
    spec_path = workdir / f"spec-{n_queries}.json"
    spec_path.write_text(json.dumps({**spec, "n_queries": n_queries}))
    out = workdir / f"cachegrind-{n_queries}.out"
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [exe, *VALGRIND_ARGS, f"--cachegrind-out-file={out}", sys.executable, "-m",
           "bench.run.instructions", str(spec_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=CHILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"instruction count under valgrind failed (exit {proc.returncode}):"
                         f" {tail}")
    return cachegrind_total(out)


def cachegrind_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise BenchError(f"{path}: no 'summary:' line; not a cachegrind output file")


class InstructionCounter:
    """Saves a built backend once, then counts each point's searches in fresh children."""

    def __init__(self, backend: Any, *, metric: str, dim: int, build: dict[str, Any],
                 queries_path: str, mode: str) -> None:
        require_valgrind()
        self.dir = Path(tempfile.mkdtemp(prefix="featbench-instr-"))
        (self.dir / "index").mkdir()
        backend.save(self.dir / "index")
        self.spec = {"class": class_path(backend), "metric": metric, "dim": dim,
                     "build": build, "index": str(self.dir / "index"),
                     "queries": queries_path, "mode": mode}
        self._zero: int | None = None

    def point(self, params: dict[str, Any], k: int, n_queries: int) -> dict[str, Any]:
        """The searches' instructions for one point. The zero-query run is made once per
        build (with the first point's parameters): a child under Valgrind takes seconds,
        and ``set_query_params`` costs thousands of instructions beside millions."""
        spec = {**self.spec, "params": params, "k": k}
        if self._zero is None:
            self._zero = count(spec, 0, self.dir)
        total = count(spec, n_queries, self.dir)
        searches = max(0, total - self._zero)
        return {"instructions": searches, "instructions_per_query": searches / n_queries,
                "instructions_baseline": self._zero}

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _child(spec_path: str) -> None:
    """Inside Valgrind: load the saved index, set the point's parameters, search once."""
    spec = json.loads(Path(spec_path).read_text())
    module, name = spec["class"].split(":")
    cls = getattr(importlib.import_module(module), name)
    backend = cls(spec["metric"], spec["dim"], **spec["build"])
    backend.set_threads(1)
    backend.load(Path(spec["index"]))
    backend.set_query_params(**spec["params"])
    queries = np.array(np.load(spec["queries"], mmap_mode="r")[: spec["n_queries"]])
    k = spec["k"]
    if spec["n_queries"]:
        if spec["mode"] == "batch":
            backend.search_raw(queries, k)
        else:
            for i in range(len(queries)):
                backend.search_raw(queries[i : i + 1], k)


if __name__ == "__main__":
    _child(sys.argv[1])
