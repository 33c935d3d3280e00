"""Which database items are relevant to which query, judged fast.

Three rules build the same structure:

- ``identity``: relevant = same ``Item.identity`` (namespaced strings, so
  ``bsds:100`` never matches ``flickr:100``);
- ``labels``: relevant = shares at least one ``Item.labels`` string, or has
  exactly the query's caption (``Item.text``), or either (``match``);
- ``groups``: an explicit list of relevant database ids per query id.

Every string is mapped to an integer code once; each side becomes a CSR list of
codes per item (``indptr``, ``codes``). Judging a 10k x 100 ranking is then a
few array operations: a direct comparison when every item holds at most one
code (identity, captions), else an expansion of (query, rank, code) triples
checked against the sorted (query, code) keys. Groups reuse the label path:
query q gets code q, and a database item gets the codes of the queries that
list it. The only Python loop per query is counting relevant items for
multi-label queries against multi-label items, where the overlap of postings
must be de-duplicated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bench.core.errors import BenchError
from bench.core.items import Item
from bench.scoring.metrics import check_no_duplicates, compact_rows, dedupe_ranking

KINDS = ("identity", "labels", "groups")


def _csr(code_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(c) for c in code_lists), dtype=np.int64, count=len(code_lists))
    indptr = np.zeros(len(code_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    flat = [c for codes in code_lists for c in codes]
    return indptr, np.asarray(flat, dtype=np.int64)


def _single(indptr: np.ndarray, codes: np.ndarray, empty: int) -> np.ndarray | None:
    """One code per item (``empty`` where none), or None when some item has several."""
    lengths = np.diff(indptr)
    if (lengths > 1).any():
        return None
    out = np.full(lengths.size, empty, dtype=np.int64)
    out[lengths == 1] = codes
    return out


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_keys, keys)
    pos_ok = pos < sorted_keys.size
    out = np.zeros(keys.shape, dtype=bool)
    out[pos_ok] = sorted_keys[pos[pos_ok]] == keys[pos_ok]
    return out


def database_rows(
    database_items: Sequence[Item], ids: Sequence[str | None], what: str = "source id",
) -> np.ndarray:
    """Rows of the given database item ids (-1 for None), e.g. each query's source image."""
    index = {it.id: row for row, it in enumerate(database_items)}
    rows = np.empty(len(ids), dtype=np.int64)
    for i, item_id in enumerate(ids):
        if item_id is None:
            rows[i] = -1
        elif item_id in index:
            rows[i] = index[item_id]
        else:
            raise BenchError(f"{what} {item_id!r} of query {i} is not a database item id")
    return rows


def _as_rows(rows: np.ndarray, n_queries: int, n_database: int) -> np.ndarray:
    r = np.asarray(rows)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[0] != n_queries or not np.issubdtype(r.dtype, np.integer):
        raise BenchError(f"excluded rows: expected integers of shape ({n_queries},) or "
                         f"({n_queries}, m), got {np.asarray(rows).shape}")
    r = r.astype(np.int64)
    check_no_duplicates(r, n_database)
    return r


