"""The four "one new module" examples of docs/architecture.md run as written.

Each python block is executed as a module (registering its backend, extractor,
dataset or figure), then the document's experiment runs end to end with them and
its report shows the new figure: if the extension points change, the docs fail here.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import yaml
from rich.console import Console

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def example_modules():
    from bench.algorithms import registry as algorithms
    from bench.datasets import registry as datasets
    from bench.extractors import registry as extractors
    from bench.process.registry import registered, unregister

    before = {r: set(r.names()) for r in (algorithms, datasets, extractors)}
    figures_before = {f.name for f in registered()}
    modules = []
    for i, code in enumerate(_blocks("python")):
        module = types.ModuleType(f"architecture_example_{i}")
        sys.modules[module.__name__] = module
        exec(compile(code, f"{DOC}:example{i}", "exec"), module.__dict__)  # noqa: S102
        modules.append(module.__name__)
    yield
    for reg, names in before.items():
        for name in set(reg.names()) - names:
            reg._classes.pop(name, None)
    for fig in registered():
        if fig.name not in figures_before:
            unregister(fig.name)
    for name in modules:
        sys.modules.pop(name, None)


def test_the_documented_extensions_run_end_to_end(example_modules, tmp_path):
    from bench.process import process_results
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    assert len(_blocks("python")) == 4
    spec = yaml.safe_load(_blocks("yaml")[0])
    path = tmp_path / "words-demo.yaml"
    path.write_text(yaml.safe_dump(spec))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False), console)
    runs = load_results(results.path)["runs"]
    assert {r["label"] for r in runs} == {"tiny", "reference"}
    assert all(r["status"] == "ok" for r in runs), [r.get("error") for r in runs]
    tiny = {r["k"]: r for r in runs if r["label"] == "tiny"}
    reference = {r["k"]: r for r in runs if r["label"] == "reference"}
    assert tiny[1]["recall"] == 1.0
    assert tiny[3]["hit_rate"] == reference[3]["hit_rate"] > 0
    written = process_results(results.path)
    assert any(p.name == "qps_bars.png" for p in written)
    html = next(p for p in written if p.name == "report.html").read_text()
    assert "Throughput" in html and "Queries per second of every run" in html
