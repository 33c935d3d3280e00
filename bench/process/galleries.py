"""Nearest-neighbour galleries: one PNG per selected query of an item experiment.

Each gallery shows the query, its true original and its top-k neighbours in
rank order, framed green where the neighbour is relevant and red where not, and
lands in ``galleries/<feature set>/correct/`` or ``incorrect/`` by rank 1.
Queries are selected, never all drawn: all rank-1 failures, a seeded sample, or
a seeded pick per attack type, capped by ``max_galleries``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.process.distances import neighbour_distances
from bench.process.style import slug
from bench.process.tiles import BLUE, DARK, GREEN, LIGHT, RED, Tile, compose

SELECT_MODES = ("auto", "failures", "sample", "per-attack")


@dataclass
class GalleryOptions:
    max_galleries: int = 60
    select: str = "auto"
    seed: int | None = None  # None: the experiment's seed
    run: str | None = None  # a run id (prefix), label or configuration; None: the best run


@dataclass
class GallerySet:
    """What the report needs to know about the galleries of one feature set."""

    key: str
    run: str
    k: int
    select: str
    n_queries: int
    n_failures: int
    files: list[dict[str, Any]] = field(default_factory=list)  # path, correct, caption
    warnings: list[str] = field(default_factory=list)


class Relevance:
    """Which database rows count as correct for a query: same identity, or a shared label."""

    def __init__(self, rule: str, database: list[dict], queries: list[dict]) -> None:
        self.rule = rule
        if rule == "identity":
            codes: dict[str, int] = {}
            self.db = np.array([codes.setdefault(it["identity"], len(codes))
                                if it.get("identity") is not None else -1 for it in database])
            self.q = np.array([codes.get(it.get("identity"), -2) if it.get("identity") is not None
                               else -2 for it in queries])
        else:
            self.db_labels = [set(it.get("labels") or ()) for it in database]
            self.q_labels = [set(it.get("labels") or ()) for it in queries]

    def matrix(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows), k) booleans; -1 ids (no result) are never correct."""
        top = ids[rows]
        valid = top >= 0
        if self.rule == "identity":
            return valid & (self.db[np.where(valid, top, 0)] == self.q[rows][:, None])
        out = np.zeros(top.shape, dtype=bool)
        for i, (r, row) in enumerate(zip(rows, top, strict=True)):
            wanted = self.q_labels[r]
            out[i] = [bool(j >= 0 and wanted & self.db_labels[j]) for j in row]
        return out

    def original(self, row: int) -> int | None:
        """Database row of the query's original (first item of its identity)."""
        if self.rule != "identity" or self.q[row] < 0:
            return None
        hits = np.flatnonzero(self.db == self.q[row])
        return int(hits[0]) if len(hits) else None


def relevance_rule(results: dict[str, Any], queries: list[dict]) -> str | None:
    declared = (results.get("experiment") or {}).get("relevance")
    if declared in ("identity", "label", "labels"):
        return "identity" if declared == "identity" else "labels"
    if any(q.get("identity") for q in queries):
        return "identity"
    if any(q.get("labels") for q in queries):
        return "labels"
    return None


def choose_run(df: pd.DataFrame, key: str, wanted: str | None) -> pd.Series | None:
    """The run drawn for a feature set: the one named, else largest k then best score."""
    own = df["extractor"].fillna("vectors")
    if "feature_set" in df:  # a sweep's runs name their set (its database prefix, metric)
        own = df["feature_set"].fillna(own)
    same = own == key
    runs = df[same & df["neighbors_file"].notna()] if "neighbors_file" in df else df.iloc[0:0]
    if runs.empty:
        return None
    if wanted:
        hit = runs[runs["id"].str.startswith(wanted) | (runs["label"] == wanted)
                   | (runs["config"] == wanted) | (runs["series"] == wanted)]
        if hit.empty:
            raise BenchError(f"gallery run {wanted!r}: no finished run of feature set {key} has "
                             "that id, label or configuration")
        runs = hit
    return runs.sort_values(["k", "score", "qps"], ascending=False).iloc[0]


