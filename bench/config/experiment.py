"""Experiment files: pydantic models, safe YAML loading, sweep expansion.

An experiment is validated completely before anything runs, so a typo in the
YAML costs a second, not an hour: unknown keys, wrong types and unknown
algorithm / dataset / extractor names are reported with the file and key path.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bench.config.clustering import ClusteringOptions
from bench.config.compare import Tolerances
from bench.config.sections import PostProcess, QuerySample, RelevanceOptions
from bench.config.sweeps import SweepOptions
from bench.config.timing import TimingOptions
from bench.config.yaml_loader import builtin_files, load_yaml, read_text, resolve_file
from bench.core.errors import BenchError
from bench.core.fingerprint import fingerprint_obj
from bench.core.options import StrictInt, StrictOptions, format_validation_error
from bench.core.paths import MAX_NAME, folder_name_problem  # noqa: F401 - MAX_NAME re-exported

#: an experiment name becomes a folder under the results and plots roots


class NamedSection(BaseModel):
    """A registered name plus its own options (validated by the named class)."""

    model_config = ConfigDict(extra="allow")
    name: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ExtractorSection(NamedSection):
    """An extractor section; ``label`` names its feature set in the results (default: the
    name), so one extractor with two weight files gives two distinct feature sets."""

    label: str | None = Field(None, pattern=r"^[A-Za-z0-9._@+-]{1,120}$")
    #: the fine-tuning epoch of its weights (set by a ``weights: {finetune: ...}`` sweep)
    epoch: StrictInt | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


class AlgorithmGroup(StrictOptions):
    """One run group: every combination of ``build`` values is one build; every
    combination of ``query`` values is measured on each build."""

    algorithm: str
    name: str | None = None
    build: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    #: override the experiment's limits for this group
    timeout: float | None = Field(None, gt=0)
    memory_limit_gb: float | None = Field(None, gt=0)


class GroundTruthOptions(StrictOptions):
    """How exact neighbours are obtained."""

    #: auto: reuse the dataset's own neighbours when it has them (checked); recompute:
    #: always compute exact neighbours (the fix for a wrong neighbours file)
    reuse: Literal["auto", "recompute"] = "auto"
    #: where the candidate search runs: cpu (numpy), or a torch device (cuda, cuda:1,
    #: auto = cuda when present); always re-scored in float64 on the host
    device: str = Field("cpu", pattern=r"^(cpu|auto|cuda(:\d+)?)$")


class Experiment(TimingOptions, SweepOptions):
    name: str
    #: search (index benchmarks) or clustering (how well features group identities)
    kind: Literal["search", "clustering"] = "search"
    #: options of a clustering experiment (metric compatibility: parse_clustering)
    clustering: ClusteringOptions | None = None
    description: str = ""
    seed: StrictInt = 42
    dataset: NamedSection
    extractor: ExtractorSection | list[ExtractorSection] | None = None
    k: StrictInt | list[StrictInt] = 10
    #: knn | identity | labels | groups, or a mapping with a ``mode`` key and mode options
    relevance: RelevanceOptions = Field(default_factory=lambda: RelevanceOptions(mode="knn"))
    #: {size, repeats, seed, replace}: metrics as mean and std over query sub-samples
    query_sample: QuerySample | None = None
    mode: Literal["batch", "single"] = "batch"
    #: false: an experiment measured for quality only (recall, retrieval), whose speed
    #: figures mean nothing; only such an experiment may run build points side by side
    #: on one machine (``bench run --parallel N``)
    timing: bool = True
    timeout: float = Field(600.0, gt=0)
    memory_limit_gb: float | None = Field(None, gt=0)
    max_queries: StrictInt | None = Field(None, ge=1)
    #: descriptor post-processing fitted on the dataset's background set (issue #17)
    postprocess: PostProcess | None = None
    #: ``auto`` / ``recompute`` (shorthand for ``{reuse: ...}``) or a mapping
    #: ``{reuse, device}``: see GroundTruthOptions
    ground_truth: GroundTruthOptions = Field(default_factory=lambda: GroundTruthOptions())

    @field_validator("ground_truth", mode="before")
    @classmethod
    def _ground_truth_shorthand(cls, value: Any) -> Any:
        return {"reuse": value} if isinstance(value, str) else value

    algorithms: list[AlgorithmGroup] = Field(default_factory=list)
    #: tolerances of ``bench compare`` for this experiment (defaults in bench.gate.compare)
    compare: Tolerances | None = None

    @field_validator("extractor", mode="after")
    @classmethod
    def _adapter_names(
        cls, value: ExtractorSection | list[ExtractorSection] | None
    ) -> ExtractorSection | list[ExtractorSection] | None:
        """``torchvision:resnet18`` means the torchvision adapter with ``model: resnet18``;
        rewritten here because the registry reads ``a:b`` as an import path."""
        if value is None:
            return None
        from bench.extractors.neural.extractor import adapter_section

        sections = value if isinstance(value, list) else [value]
        rewritten = []
        for section in sections:
            try:
                name, options = adapter_section(section.name, section.options())
            except BenchError as exc:
                raise ValueError(str(exc)) from None
            rewritten.append(ExtractorSection(name=name, label=section.label,
                                              epoch=section.epoch, **options))
        keys = [s.key for s in rewritten]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise ValueError(f"extractor {i} has the name {key!r} of extractor "
                                 f"{keys.index(key)}; give one of them a label")
        return rewritten if isinstance(value, list) else rewritten[0]

    @model_validator(mode="after")
    def _sections_match_kind(self) -> Experiment:
        if self.kind == "search" and not self.algorithms:
            raise ValueError("a search experiment needs at least one entry under algorithms")
        if self.kind == "clustering" and self.clustering is None:
            raise ValueError("a clustering experiment needs a clustering section")
        if self.kind == "clustering" and (len(self.metrics) > 1 or len(self.thread_counts) > 1
                                          or self.database_sizes):
            raise ValueError("metric / threads lists and database sizes are search sweeps; "
                             "a clustering experiment takes one metric and one thread count")
        if self.query_sample is not None and self.query_sample.seed is None:
            # one seed for every random choice unless the section names its own
            self.query_sample = self.query_sample.model_copy(update={"seed": self.seed})
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        """The name is the results / plots folder: one path component, never a path."""
        problem = folder_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("algorithms")
    @classmethod
    def _distinct_groups(cls, groups: list[AlgorithmGroup]) -> list[AlgorithmGroup]:
        """Two groups of one name would merge their curves; an identical second group
        would silently vanish (its runs have the first one's keys)."""
        names: dict[str, int] = {}
        dumps: dict[str, int] = {}
        for gi, group in enumerate(groups):
            dump = repr(group.model_dump(exclude={"name"}))
            if group.name is None and dump in dumps:
                raise ValueError(f"group {gi} repeats group {dumps[dump]} exactly")
            dumps.setdefault(dump, gi)
            if group.name is not None:
                if group.name in names:
                    raise ValueError(f"group {gi} has the name {group.name!r} of group "
                                     f"{names[group.name]}; names must differ")
                names[group.name] = gi
        return groups

    @field_validator("k")
    @classmethod
    def _k(cls, value: int | list[int]) -> int | list[int]:
        values = value if isinstance(value, list) else [value]
        if not values or any(v < 1 for v in values):
            raise ValueError("k must be a positive integer or a non-empty list of them")
        return value

    @property
    def ks(self) -> list[int]:
        return sorted(set(self.k if isinstance(self.k, list) else [self.k]))

    @property
    def extractors(self) -> list[ExtractorSection]:
        if self.extractor is None:
            return []
        return self.extractor if isinstance(self.extractor, list) else [self.extractor]


@dataclass
class BuildPoint:
    """One index build and the query-parameter points measured on it."""

    group: int
    algorithm: str
    label: str
    build: dict[str, Any]
    queries: list[dict[str, Any]]
    timeout: float
    memory_limit_gb: float | None

    @property
    def key(self) -> str:
        return fingerprint_obj({"algorithm": self.algorithm, "build": self.build})[:16]


@dataclass
class LoadedExperiment:
    experiment: Experiment
    source: Path
    builds: list[BuildPoint] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.source.parent


def expand_grid(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """Cartesian product of list values; scalars are fixed. ``[[a, b]]`` passes a list."""
    if not grid:
        return [{}]
    keys = list(grid)
    axes = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes)]


