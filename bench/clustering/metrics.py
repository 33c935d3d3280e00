"""How well a clustering matches the identities, and how tight each cluster is.

Label metrics (scikit-learn): homogeneity (each cluster holds one identity),
completeness (each identity sits in one cluster), their harmonic mean the
V-measure, the adjusted Rand index and NMI. DBSCAN's noise points count as
singleton clusters: left out, they would make a run that labels everything noise
but one clean group look perfect.

Per cluster: size, diameter (a quantile of the intra-cluster distances, so one
stray member does not define it), the distance to the nearest point outside,
and the mean distance of the members to the centroid (dispersion). A cluster
whose nearest outsider is farther than its diameter is "separated".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.clustering.distances import ROW_BLOCK, Space


def encode(values: list[str]) -> np.ndarray:
    """Strings -> int codes (identities as a label vector)."""
    _, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int64)


def noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    """Give every noise point (-1) a cluster of its own, after the real labels."""
    out = np.asarray(labels, dtype=np.int64).copy()
    noise = out < 0
    start = out.max() + 1 if (~noise).any() else 0
    out[noise] = start + np.arange(int(noise.sum()))
    return out


def label_scores(identities: np.ndarray, labels: np.ndarray,
                 nmi_average: str = "geometric") -> dict[str, Any]:
    from sklearn.metrics import (
        adjusted_rand_score,
        homogeneity_completeness_v_measure,
        normalized_mutual_info_score,
    )

    labels = np.asarray(labels)
    pred = noise_as_singletons(labels)
    h, c, v = homogeneity_completeness_v_measure(identities, pred)
    n_noise = int((labels < 0).sum())
    return {
        "homogeneity": float(h), "completeness": float(c), "v_measure": float(v),
        "adjusted_rand": float(adjusted_rand_score(identities, pred)),
        "nmi": float(normalized_mutual_info_score(identities, pred,
                                                  average_method=nmi_average)),
        "n_clusters": int(len(np.unique(labels[labels >= 0]))),
        "n_noise": n_noise, "noise_fraction": n_noise / max(1, len(labels)),
    }


def nearest_other(space: Space, labels: np.ndarray) -> np.ndarray:
    """Per item, the distance to the nearest item with another label (inf if none).

    Blocked over rows, so memory stays ROW_BLOCK x n whatever n is.
    """
    n = len(labels)
    out = np.full(n, np.inf)
    for s in range(0, n, ROW_BLOCK):
        rows = np.arange(s, min(n, s + ROW_BLOCK))
        d = space.block(rows)
        d[labels[rows][:, None] == labels[None, :]] = np.inf
        out[rows] = d.min(axis=1)
    return out


def _diameter(space: Space, members: np.ndarray, q: float, max_pairs: int,
              rng: np.random.Generator) -> tuple[float, bool]:
    m = len(members)
    if m < 2:
        return 0.0, False
    if m * (m - 1) // 2 <= max_pairs:
        d = space.block(members, members)
        return float(np.quantile(d[np.triu_indices(m, 1)], q)), False
    a = rng.integers(0, m, max_pairs)
    b = (a + rng.integers(1, m, max_pairs)) % m  # never a == b
    return float(np.quantile(space.paired(members[a], members[b]), q)), True


def cluster_table(space: Space, labels: np.ndarray, identities: list[str], *,
                  quantile: float, max_pairs: int, seed: int) -> dict[str, Any]:
    """Per-cluster statistics as columns, clusters largest first (noise excluded).

    ``members`` lists each cluster's rows ordered by distance to the centroid,
    closest first: image grids take both ends and a random sample from it.
    """
    labels = np.asarray(labels, dtype=np.int64)
    effective = noise_as_singletons(labels)
    outside = nearest_other(space, effective)
    clustered = np.flatnonzero(labels >= 0)
    uniq, dense = np.unique(labels[clustered], return_inverse=True)
    cents = space.centroids(clustered, dense, len(uniq)) if len(uniq) else None
    to_cent = np.zeros(len(labels))
    if cents is not None:
        to_cent[clustered] = space.to_centroids(clustered, cents[dense])
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    sampled = 0
    for ci, label in enumerate(uniq):
        members = clustered[dense == ci]
        members = members[np.lexsort((members, to_cent[members]))]
        ids = [identities[r] for r in members]
        values, counts = np.unique(np.asarray(ids, dtype=object).astype(str), return_counts=True)
        top = int(np.argmax(counts))
        diameter, was_sampled = _diameter(space, members, quantile, max_pairs, rng)
        sampled += was_sampled
        rows.append({
            "label": int(label), "size": len(members), "diameter": diameter,
            "nearest_outside": float(outside[members].min()),
            "dispersion": float(to_cent[members].mean()),
            "identity": str(values[top]), "purity": float(counts[top] / len(members)),
            "members": [int(r) for r in members],
        })
    rows.sort(key=lambda r: (-r["size"], r["label"]))
    columns = {key: [r[key] for r in rows] for key in
               ("label", "size", "diameter", "nearest_outside", "dispersion", "identity",
                "purity", "members")}
    return {"quantile": quantile, "diameter_sampled": sampled, "clusters": columns}


def table_summary(table: dict[str, Any]) -> dict[str, Any]:
    """Flat figures for the run record (the full table goes to its own file)."""
    cols = table["clusters"]
    size = np.asarray(cols["size"], dtype=float)
    multi = size >= 2
    diam = np.asarray(cols["diameter"], dtype=float)[multi]
    near = np.asarray(cols["nearest_outside"], dtype=float)
    near_multi = near[multi]
    finite = np.isfinite(near_multi)

    def med(x: np.ndarray) -> float | None:
        return float(np.median(x)) if len(x) else None

    return {
        "size_median": med(size), "size_max": int(size.max()) if len(size) else 0,
        "n_singletons": int((size == 1).sum()),
        "diameter_median": med(diam),
        "nearest_outside_median": med(near[np.isfinite(near)]),
        "dispersion_mean": (float(np.average(cols["dispersion"], weights=size))
                            if len(size) else None),
        # share of multi-member clusters whose nearest outsider lies beyond their diameter
        "separated_fraction": (float((near_multi[finite] > diam[finite]).mean())
                               if finite.any() else None),
        "purity_mean": (float(np.average(cols["purity"], weights=size)) if len(size) else None),
    }
