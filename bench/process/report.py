"""plots/<name>/report.html: one static page rendered with Jinja2.

Images are referenced by relative paths (the page works from its folder, on any
machine, offline) or, with ``self_contained``, embedded as data URIs so the one
file can be mailed around. Nothing is loaded from a network: no CDN, no fonts,
no scripts.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.files import atomic_write_bytes
from bench.process.galleries import GallerySet
from bench.process.registry import sections
from bench.results import now_iso
from bench.results.record import param_text

GALLERY_SAMPLE = 8


def _src(path: Path, out_dir: Path, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return path.relative_to(out_dir).as_posix()


def figures(paths: list[Path], out_dir: Path, embed: bool,
            captions: dict[Path, tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Figures grouped by the section their registered figure names (bench.process.registry)."""
    captions = captions or {}
    by_section: dict[str, list[dict[str, str]]] = {s: [] for s in sections()}
    for path in paths:
        if path.suffix != ".png" or "galleries" in path.parts:
            continue
        section, caption = captions.get(path, ("Other", ""))
        by_section.setdefault(section, [])
        by_section[section].append({"src": _src(path, out_dir, embed), "name": path.name,
                                    "caption": caption})
    return [{"title": s, "figures": f} for s, f in by_section.items() if f]


def _spread(files: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """n files evenly spaced through the list (galleries are ordered by query, so the first
    n would all show the same few originals)."""
    if n <= 0 or not files:
        return []
    if len(files) <= n:
        return list(files)
    step = len(files) / n
    return [files[int(i * step)] for i in range(n)]


def _gallery_view(sets: list[GallerySet], out_dir: Path, embed: bool) -> list[dict[str, Any]]:
    views = []
    for g in sets:
        wrong = [f for f in g.files if not f["correct"]]
        right = [f for f in g.files if f["correct"]]
        half = GALLERY_SAMPLE // 2
        sample = _spread(wrong, max(half, GALLERY_SAMPLE - len(right)))
        sample += _spread(right, GALLERY_SAMPLE - len(sample))
        views.append({
            "key": g.key, "run": g.run, "k": g.k, "select": g.select, "n_queries": g.n_queries,
            "n_failures": g.n_failures, "n_drawn": len(g.files), "n_wrong": len(wrong),
            "folder": (out_dir / "galleries" / g.key).relative_to(out_dir).as_posix(),
            "warnings": g.warnings[:20], "n_warnings": len(g.warnings),
            "sample": [{"src": _src(f["path"], out_dir, embed), "caption": f["caption"],
                        "correct": f["correct"],
                        "href": f["path"].relative_to(out_dir).as_posix()} for f in sample],
        })
    return views


def _mb(value: Any) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int | float) else ""


def _pool(info: Any) -> str:
    """One threadpoolctl entry: `openblas 0.3.27 (2 threads)`."""
    if not isinstance(info, dict):
        return str(info)
    name = " ".join(str(info[k]) for k in ("internal_api", "version") if info.get(k))
    return f"{name} ({info['num_threads']} threads)" if info.get("num_threads") else name


def summary(results: dict[str, Any], df: pd.DataFrame) -> dict[str, Any]:
    exp = results.get("experiment") or {}
    ds = results.get("dataset") or {}
    n_ok = int((df["status"] == "ok").sum()) if not df.empty else 0
    rows = [
        ("experiment", results.get("name", "")), ("description", exp.get("description", "")),
        ("dataset", " ".join(p for p in (ds.get("name", ""),
                                         f"({param_text(ds.get('options'))})") if p != "()")),
        ("metric", exp.get("metric", "")), ("relevance", exp.get("relevance", "")),
        ("k", exp.get("k", "")), ("mode / threads / repeats",
                                  f"{exp.get('mode', '')} / {exp.get('threads', '')} / "
                                  f"{exp.get('runs', '')}"),
        ("runs", f"{len(df)} ({n_ok} ok, {len(df) - n_ok} failed)"),
        ("created / updated", f"{results.get('created', '')} / {results.get('updated', '')}"),
        ("results file", results.get("_path", "")), ("schema", results.get("schema", "")),
        ("experiment source", results.get("experiment_source", "")),
        ("executor", results.get("executor", "")),
    ]
    feature_sets = []
    for key, d in (ds.get("feature_sets") or {}).items():
        d = d or {}
        feature_sets.append({
            "key": key, "n_database": d.get("n_database", ""), "n_queries": d.get("n_queries", ""),
            "dim": d.get("dim", ""), "dtype": d.get("dtype", ""),
            "data_mb": _mb(d.get("data_bytes")) if d.get("data_bytes") else "",
            "ground_truth": d.get("ground_truth", ""),
            "sanity": d.get("sanity_exact_recall", ""), "skipped": len(d.get("skipped") or []),
        })
    env = results.get("environment") or {}
    env_rows = [(k, env.get(k, "")) for k in ("python", "platform", "cpu", "cpu_count",
                                              "threads", "git_commit")]
    env_rows.append(("memory", _mb(env.get("memory_total_bytes"))))
    env_rows += [(f"env {k}", v) for k, v in (env.get("env") or {}).items()]
    blas = env.get("blas") or []
    env_rows += [("BLAS / OpenMP", ", ".join(_pool(b) for b in blas))]
    return {"rows": [(k, v) for k, v in rows if v not in ("", None)],
            "feature_sets": feature_sets, "environment": env_rows,
            "packages": sorted((env.get("packages") or {}).items())}


RUN_COLUMNS = [("config", "configuration"), ("k", "k"), ("status", "status"),
               ("score", "score"), ("qps", "QPS"), ("build_time_s", "build s"),
               ("index_mb", "index MB"), ("peak_mb", "worker peak MB"),
               ("peak_x_data", "peak / data"), ("latency_p99_ms", "p99 ms")]


def run_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]], list[dict[str, str]]]:
    if df.empty:
        return [], [], []
    cols = [(c, h) for c, h in RUN_COLUMNS if c in df]
    body = []
    for _, r in df.sort_values(["series", "k", "config"]).iterrows():
        body.append([_cell(r[c]) for c, _ in cols])
    failed = [{"config": r["config"], "k": _cell(r["k"]), "status": r["status"],
               "stage": _cell(r.get("stage")), "error": _cell(r.get("error"))}
              for _, r in df[df["status"] != "ok"].iterrows()]
    return [h for _, h in cols], body, failed


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def write_report(out_dir: Path, *, results: dict[str, Any], df: pd.DataFrame,
                 written: list[Path], best_qps: list[dict[str, Any]], score_label: str,
                 galleries: list[GallerySet], notes: list[str], embed: bool = False,
                 copy_detection: dict[str, Any] | None = None,
                 captions: dict[Path, tuple[str, str]] | None = None) -> Path:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    columns, body, failed = run_rows(df)
    path = out_dir / "report.html"
    page = env.get_template("report.html.j2").render(
        name=results.get("name", ""), generated=now_iso(), summary=summary(results, df),
        best_qps=best_qps, score_label=score_label,
        sections=figures(written, out_dir, embed, captions),
        galleries=_gallery_view(galleries, out_dir, embed),
        run_columns=columns, run_rows=body, failed=failed, notes=notes,
        copy_detection=copy_detection,
        files=sorted(p.relative_to(out_dir).as_posix() for p in written
                     if "galleries" not in p.parts) + ["report.html"],
    )
    atomic_write_bytes(path, page.encode())
    return path
