"""Hostile run-time and file cases (issue #15): the error printer, file modes, the
environment record. Each case asserts the one line, the exit code, and the roots."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
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


def test_atomic_files_follow_the_umask(tmp_path, monkeypatch):
    from bench.core import files

    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        monkeypatch.setattr(files, "_UMASK", mask)  # the process umask, read at import
        atomic_write_json(tmp_path / f"r{mask}.json", {"a": 1})
        atomic_save_npy(tmp_path / f"n{mask}.npy", np.zeros(3))
        assert (tmp_path / f"r{mask}.json").stat().st_mode & 0o777 == mode
        assert (tmp_path / f"n{mask}.npy").stat().st_mode & 0o777 == mode
    mask = os.umask(0)
    os.umask(mask)
    assert files._umask() == mask
    after = os.umask(0)
    os.umask(after)
    assert after == mask  # reading it leaves it unchanged
    assert len(tree(tmp_path)) == 4


def test_unwritable_folder_is_one_line_and_keeps_the_old_file(tmp_path):
    from bench.core.errors import BenchError

    target = tmp_path / "r.json"
    atomic_write_json(target, {"a": 1})
    tmp_path.chmod(0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: a read-only folder is still writable")
        with pytest.raises(BenchError, match=r"r.json: cannot be written \(Permission denied\)"):
            atomic_write_json(target, {"a": 2})
    finally:
        tmp_path.chmod(0o700)
    assert json.loads(target.read_text()) == {"a": 1}
    assert tree(tmp_path) == {"r.json"}


def test_disk_full_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    from bench.core.errors import BenchError

    target = tmp_path / "r.json"
    atomic_write_json(target, {"a": 1})

    def full(fd):  # what fsync reports when the file system has no room left
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(BenchError, match="cannot be written .No space left on device."):
        atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert tree(tmp_path) == {"r.json"}


def test_blas_list_is_sorted():
    import json

    found = blas_info()
    assert found == sorted(found, key=lambda d: json.dumps(d, sort_keys=True, default=str))
