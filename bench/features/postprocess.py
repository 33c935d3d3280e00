"""Descriptor post-processing fitted on a separate set (issue #17).

Copy detectors are scored after PCA-whitening trained on images that are neither
database nor queries (SSCD: DISC21 training images), then L2-normalised. Fitting on
the database or the queries would leak the test set into the descriptor, so the fit
uses only the dataset's ``training:`` set, else its ``background:`` set, and refuses
to run without either.
scikit-learn's PCA (full SVD: deterministic) does the fitting.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from bench.core.errors import BenchError
from bench.datasets.base import VectorData


def _l2(x: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise BenchError(f"postprocess.l2norm: {what} row {int(np.argmax(norms[:, 0] == 0))} "
                         "is a zero vector after post-processing")
    return x / norms


def postprocess_vectors(data: VectorData, opts: Any, source: str) -> VectorData:
    """PCA (whitened with ``pca_whiten``, plain with ``pca``) fitted on the background set,
    then optional L2-normalisation, applied to database, queries and background alike."""
    if opts is None:
        return data
    from sklearn.decomposition import PCA

    if data.database.dtype == np.uint8 or bool(data.description.get("binary_codes")):
        raise BenchError(f"{source}: postprocess applies to float descriptors, not binary codes")
    dims = opts.pca_whiten or opts.pca
    bg = None if data.background is None else np.asarray(data.background, dtype=np.float64)
    fit_on = "training" if data.training is not None and len(data.training) else "background"
    fit = bg if fit_on == "background" else np.asarray(data.training, dtype=np.float64)
    if dims is not None:
        if fit is None or len(fit) == 0:
            raise BenchError(f"{source}: postprocess PCA is fitted on the training or "
                             "background set; the dataset has neither (set its `training:` "
                             "or `background:` option)")
        if dims > min(fit.shape):
            raise BenchError(f"{source}: postprocess asks for {dims} components, but the "
                             f"{fit_on} set is {fit.shape[0]} x {fit.shape[1]}")
        pca = PCA(n_components=dims, whiten=opts.pca_whiten is not None, svd_solver="full")
        pca.fit(fit)

        def apply(x: np.ndarray) -> np.ndarray:
            return pca.transform(np.asarray(x, dtype=np.float64))
    else:
        def apply(x: np.ndarray) -> np.ndarray:
            return np.asarray(x, dtype=np.float64)

    parts = {"database": apply(data.database), "queries": apply(data.queries)}
    if bg is not None:
        parts["background"] = apply(bg)
    if opts.l2norm:
        parts = {k: _l2(v, k) for k, v in parts.items()}
    out = {k: v.astype(np.float32) for k, v in parts.items()}
    description = {**data.description, "postprocess": {
        **opts.model_dump(), "fitted_on": fit_on if dims else None,
        "n_fit": None if fit is None or not dims else len(fit)}}
    return replace(data, database=out["database"], queries=out["queries"],
                   background=out.get("background"), training=None, description=description)
