"""Training throughput of `bench finetune` (images per second, each image = two views),
for process / thread / DataLoader-worker layouts of one config.

    python benchmarks/finetune_throughput.py finetune-mini --repeats 3 \
        --layout 1x2x0 --layout 1x1x1 --layout 2x1x0

A layout is PROCESSESxTHREADSxWORKERS. Each repeat trains --steps steps from scratch
(into a temporary results root) and reads log.csv; the first step of each run (model
warm-up, image decoding) is left out. Prints median and range over the repeats of each
run's median step rate. The machine may be shared: say so next to the figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.finetune.config import resolve_config


def one_run(config: Path, layout: str, steps: int, root: Path) -> float:
    nproc, threads, workers = (int(x) for x in layout.split("x"))
    spec = yaml.safe_load(config.read_text())
    spec.update(threads=threads, workers=workers)
    spec["name"] = f"bench-{layout}"
    path = root / f"{layout}.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "BENCH_RESULTS": str(root / "results")}
    subprocess.run([sys.executable, "-m", "bench.cli", "finetune", str(path), "--force",
                    "--no-progress", "--nproc", str(nproc), "--max-steps", str(steps)],
                   check=True, env=env, capture_output=True)
    with open(root / "results" / "finetune" / spec["name"] / "log.csv", newline="") as f:
        rates = [float(r["images_per_s"]) for r in csv.DictReader(f) if r["images_per_s"]]
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--layout", action="append", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    config = resolve_config(args.config)
    layouts = args.layout or ["1x2x0", "1x1x1", "2x1x0"]
    rates: dict[str, list[float]] = {layout: [] for layout in layouts}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # interleaved: load changes hit every layout alike
            for layout in layouts:
                rates[layout].append(one_run(config, layout, args.steps, Path(tmp)))
    for layout, values in rates.items():
        print(f"{layout:8s} images/s median {statistics.median(values):7.1f}  "
              f"range {min(values):.1f}-{max(values):.1f}  ({len(values)} runs)")


if __name__ == "__main__":
    main()
