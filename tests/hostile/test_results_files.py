"""Hostile results files given to `bench process` and `bench compare`: a name that is a
path, wrongly typed fields, binary or non-JSON content. One line, exit 2, and nothing
written outside the plots root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_checks import one_error_line, tree

from bench.cli.main import cli

RUN = {"id": "r1", "algorithm": "faiss", "label": "flat", "status": "ok", "k": 10,
       "build_params": {"factory": "Flat"}, "query_params": {}, "recall": 1.0, "qps": 10.0}


def _write(root: Path, name: str, data: object | bytes) -> Path:
    folder = root / "results" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


CASES = {
    "name_is_parent_path": ({"schema": 1, "name": "../../escaped", "runs": [RUN]},
                            "name: expected one folder name"),
    "name_is_absolute": ({"schema": 1, "name": "/tmp/escaped", "runs": [RUN]},
                         "name: expected one folder name"),
    "name_is_dot": ({"schema": 1, "name": ".", "runs": [RUN]}, "name: expected one folder name"),
    "schema_is_text": ({"schema": "1", "runs": [RUN]}, "field 'schema' must be an integer"),
    "runs_not_a_list": ({"schema": 1, "runs": {"a": 1}}, "field 'runs' must be a list"),
    "run_lacks_fields": ({"schema": 1, "runs": [{"id": "x"}]}, "runs[0] lacks algorithm, k"),
    "not_json": (b"{not json", "not valid JSON"),
    "binary": (b"\xff\xfe\x00\x01", "not UTF-8 text"),
    "a_list": (b"[1, 2]", "no 'schema' field"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_results_file_is_one_line_and_writes_nothing_outside(case, isolated_outputs):
    data, expected = CASES[case]
    path = _write(isolated_outputs, "bad", data)
    outside = isolated_outputs.parent
    before = tree(outside)
    result = CliRunner().invoke(cli, ["process", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in one_error_line(result)
    assert tree(outside) == before


def test_run_with_typed_fields_wrong_is_one_line_in_compare(isolated_outputs):
    good = _write(isolated_outputs, "good", {"schema": 1, "name": "good", "runs": [RUN]})
    bad = _write(isolated_outputs, "typed", {"schema": 1, "name": "typed",
                                             "runs": [{**RUN, "k": "ten"}]})
    result = CliRunner().invoke(cli, ["compare", str(good), str(bad)])
    assert result.exit_code == 2, result.output
    assert "runs[0].k" in one_error_line(result)