def builtin_experiments() -> dict[str, Path]:
    return builtin_files("experiments")


def resolve_experiment_path(spec: str) -> Path:
    return resolve_file(spec, builtin_experiments(), "experiment")


def _expand_env(text: str) -> str:
    """Expand ${VAR} references (e.g. ${BENCH_DATA}); an unset variable is an error."""

    def repl(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in os.environ:
            raise BenchError(
                f"experiment refers to ${{{var}}}, which is not set in the environment"
            )
        return os.environ[var]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", repl, text)


def load_experiment(spec: str | Path) -> LoadedExperiment:
    source = resolve_experiment_path(str(spec))
    raw = load_yaml(_expand_env(read_text(source)), source)
    if not isinstance(raw, dict):
        raise BenchError(f"{source}: expected a mapping at the top level")
    try:
        experiment = Experiment.model_validate(raw)
    except ValidationError as exc:
        raise BenchError(format_validation_error(source, exc, raw=raw)) from None
    loaded = LoadedExperiment(experiment=experiment, source=source.resolve())
    _expand_weight_sweeps(loaded)
    loaded.builds = _expand_builds(loaded)
    from bench.config.names import check_names

    check_names(loaded)
    if experiment.kind == "clustering":
        from bench.config.clustering import parse_clustering

        parse_clustering(loaded)
    return loaded


def _expand_weight_sweeps(loaded: LoadedExperiment) -> None:
    """``weights: {finetune: RUN, epochs: [...]}``: one extractor per checkpoint."""
    from bench.config.checkpoints import expand_weights_sweep

    exp = loaded.experiment
    sections: list[ExtractorSection] = []
    swept = False
    for i, section in enumerate(exp.extractors):
        where = f"extractor.{i}" if isinstance(exp.extractor, list) else "extractor"
        points = expand_weights_sweep(section.name, section.options(), loaded.base_dir,
                                      loaded.source, where)
        if points is None:
            sections.append(section)
            continue
        swept = True
        sections += [ExtractorSection(name=section.name, label=label, epoch=epoch, **options)
                     for label, epoch, options in points]
    if swept:
        keys = [s.key for s in sections]
        if len(set(keys)) != len(keys):
            raise BenchError(f"{loaded.source}: extractor: a weights sweep repeats a "
                             "checkpoint another extractor already uses")
        exp.extractor = sections


def _expand_builds(loaded: LoadedExperiment) -> list[BuildPoint]:
    exp = loaded.experiment
    builds: list[BuildPoint] = []
    for gi, group in enumerate(exp.algorithms):
        for build in expand_grid(group.build):
            label = group.name or _default_label(group.algorithm, build)
            builds.append(
                BuildPoint(
                    group=gi,
                    algorithm=group.algorithm,
                    label=label,
                    build=build,
                    queries=expand_grid(group.query),
                    timeout=group.timeout or exp.timeout,
                    memory_limit_gb=group.memory_limit_gb or exp.memory_limit_gb,
                )
            )
    return builds


def _default_label(algorithm: str, build: dict[str, Any]) -> str:
    factory = build.get("factory") or build.get("index_binary_factory")
    return f"{algorithm}({factory})" if factory else algorithm
