"""bench.scoring.relevance: identity / label / group rules, exclusion, de-duplication."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from bench.core.errors import BenchError
from bench.core.items import Item
from bench.scoring.metrics import average_precision, hit_rate_at_k, precision_at_k, recall_at_k
from bench.scoring.relevance import build_relevance, database_rows, exclude_rows


def _db(identities: list[str | None]) -> list[Item]:
    return [Item(id=f"db{i}", identity=ident) for i, ident in enumerate(identities)]


def test_identity_is_namespaced() -> None:
    db = _db(["bsds:100", "flickr:100", "bsds:200", None, "bsds:100"])
    queries = [Item(id="q0", identity="bsds:100"), Item(id="q1", identity="flickr:100"),
               Item(id="q2", identity="bsds:999"), Item(id="q3", identity=None)]
    rel = build_relevance("identity", db, queries)
    ids = np.array([[1, 0, 3, -1], [0, 1, 4, 2], [0, 1, 2, 4], [3, 0, 1, 2]])
    np.testing.assert_array_equal(rel.relevant_mask(ids), [
        [False, True, False, False],   # flickr:100 is not bsds:100; padding never relevant
        [False, True, False, False],
        [False, False, False, False],
        [False, False, False, False],  # a query without identity matches nothing, not None
    ])
    np.testing.assert_array_equal(rel.n_relevant(), [2, 1, 0, 0])


def test_labels_multi_label_counts_each_item_once() -> None:
    db = [Item(id="a", labels=("red",)), Item(id="b", labels=("blue", "dress")),
          Item(id="c", labels=("green",)), Item(id="d", labels=("red", "dress")),
          Item(id="e", labels=())]
    queries = [Item(id="q0", labels=("red", "dress")), Item(id="q1", labels=("green",)),
               Item(id="q2", labels=("purple",))]
    rel = build_relevance("labels", db, queries)
    ids = np.array([[0, 1, 2, 3, 4], [3, 2, 1, 0, -1], [0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(rel.relevant_mask(ids), [
        [True, True, False, True, False],
        [False, True, False, False, False],
        [False] * 5,
    ])
    # item d shares two labels with q0 but is one relevant item
    np.testing.assert_array_equal(rel.n_relevant(), [3, 1, 0])


def test_caption_equality_through_single_labels() -> None:
    cap = ["a red dress", "a blue dress", "a red dress", "black jeans"]
    db = [Item(id=f"img{i}", labels=(c,)) for i, c in enumerate(cap)]
    queries = [Item(id="q", labels=("a red dress",))]
    rel = build_relevance("labels", db, queries)
    np.testing.assert_array_equal(rel.relevant_mask(np.array([[1, 2, 0, 3]])),
                                  [[False, True, True, False]])
    assert rel.n_relevant().tolist() == [2]


def test_multi_label_mask_and_counts_match_brute_force() -> None:
    rng = np.random.default_rng(5)
    vocab = [f"tag{i}" for i in range(12)]

    def labels() -> tuple[str, ...]:
        return tuple(rng.choice(vocab, size=rng.integers(0, 4), replace=False).tolist())

    db = [Item(id=f"d{i}", labels=labels()) for i in range(80)]
    queries = [Item(id=f"q{i}", labels=labels()) for i in range(30)]
    rel = build_relevance("labels", db, queries)
    ids = np.stack([rng.permutation(80)[:15] for _ in range(30)])
    ids[rng.random(ids.shape) < 0.1] = -1
    want = np.array([[r >= 0 and bool(set(db[r].labels) & set(q.labels)) for r in row]
                     for q, row in zip(queries, ids.tolist(), strict=True)])
    np.testing.assert_array_equal(rel.relevant_mask(ids), want)
    want_n = [sum(bool(set(d.labels) & set(q.labels)) for d in db) for q in queries]
    np.testing.assert_array_equal(rel.n_relevant(), want_n)


def test_groups() -> None:
    db = _db([None] * 5)
    queries = [Item(id="q0"), Item(id="q1"), Item(id="q2")]
    rel = build_relevance("groups", db, queries, groups={"q0": ["db1", "db3"], "q1": ["db3"]})
    ids = np.array([[3, 1, 0], [3, 1, 0], [3, 1, 0]])
    np.testing.assert_array_equal(rel.relevant_mask(ids), [[True, True, False],
                                                          [True, False, False],
                                                          [False, False, False]])
    np.testing.assert_array_equal(rel.n_relevant(), [2, 1, 0])  # q2 not listed: none
    with pytest.raises(BenchError, match="'db9' \\(listed for query 'q0'\\) is not a database"):
        build_relevance("groups", db, queries, groups={"q0": ["db9"]})
    with pytest.raises(BenchError, match="'qx' is not a query id"):
        build_relevance("groups", db, queries, groups={"qx": ["db1"]})
    with pytest.raises(BenchError, match="needs the query"):
        build_relevance("groups", db, queries)


def test_bad_input_errors() -> None:
    db = _db(["a", "b"])
    with pytest.raises(BenchError, match="unknown relevance 'knn'"):
        build_relevance("knn", db, [Item(id="q", identity="a")])
    with pytest.raises(BenchError, match="no database item has identity"):
        build_relevance("identity", _db([None, None]), [Item(id="q", identity="a")])
    with pytest.raises(BenchError, match="no query item has labels"):
        build_relevance("labels", [Item(id="d", labels=("x",))], [Item(id="q")])
    rel = build_relevance("identity", db, [Item(id="q", identity="a")])
    with pytest.raises(BenchError, match="outside \\[-1, 2\\)"):
        rel.relevant_mask(np.array([[0, 2]]))
    with pytest.raises(BenchError, match="expected shape \\(1, k\\)"):
        rel.relevant_mask(np.array([[0], [1]]))


def test_exclude_rows_compacts_the_ranking() -> None:
    ids = np.array([[4, 7, 2, 9], [1, 2, 3, -1], [5, 6, 7, 8]])
    np.testing.assert_array_equal(exclude_rows(ids, np.array([7, 3, -1])),
                                  [[4, 2, 9, -1], [1, 2, -1, -1], [5, 6, 7, 8]])
    np.testing.assert_array_equal(exclude_rows(ids, np.array([[4, 9], [-1, -1], [8, 5]])),
                                  [[7, 2, -1, -1], [1, 2, 3, -1], [6, 7, -1, -1]])


def test_source_exclusion_in_relevance() -> None:
    # composed retrieval: the source image shares the target caption but must not count
    db = [Item(id="src", labels=("red dress",)), Item(id="t1", labels=("red dress",)),
          Item(id="x", labels=("jeans",)), Item(id="t2", labels=("red dress",))]
    queries = [Item(id="q0", labels=("red dress",)), Item(id="q1", labels=("jeans",))]
    sources = database_rows(db, ["src", None])
    np.testing.assert_array_equal(sources, [0, -1])
    rel = build_relevance("labels", db, queries).without(sources)
    np.testing.assert_array_equal(rel.n_relevant(), [2, 1])
    ranking = np.array([[0, 1, 2, 3], [2, 0, 1, 3]])
    np.testing.assert_array_equal(rel.relevant_mask(ranking)[0], [False, True, False, True])
    cleaned = exclude_rows(ranking, sources)
    np.testing.assert_array_equal(cleaned, [[1, 2, 3, -1], [2, 0, 1, 3]])
    mask = rel.relevant_mask(cleaned)
    assert hit_rate_at_k(mask, rel.n_relevant(), 1).tolist() == [1.0, 1.0]
    assert recall_at_k(mask, rel.n_relevant(), 3).tolist() == [1.0, 1.0]
    with pytest.raises(BenchError, match="is not a database item id"):
        database_rows(db, ["nope"])


def test_dedupe_by_identity() -> None:
    # several database copies of one identity: keep the first, judge k distinct identities
    db = _db(["a", "a", "b", "c", "a", None, None])
    queries = [Item(id="q0", identity="a"), Item(id="q1", identity="c")]
    rel = build_relevance("identity", db, queries)
    ranking = np.array([[0, 1, 2, 4, 5, 6], [3, 5, 0, 6, 1, -1]])
    deduped = rel.dedupe(ranking)
    # items 5 and 6 have no identity: distinct, never merged
    np.testing.assert_array_equal(deduped, [[0, 2, 5, 6, -1, -1], [3, 5, 0, 6, -1, -1]])
    np.testing.assert_array_equal(rel.n_relevant(), [3, 1])
    np.testing.assert_array_equal(rel.n_relevant(distinct_keys=True), [1, 1])
    # excluding the only copy of c leaves q1 without a relevant identity
    np.testing.assert_array_equal(
        rel.without(np.array([-1, 3])).n_relevant(distinct_keys=True), [1, 0])
    multi = build_relevance("labels", [Item(id="d", labels=("x", "y"))],
                            [Item(id="q", labels=("x",))])
    with pytest.raises(BenchError, match="at most one identity / label per database item"):
        multi.dedupe(np.array([[0]]))


def test_label_retrieval_on_digits_matches_a_loop() -> None:
    """Real small data: sklearn's 8x8 digits, label = digit class, exact L2 search."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    qi, di = perm[:60], perm[60:1060]
    db = [Item(id=f"digits:{i}", labels=(f"digit:{y[i]}",)) for i in di]
    queries = [Item(id=f"digits:{i}", labels=(f"digit:{y[i]}",)) for i in qi]
    d2 = ((x[qi, None, :] - x[None, di, :]) ** 2).sum(-1)
    ids = np.argsort(d2, axis=1, kind="stable")[:, :20]
    rel = build_relevance("labels", db, queries)
    mask, n_rel = rel.relevant_mask(ids), rel.n_relevant()
    want = y[di][ids] == y[qi][:, None]
    np.testing.assert_array_equal(mask, want)
    np.testing.assert_array_equal(n_rel, [(y[di] == y[q]).sum() for q in qi])
    p10 = precision_at_k(mask, n_rel, 10)
    assert p10.mean() > 0.9  # digits are easy for 1-NN; a broken mask would be ~0.1
    ap = average_precision(mask, n_rel)
    assert np.all((ap > 0) & (ap <= 1))


def test_match_labels_text_or_both() -> None:
    db = [Item(id="a", text="red dress", labels=("dress",)), Item(id="b", text="jeans"),
          Item(id="c", text="red", labels=("red dress",))]
    queries = [Item(id="q", text="red dress", labels=("red",))]
    ids = np.array([[0, 1, 2]])
    by_text = build_relevance("labels", db, queries, match="text")
    np.testing.assert_array_equal(by_text.relevant_mask(ids), [[True, False, False]])
    # a caption never matches a label of the same spelling: c's label "red dress" is no caption
    by_labels = build_relevance("labels", db, queries, match="labels")
    np.testing.assert_array_equal(by_labels.relevant_mask(ids), [[False, False, False]])
    both = build_relevance("labels", db, queries, match="both")
    np.testing.assert_array_equal(both.relevant_mask(ids), [[True, False, False]])
    assert both.n_relevant().tolist() == [1]
    with pytest.raises(BenchError, match="match must be one of"):
        build_relevance("labels", db, queries, match="caption")
    with pytest.raises(BenchError, match="no database item has text"):
        build_relevance("labels", [Item(id="d", labels=("x",))], queries, match="text")
