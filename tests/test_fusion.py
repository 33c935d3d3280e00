"""Late fusion of two modalities and column-slice search, against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from bench.algorithms.wrappers.fusion import FusionBackend, SliceBackend
from bench.core.errors import BenchError


def _dist(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1 - a @ b.T


def _reference(data: np.ndarray, queries: np.ndarray, split: int, k: int, top_n: int,
               combine: str, weight: float | None, metric: str) -> tuple[np.ndarray, float]:
    """Straight from the protocol: top-N per modality, candidates, weighted sum, top k."""
    d1 = _dist(queries[:, :split], data[:, :split], metric)
    d2 = _dist(queries[:, split:], data[:, split:], metric)
    n1 = np.argsort(d1, axis=1, kind="stable")[:, :top_n]
    n2 = np.argsort(d2, axis=1, kind="stable")[:, :top_n]
    if weight is None:
        m1 = np.take_along_axis(d1, n1[:, :10], axis=1).mean(axis=1).mean()
        m2 = np.take_along_axis(d2, n2[:, :10], axis=1).mean(axis=1).mean()
        w1 = m2 / (m1 + m2)
    else:
        w1 = weight
    out = np.full((len(queries), k), -1)
    for q in range(len(queries)):
        a, b = set(n1[q].tolist()), set(n2[q].tolist())
        cand = sorted(a & b if combine == "intersection" else a | b)
        scored = sorted(cand, key=lambda i: (w1 * d1[q, i] + (1 - w1) * d2[q, i], i))[:k]
        out[q, :len(scored)] = scored
    return out, w1


@pytest.fixture(scope="module")
def two_modalities() -> tuple[np.ndarray, np.ndarray]:
    """Real small data: digits pixels (64) as one modality, a noisy random projection of
    them (16) as the other, so the two agree roughly but not exactly."""
    x, _ = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    other = x @ rng.standard_normal((64, 16)) + rng.standard_normal((len(x), 16)) * 20
    feats = np.hstack([x, other]).astype(np.float32)
    return feats[40:640], feats[:40]


@pytest.mark.parametrize("combine", ["intersection", "union"])
@pytest.mark.parametrize("weight", [None, 0.3])
@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_fusion_matches_the_protocol(two_modalities, combine: str, weight: float | None,
                                     metric: str) -> None:
    data, queries = two_modalities
    if metric == "angular":  # the harness normalises whole rows before a backend sees them
        data = data / np.linalg.norm(data, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    backend = FusionBackend(metric, 80, split=64)
    backend.build(data)
    backend.set_query_params(top_n=15, combine=combine,
                             weight="calibrated" if weight is None else weight)
    dist, ids = backend.search(queries, 10)
    want, w1 = _reference(data, queries, 64, 10, 15, combine, weight, metric)
    np.testing.assert_array_equal(ids, want)
    both = (ids[:, 1:] >= 0) & (ids[:, :-1] >= 0)
    assert np.all(dist[:, 1:][both] >= dist[:, :-1][both] - 1e-6)  # sorted ascending
    extra = backend.extra_metrics()
    assert extra["weight_first"] == pytest.approx(w1, rel=1e-5)
    assert extra["weight_first"] + extra["weight_second"] == pytest.approx(1.0)
    if combine == "union":
        assert (ids >= 0).all()
        assert 15 <= extra["candidates_per_query"] <= 30
    else:
        assert extra["candidates_per_query"] <= 15


def test_calibrated_weights_by_hand() -> None:
    # 1-d modalities: distances are plain differences, so the means can be done by hand
    data = np.array([[0.0, 0.0], [1.0, 10.0], [2.0, 20.0]], np.float32)
    queries = np.array([[0.0, 0.0]], np.float32)
    backend = FusionBackend("euclidean", 2, split=1)
    backend.build(data)
    backend.set_query_params(top_n=3, combine="union")
    _, ids = backend.search(queries, 3)
    # m1 = mean(0, 1, 2) = 1, m2 = mean(0, 10, 20) = 10: w1 = 10/11, w2 = 1/11
    extra = backend.extra_metrics()
    assert extra["mean_top10_first"] == pytest.approx(1.0)
    assert extra["mean_top10_second"] == pytest.approx(10.0)
    assert extra["weight_first"] == pytest.approx(10 / 11)
    np.testing.assert_array_equal(ids, [[0, 1, 2]])


def test_intersection_can_leave_fewer_than_k() -> None:
    # item 1 is near in the first modality only, item 2 in the second only
    data = np.array([[0, 0], [1, 50], [50, 1], [9, 9]], np.float32)
    backend = FusionBackend("euclidean", 2, split=1)
    backend.build(data)
    backend.set_query_params(top_n=2, combine="intersection", weight=0.5)
    dist, ids = backend.search(np.zeros((1, 2), np.float32), 2)
    np.testing.assert_array_equal(ids, [[0, -1]])
    assert np.isinf(dist[0, 1])
    backend.set_query_params(top_n=2, combine="union", weight=0.5, rescore=True)
    dist, ids = backend.search(np.zeros((1, 2), np.float32), 4)  # top_n rises to k = 4
    # fused: item 0 -> 0, item 3 -> 9, items 1 and 2 -> 0.5 * 1 + 0.5 * 50 (a tie: lower id)
    np.testing.assert_array_equal(ids, [[0, 3, 1, 2]])
    np.testing.assert_allclose(dist, [[0, 9, 25.5, 25.5]])


def test_sub_backends_and_their_query_params(two_modalities) -> None:
    data, queries = two_modalities
    backend = FusionBackend("euclidean", 80, split=64,
                            first={"algorithm": "faiss", "build": {"factory": "IVF8,Flat"}},
                            second="hnswlib")
    backend.set_threads(1)
    backend.build(data)
    backend.set_query_params(top_n=20, combine="union", first_query={"nprobe": 8},
                             second_query={"ef": 64})
    _, ids = backend.search(queries, 10)
    want, _ = _reference(data, queries, 64, 10, 20, "union", None, "euclidean")
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, want, strict=True)])
    assert overlap > 0.9  # nprobe = nlist: IVF is exact; HNSW on 600 points nearly so
    assert backend.index_bytes() is None or backend.index_bytes() > 0
    with pytest.raises(BenchError, match="unknown query parameter|does not apply|takes no"):
        backend.set_query_params(first_query={"bogus": 1})


def test_slice_searches_only_its_columns(two_modalities) -> None:
    data, queries = two_modalities
    data = data / np.linalg.norm(data, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    backend = SliceBackend("angular", 80, start=64)
    backend.build(data)
    _, ids = backend.search(queries, 5)
    want = np.argsort(_dist(queries[:, 64:], data[:, 64:], "angular"), axis=1,
                      kind="stable")[:, :5]
    np.testing.assert_array_equal(ids, want)


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(BenchError, match="split must lie in 1..7"):
        FusionBackend("euclidean", 8, split=8)
    with pytest.raises(BenchError, match="slice: need 0 <= start < stop <= 8"):
        SliceBackend("euclidean", 8, start=4, stop=2)
    with pytest.raises(BenchError, match="fusion.first: fusion cannot be nested"):
        FusionBackend("euclidean", 8, split=4, first="fusion")
    with pytest.raises(BenchError, match="bad build parameters for bruteforce"):
        FusionBackend("euclidean", 8, split=4, first={"algorithm": "bruteforce",
                                                      "build": {"M": 4}})
    backend = FusionBackend("ip", 4, split=2)
    with pytest.raises(BenchError, match="combine must be intersection or union"):
        backend.set_query_params(combine="both")
    with pytest.raises(BenchError, match="weight must be 'calibrated' or a number"):
        backend.set_query_params(weight=2)
    rng = np.random.default_rng(0)
    backend.build(np.abs(rng.standard_normal((20, 4))).astype(np.float32))
    backend.set_query_params(combine="union")
    with pytest.raises(BenchError, match="calibrated weights need positive mean distances"):
        backend.search(np.abs(rng.standard_normal((3, 4))).astype(np.float32), 5)
    backend.set_query_params(combine="union", weight=0.5)  # given weights work with ip
    _, ids = backend.search(np.abs(rng.standard_normal((3, 4))).astype(np.float32), 5)
    assert (ids >= 0).all()


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_concatenation_score_is_early_fusion(two_modalities, metric: str) -> None:
    """With complete candidate lists, late fusion scored as the concatenation must give
    exactly the exact search on the concatenated vectors: the machinery loses nothing."""
    data, queries = two_modalities
    data = data / np.linalg.norm(data, axis=1, keepdims=True)  # ip on unit rows too
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    backend = FusionBackend(metric, 80, split=64, normalize_slices=False)
    backend.build(data)
    backend.set_query_params(top_n=len(data), combine="union", score="concatenation",
                             rescore=True)
    dist, ids = backend.search(queries, 10)
    full = _dist(queries, data, "euclidean") if metric == "euclidean" else 1 - queries @ data.T
    want = np.argsort(full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids, want)
    offset = 1.0 if metric == "ip" else 0.0  # ip distance is -dot = (1 - dot) - 1
    np.testing.assert_allclose(dist + offset, np.take_along_axis(full, want, axis=1), atol=1e-5)
    with pytest.raises(BenchError, match="unknown query parameter 'nprobe'"):
        backend.set_query_params(nprobe=4)
