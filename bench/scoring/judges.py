"""Score one run's neighbour ids: k-NN recall two ways, and relevance metrics.

The harness recomputes exact float64 distances of the returned ids itself, so a
backend's own distance convention (squared or not, similarity or distance)
can never change its recall.

Relevance (identity / labels / groups) is judged by ``RelevanceJudge`` on top of
``bench.scoring.relevance`` and ``bench.scoring.metrics``. The experiment's ``relevance`` and
``query_sample`` sections are typed in bench.config.sections and validated at load;
``query_sample`` turns every mean into a mean and a std over seeded query sub-samples.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.config.sections import QuerySample, RelevanceOptions
from bench.core.errors import BenchError
from bench.groundtruth.exact import exact_distances
from bench.scoring.metrics import (
    average_precision,
    check_no_duplicates,
    grouped_mean,
    hit_rate_at_k,
    id_recall,
    pr_curve,
    precision_at_k,
    recall_at_k,
    tie_aware_recall,
)
from bench.scoring.relevance import Relevance, build_relevance, database_rows, exclude_rows

#: per-query attributes broken down by default, when the queries carry them
DEFAULT_BREAKDOWN = ("attack", "family", "category")


def knn_scores(
    ids: np.ndarray, k: int, *, database: np.ndarray, queries: np.ndarray,
    gt_ids: np.ndarray, gt_dist: np.ndarray, metric: str, dist: np.ndarray | None = None,
) -> dict[str, float]:
    """Tie-aware and id recall of one run; ``dist`` (the exact distances of ``ids``, as
    the run stage saves them for the galleries) is computed here when not given."""
    ids = ids[:, :k]
    check_no_duplicates(ids)
    if dist is None:
        dist = exact_distances(database, queries, ids, metric)
    dist = dist[:, :k]
    recall = tie_aware_recall(dist, gt_dist[:, :k], k)
    idr = id_recall(ids, gt_ids, k)
    return {
        "recall": float(recall.mean()),
        "id_recall": float(idr.mean()),
        "recall_p5": float(np.percentile(recall, 5)),
        "recall_min": float(recall.min()),
    }


class Judge(Protocol):
    """Scores one run's ids against a relevance rule; the runner merges the dict
    into the run record."""

    def scores(self, ids: np.ndarray, k: int) -> dict[str, Any]: ...


def make_judge(loaded: Any, fs: Any) -> Judge | None:
    """The judge for the experiment's ``relevance`` setting (None for plain k-NN)."""
    exp = loaded.experiment
    opts, sample = exp.relevance, exp.query_sample
    if opts.mode == "knn":
        return None if sample is None else KnnSampleJudge(fs, sample)
    if not fs.database_items or not fs.query_items:
        raise BenchError(
            f"{loaded.source}: relevance {opts.mode} needs item metadata; dataset "
            f"{exp.dataset.name} provides none"
        )
    db_items, q_items = fs.database_items, fs.query_items
    groups = None
    if opts.mode == "groups":
        groups = (read_groups(_resolve(loaded, opts.file)) if opts.file
                  else _groups_from_attrs(q_items, loaded.source))
    rel = build_relevance(opts.mode, db_items, q_items, groups, match=opts.match)
    excluded = None
    if opts.exclude_source:
        sources = [it.attrs.get("source") for it in q_items]
        if all(s is None for s in sources):
            raise BenchError(f"{loaded.source}: relevance.exclude_source: no query item has a "
                             "'source' attribute (the database id of its source image)")
        excluded = database_rows(db_items, [None if s is None else str(s) for s in sources],
                                 what="query source")
        rel = rel.without(excluded)
    judge = RelevanceJudge(rel, opts, exp.ks, q_items, excluded=excluded, sample=sample)
    if opts.mode == "identity" and opts.pooled.enabled:
        from bench.scoring.copy_detection import PooledScorer

        families = ([str(it.attrs.get("family", "")) for it in q_items]
                    if any("family" in it.attrs for it in q_items) else None)
        judge.pooled = PooledScorer(
            opts.pooled, database=fs.database, queries=fs.queries, metric=fs.metric,
            n_relevant=judge.n_relevant, background=getattr(fs, "background", None),
            families=families, where=str(loaded.source))
    return judge


