"""The command line and experiment loader reach the features built in their own modules:
``--repeat``, ``--address``, the ``compare:`` section and ``torchvision:``/``timm:`` names."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import small_experiment

from bench.cli.main import cli
from bench.config.experiment import load_experiment
from bench.core.errors import BenchError
from bench.gate.compare import Tolerances


def test_run_repeat_records_medians_and_spread(write_experiment):
    spec = small_experiment(name="rep-cli")
    spec["algorithms"] = spec["algorithms"][:1]
    path = write_experiment(spec)
    res = CliRunner().invoke(cli, ["run", str(path), "--no-progress", "--repeat", "2"])
    assert res.exit_code == 0, res.output
    data = json.loads((path.parent / "results" / "rep-cli" / "results.json").read_text())
    assert data["repeat"]["n"] == 2
    assert len(data["runs"][0]["repeat"]["qps"]) == 2


def test_run_repeat_must_be_positive(write_experiment):
    path = write_experiment(small_experiment())
    res = CliRunner().invoke(cli, ["run", str(path), "--repeat", "0"])
    assert res.exit_code == 2 and "--repeat" in res.output


def test_address_without_the_ray_executor_is_refused(write_experiment, monkeypatch):
    monkeypatch.delenv("BENCH_RAY_ADDRESS", raising=False)
    path = write_experiment(small_experiment())
    res = CliRunner().invoke(cli, ["run", str(path), "--address", "localhost:6379"])
    assert res.exit_code == 2 and "--address only applies to --executor ray" in res.output


def test_compare_section_is_validated_with_the_experiment(write_experiment):
    loaded = load_experiment(write_experiment(small_experiment(
        compare={"recall_drop": 0.02, "speed_ratio_drop": 0.3})))
    assert loaded.experiment.compare == Tolerances(recall_drop=0.02, speed_ratio_drop=0.3)
    with pytest.raises(BenchError, match=r"compare\.recal_drop"):
        load_experiment(write_experiment(small_experiment(compare={"recal_drop": 0.1})))


@pytest.mark.parametrize(("name", "adapter", "model"), [
    ("torchvision:resnet18", "torchvision", "resnet18"),
    ("timm:vit_small_patch16_224", "timm", "vit_small_patch16_224"),
])
def test_library_model_names_map_to_the_adapter(write_experiment, tmp_path, name, adapter,
                                                model):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"unused: validation does not read weights")
    spec = small_experiment(extractor={"name": name, "weights": str(weights)})
    section = load_experiment(write_experiment(spec)).experiment.extractors[0]
    assert section.name == adapter and section.options()["model"] == model


def test_library_model_name_contradicting_its_model_option(write_experiment, tmp_path):
    spec = small_experiment(extractor={"name": "torchvision:resnet18", "model": "resnet50",
                                       "weights": str(tmp_path / "w.pt")})
    with pytest.raises(BenchError, match="contradicts the name"):
        load_experiment(write_experiment(spec))