def exclude_rows(result_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Remove the given database rows from each query's ranking, keep order, pad with -1.

    ``rows`` is (nq,) or (nq, m), -1 meaning nothing to remove. Composed
    retrieval removes the query's own source image this way; ask the backend for
    k + m results so that k remain.
    """
    ids = np.asarray(result_ids, dtype=np.int64)
    if ids.ndim != 2:
        raise BenchError(f"result ids: expected 2-d (queries x k), got shape {ids.shape}")
    r = np.asarray(rows, dtype=np.int64)
    r = r[:, None] if r.ndim == 1 else r
    if r.ndim != 2 or r.shape[0] != ids.shape[0]:
        raise BenchError(f"excluded rows: shape {np.asarray(rows).shape} does not match "
                         f"{ids.shape[0]} queries")
    drop = ((ids[:, :, None] == r[:, None, :]) & (r[:, None, :] >= 0)).any(axis=2)
    return compact_rows(ids, ~drop)


@dataclass(frozen=True, eq=False)  # arrays: identity, not value, equality
class Relevance:
    """Per-query relevance over database rows. Build with ``build_relevance``."""

    kind: str
    n_codes: int
    db_indptr: np.ndarray  # (n_database + 1,)
    db_codes: np.ndarray
    q_indptr: np.ndarray  # (n_queries + 1,)
    q_codes: np.ndarray
    excluded: np.ndarray | None = None  # (n_queries, m) rows that never count, -1 = none

    @property
    def n_database(self) -> int:
        return self.db_indptr.size - 1

    @property
    def n_queries(self) -> int:
        return self.q_indptr.size - 1

    # ---------------------------------------------------------------------- judging

    def relevant_mask(self, result_ids: np.ndarray) -> np.ndarray:
        """bool (nq, K): is the item at each rank relevant to its query; -1 is not."""
        ids = np.asarray(result_ids)
        if ids.ndim != 2 or ids.shape[0] != self.n_queries:
            raise BenchError(f"result ids: expected shape ({self.n_queries}, k), got {ids.shape}")
        ids = ids.astype(np.int64, copy=False)
        bad = (ids < -1) | (ids >= self.n_database)
        if bad.any():
            q, r = np.argwhere(bad)[0]
            raise BenchError(f"result ids: query row {q} rank {r} has id {ids[q, r]}, outside "
                             f"[-1, {self.n_database})")
        mask = self._raw_mask(ids)
        if self.excluded is not None:
            mask &= ~(ids[:, :, None] == self.excluded[:, None, :]).any(axis=2)
        return mask

    def _raw_mask(self, ids: np.ndarray) -> np.ndarray:
        nq, width = ids.shape
        valid = ids >= 0
        safe = np.where(valid, ids, 0)
        db_single = _single(self.db_indptr, self.db_codes, -1)
        q_single = _single(self.q_indptr, self.q_codes, -2)
        if db_single is not None and q_single is not None:
            return valid & (db_single[safe] == q_single[:, None])
        flat = safe.ravel()
        counts = np.where(valid.ravel(), np.diff(self.db_indptr)[flat], 0)
        pair = np.repeat(np.arange(flat.size, dtype=np.int64), counts)
        shift = self.db_indptr[flat] - (np.cumsum(counts) - counts)
        codes = self.db_codes[np.repeat(shift, counts) + np.arange(pair.size, dtype=np.int64)]
        hit = _member((pair // width) * self.n_codes + codes, self._query_keys())
        mask = np.zeros(flat.size, dtype=bool)
        mask[pair[hit]] = True
        return mask.reshape(nq, width)

    def _query_keys(self) -> np.ndarray:
        rows = np.repeat(np.arange(self.n_queries, dtype=np.int64), np.diff(self.q_indptr))
        return np.unique(rows * self.n_codes + self.q_codes)

    # --------------------------------------------------------------------- counting

    def n_relevant(self, distinct_keys: bool = False) -> np.ndarray:
        """(nq,) int64: how many database items are relevant to each query.

        Excluded rows (``without``) are not counted. With ``distinct_keys`` it
        counts distinct keys instead (see ``item_keys``), which is what a
        ranking de-duplicated by ``dedupe`` can at most find.
        """
        if distinct_keys:
            return self._n_distinct()
        per_code = np.bincount(self.db_codes, minlength=self.n_codes)
        q_len = np.diff(self.q_indptr)
        q_rows = np.repeat(np.arange(self.n_queries), q_len)
        n = np.bincount(q_rows, weights=per_code[self.q_codes], minlength=self.n_queries)
        if (np.diff(self.db_indptr) > 1).any() and (q_len > 1).any():
            n = n.copy()
            db_rows = np.repeat(np.arange(self.n_database), np.diff(self.db_indptr))
            order = np.argsort(self.db_codes, kind="stable")
            posting_rows = db_rows[order]
            post_ptr = np.zeros(self.n_codes + 1, dtype=np.int64)
            np.cumsum(per_code, out=post_ptr[1:])
            # Union of postings (an item may hold several of the query's codes), marked
            # in a reused bool array: O(n) count_nonzero beats sorting long postings.
            scratch = np.zeros(self.n_database, dtype=bool)
            done: dict[bytes, int] = {}
            for q in np.flatnonzero(q_len > 1):
                codes = np.sort(self.q_codes[self.q_indptr[q]:self.q_indptr[q + 1]])
                key = codes.tobytes()
                if key not in done:
                    parts = [posting_rows[post_ptr[c]:post_ptr[c + 1]] for c in codes]
                    rows = np.concatenate(parts)
                    scratch[rows] = True
                    done[key] = int(np.count_nonzero(scratch))
                    scratch[rows] = False
                n[q] = done[key]
        n = n.astype(np.int64)
        if self.excluded is not None:
            n -= replace(self, excluded=None).relevant_mask(self.excluded).sum(axis=1)
        return n

    def _n_distinct(self) -> np.ndarray:
        db_single = self._require_single()
        per_code = np.bincount(self.db_codes, minlength=self.n_codes)
        q_rows = np.repeat(np.arange(self.n_queries), np.diff(self.q_indptr))
        avail = per_code[self.q_codes]
        if self.excluded is not None:
            ex = self.excluded
            ex_codes = np.where(ex >= 0, db_single[np.where(ex >= 0, ex, 0)], -1)
            avail = avail - (ex_codes[q_rows] == self.q_codes[:, None]).sum(axis=1)
        return np.bincount(q_rows, weights=avail > 0, minlength=self.n_queries).astype(np.int64)

    # ------------------------------------------------------------- ranking surgery

    def _require_single(self) -> np.ndarray:
        db_single = _single(self.db_indptr, self.db_codes, -1)
        if db_single is None:
            raise BenchError(f"relevance {self.kind}: de-duplication needs at most one "
                             "identity / label per database item")
        return db_single

    def item_keys(self) -> np.ndarray:
        """(n_database,) key per item: its code; items without one get a unique key."""
        keys = self._require_single().copy()
        none = keys < 0
        keys[none] = self.n_codes + np.flatnonzero(none)
        return keys

    def dedupe(self, result_ids: np.ndarray) -> np.ndarray:
        """Keep only the first item of each key in each ranking, compacted, -1 padded."""
        ids = np.asarray(result_ids, dtype=np.int64)
        keys = np.where(ids >= 0, self.item_keys()[np.where(ids >= 0, ids, 0)], -1)
        pos = dedupe_ranking(keys)
        out = np.take_along_axis(ids, np.maximum(pos, 0), axis=1)
        out[pos < 0] = -1
        return out

    def without(self, rows: np.ndarray) -> Relevance:
        """A copy in which the given rows ((nq,) or (nq, m), -1 = none) never count.

        Use with ``exclude_rows`` on the ranking: a query's own source image is
        then neither found nor counted among its relevant items.
        """
        r = np.asarray(rows)
        if self.excluded is not None:
            r = np.concatenate([self.excluded, r[:, None] if r.ndim == 1 else r], axis=1)
        return replace(self, excluded=_as_rows(r, self.n_queries, self.n_database))


_CSR = tuple[np.ndarray, np.ndarray]


def _encode(
    db_sets: list[tuple[str, ...]], q_sets: list[tuple[str, ...]],
) -> tuple[int, _CSR, _CSR]:
    vocab: dict[str, int] = {}
    db_codes = [[vocab.setdefault(s, len(vocab)) for s in dict.fromkeys(t)] for t in db_sets]
    # A query string absent from the database can match nothing, so it gets no code.
    q_codes = [[vocab[s] for s in dict.fromkeys(t) if s in vocab] for t in q_sets]
    return len(vocab), _csr(db_codes), _csr(q_codes)


def _groups_codes(
    groups: Mapping[str, Sequence[str]], database_items: Sequence[Item],
    query_items: Sequence[Item],
) -> tuple[list[list[int]], list[list[int]]]:
    q_index = {it.id: i for i, it in enumerate(query_items)}
    db_index = {it.id: i for i, it in enumerate(database_items)}
    db_codes: list[list[int]] = [[] for _ in database_items]
    for qid, members in groups.items():
        if qid not in q_index:
            raise BenchError(f"relevance groups: {qid!r} is not a query id")
        if isinstance(members, str):
            raise BenchError(f"relevance groups: {qid!r} must map to a list of database ids")
        q = q_index[qid]
        for db_id in dict.fromkeys(members):
            if db_id not in db_index:
                raise BenchError(f"relevance groups: {db_id!r} (listed for query {qid!r}) is "
                                 "not a database id")
            db_codes[db_index[db_id]].append(q)
    return db_codes, [[i] for i in range(len(query_items))]


MATCHES = ("labels", "text", "both")


def _label_sets(items: Sequence[Item], match: str) -> list[tuple[str, ...]]:
    """The strings compared under ``labels`` relevance.

    ``text`` is the exact caption (``Item.text``): composed retrieval judges a
    result relevant when its caption equals the target caption. Captions get a
    prefix no label can start with, so under ``both`` a label "red" never
    matches a caption "red".
    """
    out = []
    for it in items:
        labels = tuple(it.labels) if match in ("labels", "both") else ()
        text = ("\0text:" + it.text,) if match in ("text", "both") and it.text is not None else ()
        out.append(labels + text)
    return out


def build_relevance(
    kind: str, database_items: Sequence[Item], query_items: Sequence[Item],
    groups: Mapping[str, Sequence[str]] | None = None, match: str = "labels",
) -> Relevance:
    """Relevance of every database item to every query under rule ``kind``.

    ``groups`` (query id -> database ids) is required for kind ``groups``; a
    query missing from it has no relevant item (and is left out of the means).
    ``match`` (kind ``labels`` only): compare ``labels``, the caption ``text``,
    or ``both`` (relevant when either matches).
    """
    if kind == "groups":
        if groups is None:
            raise BenchError("relevance groups: needs the query -> database ids mapping")
        db_lists, q_lists = _groups_codes(groups, database_items, query_items)
        return Relevance(kind, len(query_items), *_csr(db_lists), *_csr(q_lists))
    if kind == "identity":
        def sets(items: Sequence[Item]) -> list[tuple[str, ...]]:
            return [(it.identity,) if it.identity is not None else () for it in items]
    elif kind == "labels":
        if match not in MATCHES:
            raise BenchError(f"relevance labels: match must be one of {', '.join(MATCHES)}, "
                             f"got {match!r}")

        def sets(items: Sequence[Item]) -> list[tuple[str, ...]]:
            return _label_sets(items, match)
    else:
        raise BenchError(f"unknown relevance {kind!r}; expected one of: {', '.join(KINDS)}")
    db_sets, q_sets = sets(database_items), sets(query_items)
    field = "identity" if kind == "identity" else {
        "labels": "labels", "text": "text (caption)", "both": "labels or text"}[match]
    if not any(db_sets):
        raise BenchError(f"relevance {kind}: no database item has {field}")
    if not any(q_sets):
        raise BenchError(f"relevance {kind}: no query item has {field}")
    n_codes, (db_ptr, db_codes), (q_ptr, q_codes) = _encode(db_sets, q_sets)
    return Relevance(kind, n_codes, db_ptr, db_codes, q_ptr, q_codes)
