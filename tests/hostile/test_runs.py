"""Hostile run-time and file cases (issue #15): the error printer, file modes, the
environment record. Each case asserts the one line, the exit code, and the roots."""

from __future__ import annotations

import os

import numpy as np
from click.testing import CliRunner
from hostile_checks import tree

from bench.cli.main import cli
from bench.core.files import atomic_save_npy, atomic_write_json
from bench.run.measure import blas_info


def test_markup_and_emoji_in_message_print_as_plain_text(tmp_path, isolated_outputs):
    folder = tmp_path / "y["
    folder.mkdir()
    bad = folder / "]:smile:.yaml"
    bad.write_text("name: a\nk: -1\n")
    before = tree(tmp_path)
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "y[/]:smile:.yaml")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1, result.output
    assert "y[/]:smile:.yaml" in lines[0]
    assert "\U0001f604" not in result.output
    assert tree(tmp_path) == before


def test_atomic_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
        atomic_save_npy(tmp_path / "n.npy", np.zeros(3))
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "n.npy").stat().st_mode & 0o777 == 0o644
    assert tree(tmp_path) == {"r.json", "n.npy"}


def test_blas_list_is_sorted():
    import json

    found = blas_info()
    assert found == sorted(found, key=lambda d: json.dumps(d, sort_keys=True, default=str))
