"""A comparison as a terminal table, Markdown (for a pull-request comment) or JUnit XML
(so CI systems list every checked run as a test case and show which one broke).

All three show the same cells, so what a reviewer reads in the comment is what
the job printed: recall, QPS, build time and memory, each with the change that
the gate judged (the *normalised* speed and build change, not the raw one).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.gate.compare import NO_REFERENCE, Comparison, RunComparison
from bench.results.record import index_mb, score

COLUMNS = ("run", "recall", "Δ recall", "QPS", "Δ speed", "build s", "Δ build", "index MB",
           "Δ memory", "verdict")
_MARK = {"pass": "✅ pass", "fail": "❌ FAIL", "missing": "❌ MISSING", "new": "🆕 new",
         "skipped": "⏭ skipped"}


def _pair(base: Any, cur: Any, fmt: str) -> str:
    def one(v: Any) -> str:
        return "–" if v is None else format(v, fmt)

    if base is None and cur is None:
        return ""
    return f"{one(base)} → {one(cur)}"


def _get(run: dict[str, Any] | None, key: str) -> Any:
    return None if run is None else run.get(key)


def _change(row: RunComparison, metric: str) -> tuple[str, bool]:
    check = row.check(metric)
    if check is None or check.change is None:
        return ("" if check is None else check.note), bool(check is None or check.ok)
    text = signed(check.change, metric)
    if check.ci is not None and check.ci[0] != check.ci[1]:  # the 95 % CI it was judged on
        text += f" [{check.ci[0]:+.0%}, {check.ci[1]:+.0%}]"
    if row.is_reference and metric == "speed":
        text = "reference"
    return text, check.ok


def signed(change: float, metric: str) -> str:
    """+0.0123 for recall, +1.2% for the rest; never a confusing -0.0."""
    text = f"{change:+.4f}" if metric == "recall" else f"{change:+.1%}"
    return text.replace("-", "+") if text.strip("-+0.%") == "" else text


def row_cells(row: RunComparison) -> list[tuple[str, bool]]:
    """(text, ok) for every column of one row."""
    b, c = row.baseline, row.current
    b_score = None if b is None else score(b)
    c_score = None if c is None else score(c)
    cells = [
        (row.name + (" (reference)" if row.is_reference else ""), True),
        (_pair(b_score, c_score, ".4f"), True), _change(row, "recall"),
        (_pair(_get(b, "qps"), _get(c, "qps"), ",.0f"), True),
        _change(row, "instructions" if row.check("instructions") else "speed"),
        (_pair(_get(b, "build_time_s"), _get(c, "build_time_s"), ".3f"), True),
        _change(row, "build"),
        (_pair(index_mb(b), index_mb(c), ".2f"), True), _change(row, "memory"),
        (row.verdict, not row.failed),
    ]
    status = row.check("status")
    if status is not None and not status.ok:
        cells[-1] = (f"{row.verdict}: {status.note}", False)
    return cells


def summary_line(comparison: Comparison) -> str:
    checked = comparison.count("pass") + comparison.count("fail")
    bad = comparison.count("fail") + comparison.count("missing")
    parts = [f"{checked} runs checked", f"{bad} regressed" if bad else "no regression"]
    for verdict in ("missing", "new", "skipped"):
        if comparison.count(verdict):
            parts.append(f"{comparison.count(verdict)} {verdict}")
    return ", ".join(parts)


def tolerance_line(comparison: Comparison) -> str:
    t = comparison.tolerances
    ref = t.reference or "faiss Flat"
    basis = ("raw QPS and build seconds" if t.reference == NO_REFERENCE
             else f"speed and build as ratios to {ref} in the same file")
    machine = ""
    if comparison.machine_factor is not None:
        machine = f"; current machine ran the reference at {comparison.machine_factor:.2f}x"
    return (f"tolerances: recall drop ≤ {t.recall_drop:g}, speed ratio drop ≤ "
            f"{t.speed_ratio_drop:.0%}, build ratio rise ≤ {t.build_ratio_rise:.0%}, memory rise "
            f"≤ {t.memory_rise:.0%} ({basis}{machine})")


def print_table(comparison: Comparison, console: Console) -> None:
    table = Table(title=f"{comparison.baseline_name} → {comparison.current_name}",
                  title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("run", "verdict") else "right")
    for row in comparison.rows:
        table.add_row(*(text if ok else f"[bold red]{text}[/]"
                        for text, ok in row_cells(row)))
    console.print(table)
    for warning in comparison.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(tolerance_line(comparison), highlight=False)
    style = "bold red" if comparison.failed else "bold green"
    console.print(f"[{style}]{'FAIL' if comparison.failed else 'PASS'}[/]: "
                  f"{summary_line(comparison)}", highlight=False)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(comparison: Comparison) -> str:
    verdict = "❌ **FAIL**" if comparison.failed else "✅ **PASS**"
    lines = [f"### featbench compare: {verdict} — {summary_line(comparison)}", ""]
    lines.append(f"`{comparison.baseline_name}` → `{comparison.current_name}`; "
                 f"{_md_escape(tolerance_line(comparison))}")
    lines.append("")
    for warning in comparison.warnings:
        lines.append(f"> ⚠️ {_md_escape(warning)}")
    if comparison.warnings:
        lines.append("")
    problems = [(r, p) for r in comparison.rows if r.failed
                for p in (r.problems() or [f"{r.verdict}: not in the current results"])]
    if problems:
        lines += [f"- **{_md_escape(r.name)}**: {_md_escape(p)}" for r, p in problems]
        lines.append("")
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join(":--" if c in ("run", "verdict") else "--:" for c in COLUMNS)
                 + "|")
    for row in comparison.rows:
        cells = []
        for i, (text, ok) in enumerate(row_cells(row)):
            if i == len(COLUMNS) - 1:
                text = _MARK.get(row.verdict, row.verdict) + text[len(row.verdict):]
            cells.append(_md_escape(text) if ok else f"**{_md_escape(text)}**")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_junit(comparison: Comparison, suite: str = "featbench compare") -> str:
    """One <testcase> per run: failures for regressions and missing runs, skipped
    for runs that are new or failed in the baseline too."""
    rows = comparison.rows
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", {
        "name": suite, "tests": str(len(rows)),
        "failures": str(sum(r.failed for r in rows)), "errors": "0",
        "skipped": str(sum(r.verdict in ("new", "skipped") for r in rows)),
    })
    props = ET.SubElement(ts, "properties")
    for name, value in (("baseline", comparison.baseline_name),
                        ("current", comparison.current_name),
                        ("tolerances", tolerance_line(comparison))):
        ET.SubElement(props, "property", {"name": name, "value": value})
    classname = f"featbench.{comparison.current_name}"
    for row in rows:
        case = ET.SubElement(ts, "testcase", {"classname": classname, "name": row.name,
                                              "time": "0"})
        details = "\n".join(c.describe() for c in row.checks)
        if row.verdict == "fail":
            problems = row.problems()
            ET.SubElement(case, "failure", {"message": "; ".join(problems),
                                            "type": "regression"}).text = details
        elif row.verdict == "missing":
            ET.SubElement(case, "failure", {
                "message": "run missing from the current results", "type": "missing"})
        elif row.verdict == "new":
            ET.SubElement(case, "skipped", {"message": "new run, not in the baseline"})
        elif row.verdict == "skipped":
            ET.SubElement(case, "skipped", {
                "message": f"run was {row.baseline and row.baseline.get('status')} in the "
                           "baseline; not checked"})
        if details and row.verdict != "fail":
            ET.SubElement(case, "system-out").text = details
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