def _resolve(loaded: Any, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else loaded.base_dir / p


def read_groups(path: Path) -> dict[str, list[str]]:
    """Relevant database ids per query id, from JSON or from CSV/TSV pairs."""
    if not path.is_file():
        raise BenchError(f"relevance.file: {path} not found")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise BenchError(f"{path}: expected a JSON object {{query id: [database ids]}}")
        return {str(q): [str(d) for d in v] for q, v in data.items()}
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    groups: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.reader(fh, delimiter=delimiter), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 2:
                raise BenchError(f"{path}:{line}: expected 'query id{delimiter}database id'")
            groups.setdefault(row[0].strip(), []).append(row[1].strip())
    return groups


def _groups_from_attrs(items: list[Any], source: Path) -> dict[str, list[str]]:
    groups = {it.id: [str(d) for d in it.attrs["relevant"]] for it in items
              if "relevant" in it.attrs}
    if not groups:
        raise BenchError(f"{source}: relevance groups needs relevance.file or query items "
                         "with a 'relevant' attribute (list of database ids)")
    return groups


def _sample_rows(n: int, sample: QuerySample) -> list[np.ndarray]:
    if sample.size > n and not sample.replace:
        raise BenchError(f"query_sample.size {sample.size} is larger than the {n} queries; "
                         "set replace: true or a smaller size")
    rng = np.random.default_rng(sample.seed)
    return [np.sort(rng.choice(n, size=sample.size, replace=sample.replace))
            for _ in range(sample.repeats)]


def _mean(values: np.ndarray) -> float | None:
    v = values[~np.isnan(values)]
    return float(v.mean()) if v.size else None


def summarise(per_query: dict[str, np.ndarray], rows: list[np.ndarray] | None) -> dict[str, Any]:
    """Mean of each per-query metric (NaN = undefined, left out); with sub-samples,
    the mean over repeats and ``<name>_std`` (ddof 1: the spread of one repeat)."""
    out: dict[str, Any] = {}
    for name, values in per_query.items():
        if rows is None:
            out[name] = _mean(values)
            continue
        means = np.array([m for r in rows if (m := _mean(values[r])) is not None])
        out[name] = float(means.mean()) if means.size else None
        out[f"{name}_std"] = float(means.std(ddof=1)) if means.size > 1 else 0.0
    return out


class KnnSampleJudge:
    """k-NN recall as mean and std over query sub-samples (overrides the full-set means)."""

    def __init__(self, fs: Any, sample: QuerySample) -> None:
        self.fs = fs
        self.sample = sample
        self.rows = _sample_rows(len(fs.queries), sample)

    def scores(self, ids: np.ndarray, k: int) -> dict[str, Any]:
        fs = self.fs
        ids = np.asarray(ids)[:, :k]
        dist = exact_distances(fs.database, fs.queries, ids, fs.metric)
        per_query = {"recall": tie_aware_recall(dist, fs.gt_dist[:, :k], k),
                     "id_recall": id_recall(ids, fs.gt_ids, k)}
        return {**summarise(per_query, self.rows), "query_sample": self.sample.model_dump()}


class RelevanceJudge:
    """Identity, label or group relevance: hit rate, recall, precision, AP, PR curve.

    A run asked for k results is judged on its ranking after exclusion of each
    query's source and de-duplication (both optional), at the cut-offs up to k.
    """

    def __init__(
        self, rel: Relevance, opts: RelevanceOptions, ks: list[int], query_items: list[Any], *,
        excluded: np.ndarray | None = None, sample: QuerySample | None = None,
    ) -> None:
        self.rel = rel
        self.opts = opts
        self.ks = ks
        self.excluded = excluded
        self.sample = sample
        self.n_relevant = rel.n_relevant(distinct_keys=opts.dedupe)
        if opts.dedupe:
            rel.item_keys()  # fail now, not after the first build, when dedupe cannot work
        self.rows = _sample_rows(rel.n_queries, sample) if sample else None
        #: pooled copy-detection scoring (bench.scoring.copy_detection), identity mode
        self.pooled: Any = None
        keys = opts.by if opts.by is not None else [
            key for key in DEFAULT_BREAKDOWN if any(key in it.attrs for it in query_items)]
        self.breakdown = {key: [str(it.attrs.get(key, "")) for it in query_items] for key in keys}

    def cutoffs(self, k: int) -> list[int]:
        wanted = self.opts.at if self.opts.at is not None else [*self.ks, k]
        return sorted({c for c in wanted if c <= k}) or [k]

    def ranking(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if self.excluded is not None:
            ids = exclude_rows(ids, self.excluded)
        if self.opts.dedupe:
            ids = self.rel.dedupe(ids)
        return ids

    def scores(self, ids: np.ndarray, k: int) -> dict[str, Any]:
        cuts = self.cutoffs(k)
        top = max(cuts)
        check_no_duplicates(np.asarray(ids)[:, :k])
        full = self.ranking(np.asarray(ids)[:, :k])
        ranking = full[:, :top]
        mask = self.rel.relevant_mask(ranking)
        n_rel = self.n_relevant
        per_query: dict[str, np.ndarray] = {}
        for c in cuts:
            per_query[f"hit_rate@{c}"] = hit_rate_at_k(mask, n_rel, c)
            per_query[f"recall@{c}"] = recall_at_k(mask, n_rel, c)
            per_query[f"precision@{c}"] = precision_at_k(mask, n_rel, c)
        per_query["map"] = average_precision(mask, n_rel, self.opts.map_cutoff or top,
                                             self.opts.ap_denominator)
        out = summarise(per_query, self.rows)
        out["hit_rate"] = out[f"hit_rate@{top}"]
        if self.rows is not None:
            out["hit_rate_std"] = out[f"hit_rate@{top}_std"]
            out["query_sample"] = self.sample.model_dump() if self.sample else None
        out["queries_without_relevant"] = int((n_rel == 0).sum())
        out["relevant_per_query"] = float(n_rel.mean())
        if self.rel.kind == "identity":
            out["queries_without_original"] = out["queries_without_relevant"]
        short = int(((ranking >= 0).sum(axis=1) < np.minimum(top, self.rel.n_database)).sum())
        if self.excluded is not None or self.opts.dedupe:
            out["short_rankings"] = short
        out["pr_curve"] = self._pr(mask)
        if self.pooled is not None:
            full_mask = mask if full.shape[1] == top else self.rel.relevant_mask(full)
            out.update(self.pooled.scores(full, full_mask))
        for key, labels in self.breakdown.items():
            out[f"hit_rate_by_{key}"] = _none_for_nan(
                grouped_mean(per_query[f"hit_rate@{top}"], labels))
            out[f"map_by_{key}"] = _none_for_nan(grouped_mean(per_query["map"], labels))
            if self.rel.kind != "identity":
                out[f"recall_by_{key}"] = _none_for_nan(
                    grouped_mean(per_query[f"recall@{top}"], labels))
        return out

    def _pr(self, mask: np.ndarray) -> dict[str, list[float]]:
        curve = pr_curve(mask, self.n_relevant)
        width = len(curve.precision)
        ranks = np.arange(1, width + 1)
        if width > self.opts.pr_points:
            ranks = np.unique(np.linspace(1, width, self.opts.pr_points).round().astype(int))
        return {"precision": [_num(curve.precision[r - 1]) for r in ranks],
                "recall": [_num(curve.recall[r - 1]) for r in ranks],
                "ranks": ranks.tolist()}


def _num(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 6)


def _none_for_nan(d: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if np.isnan(v) else v) for k, v in d.items()}
