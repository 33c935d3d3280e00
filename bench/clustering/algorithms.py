"""The three clustering algorithms, as thin calls into scipy and scikit-learn.

- hierarchical: ``scipy.cluster.hierarchy.linkage`` on the condensed matrix,
  one linkage per (metric, method) shared by every cut; cuts with
  ``fcluster(criterion="maxclust")``, which may give fewer clusters than asked
  when merge heights tie (the record keeps both numbers).
- DBSCAN: ``sklearn.cluster.DBSCAN(metric="precomputed")`` on a radius graph from
  either distance path (see bench.clustering.distances).
- k-means: ``sklearn.cluster.KMeans`` on the observation vectors, a reference
  that needs no distance matrix at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.clustering.distances import Space


def linkage_matrix(condensed: np.ndarray, method: str) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage

    # centroid and ward on a condensed matrix assume euclidean distances; config.py only
    # plans them under metric euclidean
    return linkage(condensed, method=method)


def cut_tree_at(z: np.ndarray, n_clusters: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster

    return fcluster(z, t=n_clusters, criterion="maxclust").astype(np.int64) - 1


def cut_height(z: np.ndarray, n_clusters: int) -> float | None:
    """A height between the merges that leave n_clusters and n_clusters - 1 groups
    (where the dendrogram is cut); None outside the tree."""
    n = len(z) + 1
    if not 1 <= n_clusters < n:
        return None
    heights = np.sort(z[:, 2])  # sorted: centroid linkage may merge below an earlier merge
    below = heights[n - n_clusters - 1]
    if n_clusters == 1:
        return float(below * 1.02)
    return float((below + heights[n - n_clusters]) / 2)


def dbscan_labels(graph: Any, eps: float, min_samples: int) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed")
    return model.fit(graph).labels_.astype(np.int64)


def kmeans_labels(space: Space, n_clusters: int, *, n_init: int, max_iter: int,
                  seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, random_state=seed)
    return model.fit_predict(space.observations()).astype(np.int64)
