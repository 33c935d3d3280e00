"""The names an experiment uses, checked against the registries before anything runs.

Datasets, extractors and backends are looked up by name, and every option is
validated by the named class: dataset and extractor options by their models, build
and query values by the backend's own annotations. A typo in any of them fails at
load with the file and key path, before the dataset is read.
"""

from __future__ import annotations

import inspect
import typing
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bench.core.errors import BenchError
from bench.core.options import format_validation_error

if TYPE_CHECKING:
    from bench.config.experiment import LoadedExperiment


def check_names(loaded: LoadedExperiment) -> None:
    """Fail fast on unknown algorithms, parameters, datasets and extractors."""
    from bench.algorithms import registry as algorithms
    from bench.datasets import registry as datasets
    from bench.extractors import registry as extractors

    exp = loaded.experiment
    src = loaded.source
    try:
        dcls = datasets.get(exp.dataset.name)
    except BenchError as exc:
        raise BenchError(f"{src}: dataset.name: {exc}") from None
    try:
        raw_dataset = exp.dataset.options()
        dcls.Options.model_validate(raw_dataset)
    except ValidationError as exc:
        raise BenchError(format_validation_error(src, exc, "dataset", raw_dataset)) from None
    for i, section in enumerate(exp.extractors):
        where = f"extractor.{i}" if isinstance(exp.extractor, list) else "extractor"
        try:
            ecls = extractors.get(section.name)
        except BenchError as exc:
            raise BenchError(f"{src}: {where}.name: {exc}") from None
        raw_options = section.options()
        try:
            ecls.Options.model_validate(raw_options)
        except ValidationError as exc:
            raise BenchError(format_validation_error(src, exc, where, raw_options)) from None
    # a module:Class backend is imported last, once everything else validated
    for gi, group in enumerate(exp.algorithms):
        try:
            cls = algorithms.get(group.algorithm)
        except BenchError as exc:
            raise BenchError(f"{src}: algorithms.{gi}.algorithm: {exc}") from None
        params = inspect.signature(cls.__init__).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if not accepts_any:
            for key in group.build:
                if key not in params or key in ("self", "metric", "dim"):
                    allowed = [n for n in params if n not in ("self", "metric", "dim")]
                    raise BenchError(
                        f"{src}: algorithms.{gi}.build.{key}: unknown build parameter of "
                        f"{group.algorithm}; expected one of: {', '.join(allowed) or 'none'}"
                    )
        _check_param_types(cls.__init__, group.build, f"{src}: algorithms.{gi}.build")
        _check_param_types(cls.set_query_params, group.query, f"{src}: algorithms.{gi}.query")
        documented = getattr(cls, "query_params_doc", {})
        if documented and not getattr(cls, "open_query_params", False):
            for key in group.query:
                if key not in documented:
                    raise BenchError(
                        f"{src}: algorithms.{gi}.query.{key}: unknown query parameter of "
                        f"{group.algorithm}; expected one of: {', '.join(documented)}"
                    )
        for metric in exp.metrics:
            if metric not in cls.metrics:
                raise BenchError(
                    f"{src}: algorithms.{gi}: {group.algorithm} does not support metric "
                    f"{metric!r} (supported: {', '.join(cls.metrics)})"
                )


def _check_param_types(fn: Any, params: dict[str, Any], where: str) -> None:
    """Each build or query value (or each value of a grid axis) against the backend's
    annotation of ``__init__`` / ``set_query_params``, strictly: ``M: 1.5``, ``ef: 1.5``
    or ``M: true`` for an ``int`` fails here with its key, not minutes later inside a
    worker (``ef: 1.5`` used to run as 1). Unannotated parameters are skipped."""
    from pydantic import TypeAdapter

    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - a plugin's annotations may not resolve; skip them
        return
    for key, value in params.items():
        hint = hints.get(key)
        if hint is None or hint is Any:
            continue
        adapter = TypeAdapter(hint)
        if isinstance(value, list) and _valid(adapter, value):
            continue  # the parameter itself is a list, not a grid axis
        for candidate in value if isinstance(value, list) else [value]:
            try:
                adapter.validate_python(candidate, strict=True)
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                raise BenchError(f"{where}.{key}: {candidate!r}: {msg}") from None


def _valid(adapter: Any, value: Any) -> bool:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True
