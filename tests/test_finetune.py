"""bench finetune: the NT-Xent loss, data parallelism, determinism, resume after SIGKILL."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("kornia")

from bench.finetune.loss import nt_xent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def reference_nt_xent(z_a, z_b, t):
    """SimCLR's loss written out: 2N anchors, the other view is the positive, every other
    view of the batch a negative, the anchor itself excluded; mean over both directions."""
    z = np.concatenate([z_a, z_b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z_a)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        sims = {j: float(z[i] @ z[j]) / t for j in range(2 * n) if j != i}
        total += -sims[pos] + math.log(sum(math.exp(s) for s in sims.values()))
    return total / (2 * n)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_matches_a_reference(t):
    rng = np.random.default_rng(0)
    z_a, z_b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    got = nt_xent(torch.tensor(z_a), torch.tensor(z_b), t).item()
    assert got == pytest.approx(reference_nt_xent(z_a, z_b, t), rel=1e-9)
    # both directions count equally: swapping the views changes nothing
    assert nt_xent(torch.tensor(z_b), torch.tensor(z_a), t).item() == pytest.approx(got)
    # the positive is the same image's other view: pairing views wrongly costs more
    wrong = nt_xent(torch.tensor(z_a), torch.tensor(np.roll(z_a, 1, axis=0)), t).item()
    right = nt_xent(torch.tensor(z_a), torch.tensor(z_a * 2), t).item()
    assert right < wrong


def _images(folder: Path, n: int = 8) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        base = rng.integers(0, 255, size=(1, 1, 3))
        noise = rng.integers(0, 60, size=(40, 48, 3))
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _config(tmp_path: Path, name: str, **overrides) -> Path:
    spec = {
        "name": name, "seed": 3,
        "encoder": {"name": "simclr-mini-r18"},
        "data": {"dataset": {"name": "image-folder", "path": str(_images(tmp_path / "img"))}},
        "epochs": 2, "batch_size": 4, "temperature": 0.2,
        "optimizer": {"name": "lars", "lr": 2.0},
        "schedule": {"warmup_epochs": 0.5},
        "augment": {"size": 32}, "device": "cpu", "threads": 1,
    }
    spec.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _log(folder: Path) -> list[dict]:
    with open(folder / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _state(path: Path) -> dict:
    ckpt = torch.load(path, weights_only=True)
    return {f"{part}.{k}": v for part in ("encoder", "head") for k, v in ckpt[part].items()}


def test_two_processes_see_the_loss_of_one_process_on_the_whole_batch(tmp_path):
    from bench.finetune.launch import finetune

    one = finetune(_config(tmp_path, "one", batch_size=8, epochs=1), nproc=1, progress=False,
                   max_steps=1)
    two = finetune(_config(tmp_path, "two", batch_size=4, epochs=1), nproc=2, progress=False,
                   max_steps=1)
    first_one, first_two = _log(one)[0], _log(two)[0]
    assert float(first_two["loss"]) == pytest.approx(float(first_one["loss"]), rel=1e-5)
    assert json.loads((two / "manifest.json").read_text())["world_size"] == 2


def test_same_seed_gives_identical_checkpoints(tmp_path):
    from bench.finetune.launch import finetune

    config = _config(tmp_path, "same", workers=1)
    spec = yaml.safe_load(config.read_text())
    spec["validation"] = spec["data"]
    config.write_text(yaml.safe_dump(spec))
    first = finetune(config, progress=False)
    a = _state(first / "epoch_2.pth")
    b = _state(finetune(config, progress=False, force=True) / "epoch_2.pth")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = _state(first / "epoch_0.pth")  # and training changed the weights
    assert not torch.equal(before["encoder.stem.0.weight"], a["encoder.stem.0.weight"])
    manifest = json.loads((first / "manifest.json").read_text())
    assert [e["epoch"] for e in manifest["epochs"]] == [0, 1, 2]
    assert all(e["images_per_s"] > 0 and e["val_loss"] > 0 for e in manifest["epochs"][1:])
    # a DataLoader worker draws the same views as the main process
    c = _state(finetune(_config(tmp_path, "same", workers=0, validation=spec["validation"]),
                        progress=False, force=True) / "epoch_2.pth")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_resume_after_sigkill_continues_from_the_last_epoch(tmp_path):
    from bench.finetune.launch import finetune

    epochs = 6
    config = _config(tmp_path, "killed", epochs=epochs)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.cli", "finetune", str(config), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = Path(os.environ["BENCH_RESULTS"]) / "finetune" / "killed" / "manifest.json"
    done: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file():
            done = [e["epoch"] for e in json.loads(manifest.read_text())["epochs"]]
            if max(done) >= 1:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    last = max(json.loads(manifest.read_text())["epochs"], key=lambda e: e["epoch"])["epoch"]
    assert 1 <= last < epochs
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming after epoch {last}" in " ".join(resumed.stderr.split())
    folder = manifest.parent
    rows = [r for r in _log(folder) if r["loss"]]
    assert [int(r["step"]) for r in rows] == list(range(1, 2 * epochs + 1))  # no gap, no repeat
    assert [e["epoch"] for e in json.loads(manifest.read_text())["epochs"]] == list(
        range(epochs + 1))
    # the resumed run computes what an uninterrupted one computes
    os.environ["BENCH_RESULTS"] = str(tmp_path / "uninterrupted")
    straight = finetune(config, progress=False)
    a, b = _state(folder / f"epoch_{epochs}.pth"), _state(straight / f"epoch_{epochs}.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in _log(straight) if r["loss"]] == [r["loss"] for r in rows]


def test_epoch_sweep_scores_every_checkpoint(tmp_path, write_experiment):
    from bench.config.experiment import load_experiment
    from bench.finetune.launch import finetune
    from bench.process import process_results
    from bench.run.runner import RunOptions, run_experiment

    finetune(_config(tmp_path, "swept"), progress=False)
    spec = {
        "name": "sweep", "seed": 1,
        "dataset": {"name": "copydetect-mini", "n_distractors": 0, "max_side": 96,
                    "photos": ["astronaut", "camera", "coffee", "chelsea"],
                    "attacks": ["gaussian_blur_3", "salt_pepper_0.05"], "progress": False},
        "extractor": {"name": "simclr-mini-r18", "batch_size": 16, "device": "cpu",
                      "workers": 0, "weights": {"finetune": "swept", "epochs": "all"}},
        "metric": "angular", "k": [1], "relevance": "identity", "runs": 1,
        "algorithms": [{"algorithm": "bruteforce", "name": "exact"}],
    }
    loaded = load_experiment(write_experiment(spec))
    assert [(s.key, s.epoch) for s in loaded.experiment.extractors] == [
        (f"simclr-mini-r18@swept-epoch{e}", e) for e in (0, 1, 2)]
    results = run_experiment(write_experiment(spec), RunOptions(progress=False,
                                                                executor="inline"))
    runs = sorted(results.data["runs"], key=lambda r: r["epoch"])
    assert [r["epoch"] for r in runs] == [0, 1, 2]
    assert all(r["status"] == "ok" and 0 <= r["hit_rate@1"] <= 1 for r in runs)
    # features are cached per checkpoint: three feature sets, three fingerprints
    sets = results.data["dataset"]["feature_sets"]
    assert len({d["fingerprint"] for d in sets.values()}) == 3
    written = process_results("sweep")
    assert any(p.name == "recall_vs_epoch_k1.png" for p in written)
    # identity runs carry the pooled copy-detection view too: µAP against epoch
    assert all(r["uap"] is not None for r in runs)
    assert any(p.name == "uap_vs_epoch_k1.png" for p in written)
    assert "Fine-tuning epochs" in written[-1].read_text()
    # a clustering experiment over the same checkpoints: metrics against epoch
    clustering = {**spec, "name": "sweep-clusters", "kind": "clustering", "algorithms": [],
                  "clustering": {"algorithms": [{"algorithm": "kmeans", "metric": "euclidean",
                                                 "n_clusters": ["identities"]}]}}
    for key in ("k", "relevance", "runs"):
        clustering.pop(key)
    clustered = run_experiment(write_experiment(clustering, "clusters.yaml"),
                               RunOptions(progress=False, executor="inline"))
    assert sorted(r["epoch"] for r in clustered.data["runs"]) == [0, 1, 2]
    assert any(p.name == "clustering_vs_epoch.png" for p in process_results("sweep-clusters"))
    # explicit epochs need no run yet; an epoch the manifest lacks is one clear line
    spec["extractor"]["weights"] = {"finetune": "swept", "epochs": [0, 7]}
    from bench.core.errors import BenchError

    with pytest.raises(BenchError, match=r"epochs: epoch 7 is not in"):
        load_experiment(write_experiment(spec))
    spec["extractor"]["weights"] = {"finetune": "not-trained", "epochs": [0, 1]}
    assert len(load_experiment(write_experiment(spec)).experiment.extractors) == 2


def test_bad_configs_are_one_line_errors(tmp_path):
    from bench.core.errors import BenchError
    from bench.finetune.launch import finetune

    path = _config(tmp_path, "bad", optimiser={"name": "lars"})
    with pytest.raises(BenchError, match=r"bad.yaml: optimiser: unknown key"):
        finetune(path, progress=False)
    with pytest.raises(BenchError, match=r"encoder.name: 'simclr-v3' is not a built-in"):
        finetune(_config(tmp_path, "bad", encoder={"name": "simclr-v3"}), progress=False)
    with pytest.raises(BenchError, match=r"needs at least 16 training images, the data has 8"):
        finetune(_config(tmp_path, "bad", batch_size=8), nproc=2, progress=False)
    finetune(_config(tmp_path, "bad", epochs=1), progress=False)
    with pytest.raises(BenchError, match=r"holds a run of another configuration; use --force"):
        finetune(_config(tmp_path, "bad", epochs=2, seed=4), progress=False)


def test_encoder_and_head_start_from_the_weights_file(tmp_path):
    from bench.extractors.neural.models import MINI_MODELS
    from bench.finetune.config import load_config
    from bench.finetune.model import build_model

    torch.manual_seed(5)
    donor = MINI_MODELS["simclr-mini-r18"].build(head=True)  # a converted file's layout
    torch.save(donor.state_dict(), tmp_path / "w.pt")
    config, source = load_config(_config(tmp_path, "init", encoder={
        "name": "simclr-mini-r18", "weights": "w.pt"}))
    model = build_model(config, source)
    assert torch.equal(model.encoder.stem[0].weight, donor.stem[0].weight)
    assert torch.equal(model.head[0].weight, donor.head[0].weight)
    assert len([m for m in model.head if isinstance(m, torch.nn.Linear)]) == 3  # v2 head


def test_lars_leaves_biases_and_norms_alone():
    from torch import nn

    from bench.finetune.config import OptimizerOptions, ScheduleOptions
    from bench.finetune.optim import LARS, learning_rate, make_optimizer

    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = make_optimizer([net], OptimizerOptions())
    assert isinstance(opt, LARS)
    decayed, excluded = opt.param_groups
    assert [p.shape for p in decayed["params"]] == [(3, 4)]
    assert decayed["weight_decay"] == 1e-6 and decayed["lars"] and decayed["trust"] == 0.001
    assert len(excluded["params"]) == 3 and excluded["weight_decay"] == 0 and not excluded["lars"]
    # one step: the weight moves by lr * trust * |w| / |g| * g (no momentum yet), a bias by lr * g
    net(torch.randn(6, 4)).sum().backward()
    w, g = net[0].weight.detach().clone(), net[0].weight.grad + 1e-6 * net[0].weight.detach()
    b, gb = net[0].bias.detach().clone(), net[0].bias.grad.clone()
    for group in opt.param_groups:
        group["lr"] = 0.5
    opt.step()
    expected = w - 0.5 * 0.001 * w.norm() / g.norm() * g
    assert torch.allclose(net[0].weight, expected, atol=1e-7)
    assert torch.allclose(net[0].bias, b - 0.5 * gb)
    warm = ScheduleOptions(warmup_epochs=1)
    assert learning_rate(0, 10, 2, 1.0, warm) == 0.5 and learning_rate(1, 10, 2, 1.0, warm) == 1
    assert learning_rate(2, 10, 2, 1.0, warm) == 1.0 and learning_rate(10, 10, 2, 1.0, warm) == 0
