"""Clustering experiments: how well do features group the images of one identity?

An experiment with ``kind: clustering`` clusters every item of each feature set
(database and queries together) with hierarchical clustering, DBSCAN and k-means,
and scores the clusters against the items' identities (homogeneity, completeness,
V-measure, ARI, NMI) and by their geometry (size, diameter, distance to the
nearest outsider, dispersion). ``bench process`` draws them with
``bench.clustering.plots.clustering_plots``.

Modules: config (the ``clustering:`` section), distances (dense condensed matrix
or sparse radius graph, within a memory budget), algorithms, metrics, run (the
driver), plots and grids (figures), summary (the CLI's table).
"""

from bench.clustering.run import run_clustering

__all__ = ["run_clustering"]