def select_queries(mode: str, correct1: np.ndarray, groups: list[str | None], limit: int,
                   seed: int) -> np.ndarray:
    """Query rows to draw, sorted; every random choice comes from ``seed``."""
    rng = np.random.default_rng(seed)
    n = len(correct1)

    def sample(pool: np.ndarray, m: int) -> np.ndarray:
        return pool if len(pool) <= m else rng.choice(pool, size=m, replace=False)

    if mode == "failures":
        chosen = sample(np.flatnonzero(~correct1), limit)
    elif mode == "per-attack":
        names = sorted({g for g in groups if g is not None})
        if not names:
            raise BenchError("gallery selection per-attack: the queries carry no attack "
                             "attribute; use failures or sample")
        if len(names) > limit:
            names = sorted(rng.choice(names, size=limit, replace=False).tolist())
        per = max(1, limit // len(names))
        labels = np.array([g if g is not None else "" for g in groups], dtype=object)
        chosen = np.concatenate([sample(np.flatnonzero(labels == g), per) for g in names])
    else:
        chosen = sample(np.arange(n), limit)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _resolve(path: str | None, bases: list[Path]) -> Path | None:
    if not path:
        return None
    p = Path(path)
    if p.is_absolute():
        return p
    for base in bases:
        if (base / p).exists():
            return base / p
    return bases[0] / p if bases else p


def _describe(item: dict[str, Any]) -> str:
    return str(item.get("identity") or ", ".join(item.get("labels") or []) or item.get("id"))


def _tile(item: dict[str, Any], bases: list[Path], color: tuple[int, int, int],
          caption: tuple[str, ...]) -> Tile:
    return Tile(path=_resolve(item.get("path"), bases), text=item.get("text"), color=color,
                caption=caption)


def _dist(value: float | None) -> str:
    return "" if value is None or not np.isfinite(value) else f"d={value:.4g}"


def draw_gallery(row: int, items: dict[str, list[dict]], ids: np.ndarray, rel: Relevance,
                 dist: dict[int, np.ndarray], run: pd.Series, bases: list[Path]
                 ) -> tuple[Any, list[str], bool, str]:
    q = items["queries"][row]
    good = rel.matrix(ids, np.array([row]))[0]
    ranks = np.flatnonzero(good)
    attrs = q.get("attrs") or {}
    attack = attrs.get("attack")
    outcome = ("correct at rank 1" if good[:1].any() else
               f"incorrect at rank 1; first correct at rank {ranks[0] + 1}" if len(ranks) else
               f"incorrect: nothing correct in the top {ids.shape[1]}")
    header = [outcome,
              f"query {row}: {q.get('id')}" + (f"   attack {attack}" if attack else "")
              + (f" ({attrs['family']})" if attrs.get("family") else ""),
              f"run {run['config']}   k={int(run['k'])}   metric {run.get('metric', '')}"]
    left = [_tile(q, bases, BLUE, ("query", str(q.get("id")), f"attack: {attack}" if attack
                                   else _describe(q)))]
    orig = rel.original(row)
    if orig is not None:
        where = np.flatnonzero(ids[row] == orig)
        found = f"found at rank {where[0] + 1}" if len(where) else f"not in top {ids.shape[1]}"
        d = dist.get(row)
        d_orig = d[-1] if d is not None else None
        left.append(_tile(items["database"][orig], bases, DARK,
                          ("true original", f"{found}  {_dist(d_orig)}".strip(),
                           str(items["database"][orig].get("id")))))
    elif rel.rule == "identity":
        left.append(Tile(empty="original not\nin the database", color=LIGHT,
                         caption=("true original", "absent")))
    right = []
    for rank, j in enumerate(ids[row]):
        if j < 0:
            right.append(Tile(empty="no result", color=LIGHT, caption=(f"#{rank + 1}", "-1")))
            continue
        item = items["database"][int(j)]
        d = dist.get(row)
        mark = "✓" if good[rank] else "✗"
        first = f"#{rank + 1} {mark}  {_dist(d[rank] if d is not None else None)}".strip()
        who = _describe(item)
        right.append(_tile(item, bases, GREEN if good[rank] else RED,
                           (first, who) if who == str(item.get("id")) else
                           (first, who, str(item.get("id")))))
    image, warnings = compose(header, left, right)
    return image, warnings, bool(good[:1].any()), header[1]


def load_items(results_dir: Path, key: str, desc: dict[str, Any]) -> dict[str, list[dict]] | None:
    """The items file of a feature set, or None for vector data; read once per process."""
    name = desc.get("items_file")
    if not name:
        return None
    path = results_dir / name
    try:
        items = _read_json(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise BenchError(f"{path}: items file of feature set {key} is missing") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(items, dict) or not isinstance(items.get("queries"), list) \
            or not isinstance(items.get("database"), list):
        raise BenchError(f"{path}: expected an object with lists 'database' and 'queries'")
    return items


@lru_cache(maxsize=4)
def _read_json(path: str, mtime_ns: int) -> Any:
    """Items files of large datasets run to many MB: the heatmap and the galleries share one
    parse (keyed by modification time, so a rewritten file is read again)."""
    return json.loads(Path(path).read_text())


def feature_set_galleries(results: dict[str, Any], df: pd.DataFrame, key: str,
                          desc: dict[str, Any], out_dir: Path, opts: GalleryOptions
                          ) -> GallerySet | None:
    results_dir = Path(results["_path"]).parent
    items = load_items(results_dir, key, desc)
    if items is None:
        return None
    rule = relevance_rule(results, items["queries"])
    run = choose_run(df, key, opts.run)
    if rule is None or run is None:
        return None
    ids = np.load(results_dir / run["neighbors_file"], mmap_mode="r", allow_pickle=False)
    if ids.ndim != 2 or len(ids) != len(items["queries"]):
        raise BenchError(f"{results_dir / run['neighbors_file']}: {ids.shape} neighbour ids do "
                         f"not match the {len(items['queries'])} queries of {desc['items_file']}")
    ids = np.asarray(ids[:, : min(ids.shape[1], 10)], dtype=np.int64)
    rel = Relevance(rule, items["database"], items["queries"])
    correct1 = rel.matrix(ids[:, :1], np.arange(len(ids)))[:, 0]
    groups = [(q.get("attrs") or {}).get("attack") for q in items["queries"]]
    mode = opts.select
    if mode == "auto":
        mode = "per-attack" if any(g is not None for g in groups) else "sample"
    seed = opts.seed if opts.seed is not None else int((results.get("experiment") or {})
                                                       .get("seed", 0))
    rows = select_queries(mode, correct1, groups, opts.max_galleries, seed)
    originals = {int(r): rel.original(int(r)) for r in rows}
    dist = neighbour_distances(results, run, desc, ids, rows, originals)
    target = out_dir / "galleries" / slug(key)
    shutil.rmtree(target, ignore_errors=True)
    bases = [Path.cwd(), results_dir]
    source = results.get("experiment_source")
    if source:
        bases.append(Path(source).parent)
    out = GallerySet(key=key, run=str(run["config"]), k=int(ids.shape[1]), select=mode,
                     n_queries=len(ids), n_failures=int((~correct1).sum()))
    seen_warnings: set[str] = set()
    for r in rows:
        image, warnings, ok, caption = draw_gallery(int(r), items, ids, rel, dist, run, bases)
        qid = slug(str(items["queries"][r].get("id", r)))
        path = target / ("correct" if ok else "incorrect") / f"q{int(r):05d}_{qid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, compress_level=3)  # level 6 costs ~2x the time for ~10 % smaller files
        out.files.append({"path": path, "correct": ok, "caption": caption})
        for w in warnings:
            if w not in seen_warnings:
                seen_warnings.add(w)
                out.warnings.append(w)
    return out


def gallery_outputs(results: dict[str, Any], df: pd.DataFrame, out_dir: Path,
                    opts: GalleryOptions) -> list[GallerySet]:
    if opts.select not in SELECT_MODES:
        raise BenchError(f"gallery selection {opts.select!r}: expected one of "
                         f"{', '.join(SELECT_MODES)}")
    if opts.max_galleries <= 0 or df.empty:
        return []
    sets = (results.get("dataset") or {}).get("feature_sets") or {}
    made = []
    for key, desc in sets.items():
        got = feature_set_galleries(results, df, key, desc or {}, out_dir, opts)
        if got is not None:
            made.append(got)
    return made
