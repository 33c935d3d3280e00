"""`bench process A B ... --overlay NAME`: several experiments on one chart and one table.

Each experiment's series are prefixed with its name, so "faiss-flat" of two
experiments stays two lines. Experiments measured on different data are refused
(one line naming both) unless ``mixed_datasets``: a QPS on 30k vectors next to one
on 1M is no comparison, yet comparing across data is sometimes what is wanted
(the same index on two feature extractors), so it stays possible when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.errors import BenchError
from bench.core.files import atomic_write_bytes
from bench.core.paths import folder_name_problem, plots_root
from bench.process.frame import ok_runs, runs_frame, score_label
from bench.process.plots import recall_qps
from bench.process.style import series_colors
from bench.process.tables import best_qps, write_best_qps
from bench.results import load_results


def _data_identity(results: dict[str, Any]) -> str:
    """The prepared data the runs searched (fingerprints of every feature set)."""
    sets = (results.get("dataset") or {}).get("feature_sets") or {}
    prints = sorted(str(d.get("fingerprint")) for d in sets.values() if isinstance(d, dict))
    return ",".join(prints) or str((results.get("dataset") or {}).get("fingerprint"))


def overlay(specs: list[str], name: str, *, mixed_datasets: bool = False,
            svg: bool = False) -> list[Path]:
    """Recall-QPS per k and the best-QPS table of every experiment in ``specs``, under
    plots/<name>/; returns the files written."""
    problem = folder_name_problem(name)
    if problem is not None:
        raise BenchError(f"--overlay: {problem}")
    if len(specs) < 2:
        raise BenchError("--overlay needs at least two experiments")
    loaded = [load_results(spec) for spec in specs]
    names = [r.get("name") or Path(r["_path"]).parent.name for r in loaded]
    if len(set(names)) != len(names):
        raise BenchError(f"--overlay: an experiment is given twice ({', '.join(names)})")
    identities = [_data_identity(r) for r in loaded]
    if not mixed_datasets:
        for other, identity in zip(names[1:], identities[1:], strict=True):
            if identity != identities[0]:
                raise BenchError(
                    f"--overlay: {names[0]} and {other} were run on different data (dataset "
                    f"fingerprints differ); pass --mixed-datasets to draw them together")
    frames, raw = [], {}
    for exp_name, results in zip(names, loaded, strict=True):
        df = ok_runs(runs_frame(results))
        if df.empty:
            continue
        df = df.assign(experiment=exp_name, series=exp_name + " / " + df["series"],
                       id=exp_name + ":" + df["id"])
        frames.append(df)
        raw.update({f"{exp_name}:{r['id']}": r for r in results.get("runs", [])})
    if not frames:
        raise BenchError(f"--overlay: none of {', '.join(names)} has a finished run to draw")
    ok = pd.concat(frames, ignore_index=True)
    out_dir = plots_root() / name
    colors = series_colors(list(ok["series"].unique()))
    label = score_label(ok)
    title = f"{name} ({' + '.join(names)})"
    written: list[Path] = []
    for k, group in ok.groupby("k", sort=True):
        written += recall_qps(group, int(k), out_dir / f"recall_qps_k{int(k)}.png", colors,
                              title=title, label=label, all_points=False, svg=svg)
    table = best_qps(ok, raw)
    table.insert(0, "experiment", table["series"].str.split(" / ").str[0])
    written.append(write_best_qps(table, out_dir))
    csv = out_dir / "runs.csv"
    atomic_write_bytes(csv, ok.to_csv(index=False).encode())
    written.append(csv)
    return written
