"""Image grids per cluster: what did a clustering put together?

For the best run (by V-measure) of each algorithm and feature set, the largest
clusters each get one picture with three rows: random members (seeded), the
members closest to the centroid, and those farthest from it. A green frame is a
member of the cluster's majority identity, red one of another identity, so a
merged pair of identities or an attack that drifted away shows at a glance.
Tiles are drawn with bench.process.tiles, as the search galleries are.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from bench.core.files import atomic_write_bytes
from bench.process.style import slug
from bench.process.tiles import BACKGROUND, GREEN, PAD, RED, Tile, font, render

ROW_LABEL = 150


def cluster_grids(results: dict[str, Any], df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Grids for the largest clusters of the best run of each (feature set, algorithm)."""
    folder = Path(results["_path"]).parent
    options = ((results.get("experiment") or {}).get("clustering") or {}).get("grids") or {}
    n_clusters = int(options.get("clusters", 8))
    per_row = int(options.get("members", 6))
    seed = int((results.get("experiment") or {}).get("seed", 0))
    feature_sets = (results.get("dataset") or {}).get("feature_sets") or {}
    written: list[Path] = []
    if df.empty or n_clusters == 0:
        return written
    best = df.loc[df.groupby(["extractor", "algorithm"])["v_measure"].idxmax()]
    for _, run in best.sort_values(["extractor", "algorithm"]).iterrows():
        desc = feature_sets.get(run["extractor"]) or {}
        if not desc.get("items_file"):
            continue  # vector data: nothing to show
        items = json.loads((folder / desc["items_file"]).read_text())["database"]
        if not any(it.get("path") or it.get("text") for it in items):
            continue  # items without pictures or texts: grids would be empty frames
        table = json.loads((folder / run["clusters_file"]).read_text())["clusters"]
        run_dir = out_dir / slug(run["extractor"]) / slug(f"{run['label']}-{run['param']}")
        for rank in range(min(n_clusters, len(table["size"]))):
            image = _grid(run, table, rank, items, per_row, seed)
            path = run_dir / f"cluster_{rank + 1:03d}.png"
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=3)  # 4x faster than 6
            atomic_write_bytes(path, buffer.getvalue())
            written.append(path)
    return written


def _short(identity: str) -> str:
    return identity.split(":", 1)[-1]


def _tile(item: dict[str, Any], position: int, size: int, majority: str) -> Tile:
    identity = str(item.get("identity"))
    attrs = item.get("attrs") or {}
    what = attrs.get("attack") or ("original" if item.get("role") == "database" else "")
    return Tile(
        path=Path(item["path"]) if item.get("path") else None, text=item.get("text"),
        color=GREEN if identity == majority else RED,
        caption=(_short(identity), str(what), f"centrality {position + 1}/{size}"),
    )


def _grid(run: pd.Series, table: dict[str, list[Any]], rank: int, items: list[dict[str, Any]],
          per_row: int, seed: int) -> Image.Image:
    members = np.asarray(table["members"][rank])
    size = len(members)
    majority = table["identity"][rank]
    rng = np.random.default_rng([seed, rank])
    picks = {
        "random members": np.sort(rng.choice(size, min(per_row, size), replace=False)),
        "closest to centroid": np.arange(min(per_row, size)),
        "farthest from centroid": np.arange(size - 1, max(-1, size - 1 - per_row), -1),
    }
    rows = {name: [render(_tile(items[members[p]], int(p), size, majority))[0] for p in pos]
            for name, pos in picks.items()}
    tile_w, tile_h = next(iter(rows.values()))[0].size
    header = [
        f"{run['extractor']} / {run['label']} {run['param']}: cluster {rank + 1} of "
        f"{int(run['n_clusters'])}, {size} images",
        f"majority {_short(majority)} ({table['purity'][rank]:.0%} of the cluster); "
        f"diameter {table['diameter'][rank]:.3g}, nearest outsider "
        f"{table['nearest_outside'][rank]:.3g}, dispersion {table['dispersion'][rank]:.3g} "
        f"({run['metric']})",
    ]
    head = PAD + 20 * len(header) + PAD
    width = PAD + ROW_LABEL + per_row * (tile_w + PAD) + PAD
    canvas = Image.new("RGB", (max(width, 900), head + len(rows) * (tile_h + PAD) + PAD),
                       BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(header):
        draw.text((PAD, PAD + 20 * i), line, fill=(0, 0, 0), font=font(15, bold=i == 0))
    for r, (name, tiles) in enumerate(rows.items()):
        y = head + r * (tile_h + PAD)
        draw.multiline_text((PAD, y + tile_h // 3), name.replace(" ", "\n", 1), fill=(0, 0, 0),
                            font=font(13, bold=True))
        for c, tile in enumerate(tiles):
            canvas.paste(tile, (PAD + ROW_LABEL + c * (tile_w + PAD), y))
    return canvas
