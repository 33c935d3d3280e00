"""Hostile experiment files: a typo or a wrong value in any section fails at load,
with the file and key path, before the dataset is read, and writes nothing.

Each case is one entry of ``CASES`` (see README.md beside this file): the overrides of
the small experiment and the text the one error line must contain."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import small_experiment
from hostile_checks import one_error_line, tree

from bench.cli.main import cli

_CLUSTERING = {"kind": "clustering", "algorithms": [], "metric": "euclidean"}

CASES = {
    "relevance_typo": ({"relevance": {"mode": "knn", "mapp_cutoff": 5}},
                       "relevance.mapp_cutoff: unknown key"),
    "relevance_mode": ({"relevance": "identiy"}, "relevance"),
    "relevance_match_needs_labels": ({"relevance": {"mode": "identity", "match": "text"}},
                                     "relevance: Value error, relevance.match applies"),
    "query_sample_typo": ({"query_sample": {"size": 10, "repeat": 3}},
                          "query_sample.repeat: unknown key"),
    "query_sample_size": ({"query_sample": {"size": 0}}, "query_sample.size"),
    "clustering_typo": ({**_CLUSTERING, "clustering": {
        "algorithms": [{"algorithm": "dbscan", "epz": 0.5}]}},
        "clustering.algorithms.0.epz: unknown key"),
    "clustering_top_typo": ({**_CLUSTERING, "clustering": {
        "algorithms": [{"algorithm": "kmeans", "n_clusters": 3}], "drop_singleton": True}},
        "clustering.drop_singleton: unknown key"),
    "compare_typo": ({"compare": {"recall_dorp": 0.1}}, "compare.recall_dorp: unknown key"),
    "top_level_typo": ({"metirc": "euclidean"}, "metirc: unknown key"),
    "k_true": ({"k": True}, "k"),
    "group_timeout_zero": ({"algorithms": [{"algorithm": "faiss", "build": {"factory": "Flat"},
                                            "timeout": 0}]}, "algorithms.0.timeout"),
    "group_memory_negative": ({"algorithms": [{"algorithm": "faiss",
                                               "build": {"factory": "Flat"},
                                               "memory_limit_gb": -1}]},
                              "algorithms.0.memory_limit_gb"),
}


_FLAT = {"algorithm": "faiss", "build": {"factory": "Flat"}}
CASES.update({
    "name_traversal": ({"name": "../x"}, "name: Value error, expected one folder name"),
    "name_absolute": ({"name": "/tmp/x"}, "name: Value error"),
    "name_dot": ({"name": "."}, "name: Value error"),
    "name_empty": ({"name": ""}, "name: Value error"),
    "name_too_long": ({"name": "a" * 101}, "name: Value error"),
    "group_same_name": ({"algorithms": [{**_FLAT, "name": "g"},
                                        {**_FLAT, "name": "g", "build": {"factory": "IVF4,Flat"}}]},
                        "has the name 'g' of group 0"),
    "group_repeated": ({"algorithms": [_FLAT, dict(_FLAT)]}, "group 1 repeats group 0"),
    # build values against the backend's own annotations (hnswlib: M: int)
    "build_float_for_int": ({"algorithms": [{"algorithm": "hnswlib", "build": {"M": 1.5}}]},
                            "algorithms.0.build.M: 1.5: Input should be a valid integer"),
    "build_bool_for_int": ({"algorithms": [{"algorithm": "hnswlib", "build": {"M": True}}]},
                           "algorithms.0.build.M: True: Input should be a valid integer"),
    "query_float_for_int": ({"algorithms": [{"algorithm": "hnswlib", "query": {"ef": 1.5}}]},
                            "algorithms.0.query.ef: 1.5: Input should be a valid integer"),
    "build_axis_value": ({"algorithms": [{"algorithm": "hnswlib", "build": {"M": [8, "16"]}}]},
                         "algorithms.0.build.M: '16': Input should be a valid integer"),
})


_RAW_CASES = {
    "duplicate_key": (b"name: small\nmetric: euclidean\nmetric: angular\n",
                      "duplicate key 'metric'"),
    "alias_bomb": (b"name: small\nclustering:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                   + b"".join(f"  {c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, "
                              f"*{p}, *{p}]\n".encode()
                              for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
                   "expands to more than"),
    "not_utf8": (b"name: sm\xe9ll\nmetric: euclidean\n", "not UTF-8"),
    "nul_byte": (b"name: sm\x00ll\n", "NUL bytes"),
    "binary": (bytes(range(256)) * 4, "NUL bytes"),
}


@pytest.mark.parametrize("case", sorted(_RAW_CASES))
def test_bad_yaml_file_is_one_line(case, tmp_path):
    data, expected = _RAW_CASES[case]
    exp = tmp_path / "exp.yaml"
    exp.write_bytes(data)
    before = tree(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(exp)])
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert str(exp) in line and expected in line, line
    assert tree(tmp_path) == before


def test_folder_as_experiment_is_one_line(tmp_path):
    folder = tmp_path / "exp.yaml"
    folder.mkdir()
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(folder)])
    assert result.exit_code == 2, result.output
    assert "is a folder" in one_error_line(result)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_experiment_fails_at_load_and_writes_nothing(case, write_experiment, tmp_path):
    overrides, expected = CASES[case]
    exp = write_experiment(small_experiment(**overrides))
    before = tree(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(exp)])
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert str(exp) in line and expected in line, line
    assert tree(tmp_path) == before  # no results folder, no cache: the dataset was never read


@pytest.mark.parametrize("spec", ["os:system", "subprocess:Popen", "json:dumps"])
def test_import_path_must_name_a_backend(spec, write_experiment, tmp_path):
    exp = write_experiment(small_experiment(algorithms=[{"algorithm": spec}]))
    before = tree(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(exp)])
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert f"algorithms.0.algorithm: algorithm {spec!r} is not a Backend subclass" in line, line
    assert tree(tmp_path) == before


def test_import_path_is_imported_after_the_rest_validated(write_experiment, tmp_path):
    exp = write_experiment(small_experiment(dataset={"name": "nosuchdataset"},
                                            algorithms=[{"algorithm": "os:system"}]))
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(exp)])
    assert result.exit_code == 2
    assert "dataset.name" in one_error_line(result)
