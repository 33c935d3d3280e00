"""Downloads against a local HTTP server: resume, verification, idempotence, layouts, CLI.

The real URLs in the registry are exercised only by users; here every source is a
registry entry whose files point at ``tests/http_fixture.FileServer``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import sys
import tarfile
import types
import zipfile
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from http_fixture import FileServer, closed_port_url
from PIL import Image

from bench.cli.download import add_commands
from bench.core.errors import BenchError
from bench.datasets.download import fetch, registry
from bench.datasets.download.fetch import ChecksumError
from bench.datasets.download.install import (
    InstallOptions,
    install_dataset,
    install_weights,
    status_of,
)
from bench.datasets.download.manifest import get_entry, load_manifest
from bench.datasets.download.registry import DATASETS, WEIGHTS, RemoteFile

OPTS = InstallOptions(progress=False, retries=0, timeout=5.0, backoff=0.0)


def _opts(**kw: object) -> InstallOptions:
    return replace(OPTS, **kw)


@pytest.fixture
def srv():
    with FileServer() as server:
        yield server


def _blob(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _hdf5_source(srv: FileServer, data: bytes, **remote: object):
    srv.files["sift.hdf5"] = data
    files = (RemoteFile("sift-128-euclidean.hdf5", (srv.url("sift.hdf5"),), **remote),)
    return replace(DATASETS["sift-128-euclidean"], files=files)


# --- fetching ------------------------------------------------------------------------


def test_download_verifies_and_records(srv: FileServer, tmp_path: Path) -> None:
    data = _blob(300_000)
    source = _hdf5_source(srv, data, size=len(data), sha256=_sha(data))
    result = install_dataset(source, tmp_path, OPTS)
    target = tmp_path / "ann-benchmarks" / "sift-128-euclidean.hdf5"
    assert result.status == "installed" and result.target == target
    assert target.read_bytes() == data
    entry = get_entry(tmp_path, "sift-128-euclidean")
    assert entry is not None and entry["target"] == "ann-benchmarks/sift-128-euclidean.hdf5"
    (src,) = entry["sources"]
    assert src["sha256"] == _sha(data) and src["sha256_verified"] is True
    assert src["url"] == srv.url("sift.hdf5") and src["size"] == len(data)
    assert src["downloaded_at"] and entry["total_bytes"] == len(data)
    assert not list(tmp_path.rglob("*.part")) and not (tmp_path / ".downloads").exists()


def test_dropped_connection_resumes_with_range_in_one_run(srv: FileServer,
                                                         tmp_path: Path) -> None:
    data = _blob(500_000, seed=1)
    source = _hdf5_source(srv, data)  # size and checksum unknown: recorded, not verified
    srv.state.drops["sift.hdf5"] = [100_000, 250_000]  # body bytes of each response
    install_dataset(source, tmp_path, _opts(retries=3))
    assert (tmp_path / source.target).read_bytes() == data
    assert srv.log == [("sift.hdf5", None), ("sift.hdf5", "bytes=100000-"),
                       ("sift.hdf5", "bytes=350000-")]
    (src,) = get_entry(tmp_path, source.name)["sources"]
    assert src["sha256"] == _sha(data) and src["sha256_verified"] is False


def test_interrupted_run_resumes_in_the_next_run(srv: FileServer, tmp_path: Path) -> None:
    data = _blob(400_000, seed=2)
    source = _hdf5_source(srv, data, size=len(data), sha256=_sha(data))
    srv.state.drops["sift.hdf5"] = [123_456]
    with pytest.raises(BenchError, match="again to resume"):
        install_dataset(source, tmp_path, OPTS)
    part = tmp_path / ".downloads" / source.name / "sift-128-euclidean.hdf5.part"
    assert part.stat().st_size == 123_456
    assert not (tmp_path / source.target).exists()
    install_dataset(source, tmp_path, OPTS)
    assert srv.log[-1] == ("sift.hdf5", "bytes=123456-")
    assert (tmp_path / source.target).read_bytes() == data
    assert not part.exists()


def test_file_changed_upstream_between_runs_is_fetched_whole(srv: FileServer,
                                                              tmp_path: Path) -> None:
    old, new = _blob(200_000, seed=8), _blob(210_000, seed=9)
    source = _hdf5_source(srv, old)
    srv.state.drops["sift.hdf5"] = [80_000]
    with pytest.raises(BenchError):
        install_dataset(source, tmp_path, OPTS)
    srv.files["sift.hdf5"], srv.state.etags["sift.hdf5"] = new, '"v2"'
    install_dataset(source, tmp_path, OPTS)  # If-Range "v1" no longer matches: 200, restart
    assert srv.log[-1] == ("sift.hdf5", "bytes=80000-")
    assert (tmp_path / source.target).read_bytes() == new


def test_complete_part_file_is_finished_without_refetching(srv: FileServer,
                                                           tmp_path: Path) -> None:
    data = _blob(50_000, seed=10)
    source = _hdf5_source(srv, data, sha256=_sha(data))
    part = tmp_path / ".downloads" / source.name / "sift-128-euclidean.hdf5.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data)  # e.g. killed between the last byte and the rename
    part.with_name(part.name + ".json").write_text(json.dumps({"url": srv.url("sift.hdf5")}))
    install_dataset(source, tmp_path, OPTS)
    assert srv.log == [("sift.hdf5", "bytes=50000-")]  # answered 416: nothing left to send
    assert (tmp_path / source.target).read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(srv: FileServer, tmp_path: Path) -> None:
    data = _blob(200_000, seed=3)
    source = _hdf5_source(srv, data, sha256=_sha(data))
    srv.state.ignore_range.add("sift.hdf5")
    srv.state.drops["sift.hdf5"] = [50_000]
    install_dataset(source, tmp_path, _opts(retries=1))
    assert srv.log[1] == ("sift.hdf5", "bytes=50000-")  # asked, got 200, started over
    assert (tmp_path / source.target).read_bytes() == data


def test_without_range_support_a_partial_file_is_restarted(tmp_path: Path) -> None:
    """FTP (like file://) has no ranges in urllib: a leftover .part must not be appended to."""
    data = _blob(30_000, seed=7)
    src = tmp_path / "remote.bin"
    src.write_bytes(data)
    url = src.as_uri()
    files = (RemoteFile("sift-128-euclidean.hdf5", (url,), sha256=_sha(data)),)
    source = replace(DATASETS["sift-128-euclidean"], files=files)
    part = tmp_path / "d" / ".downloads" / source.name / "sift-128-euclidean.hdf5.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    part.with_name(part.name + ".json").write_text(json.dumps({"url": url}))
    install_dataset(source, tmp_path / "d", OPTS)
    assert (tmp_path / "d" / source.target).read_bytes() == data


def test_checksum_mismatch_keeps_file_aside(srv: FileServer, tmp_path: Path) -> None:
    data = _blob(100_000, seed=4)
    source = _hdf5_source(srv, data, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="kept aside") as info:
        install_dataset(source, tmp_path, OPTS)
    assert _sha(data) in str(info.value)
    aside = tmp_path / ".downloads" / source.name / "sift-128-euclidean.hdf5.sha256-mismatch"
    assert aside.read_bytes() == data
    assert not (tmp_path / source.target).exists()
    assert get_entry(tmp_path, source.name) is None
    with pytest.raises(ChecksumError):  # the rejected file is never picked up again
        install_dataset(source, tmp_path, OPTS)
    assert len(srv.log) == 2


def test_size_differing_from_registry_is_refused(srv: FileServer, tmp_path: Path) -> None:
    source = _hdf5_source(srv, _blob(1000), size=999)
    with pytest.raises(BenchError, match="offers 1000 bytes but the registry records 999"):
        install_dataset(source, tmp_path, OPTS)


def test_present_and_valid_is_not_downloaded_again(srv: FileServer, tmp_path: Path) -> None:
    data = _blob(50_000, seed=5)
    source = _hdf5_source(srv, data)
    assert install_dataset(source, tmp_path, OPTS).status == "installed"
    assert install_dataset(source, tmp_path, OPTS).status == "present"
    assert len(srv.log) == 1 and status_of(source, tmp_path) == "present"
    target = tmp_path / source.target
    target.write_bytes(data[:10])  # damaged after the fact: fetched again
    assert status_of(source, tmp_path) == "modified"
    assert install_dataset(source, tmp_path, OPTS).status == "installed"
    assert len(srv.log) == 2 and target.read_bytes() == data


def test_foreign_target_is_not_overwritten_without_force(srv: FileServer,
                                                         tmp_path: Path) -> None:
    source = _hdf5_source(srv, _blob(1000))
    target = tmp_path / source.target
    target.parent.mkdir(parents=True)
    target.write_bytes(b"mine")
    assert status_of(source, tmp_path) == "not ours"
    with pytest.raises(BenchError, match="not downloaded by bench"):
        install_dataset(source, tmp_path, OPTS)
    assert target.read_bytes() == b"mine" and srv.log == []
    install_dataset(source, tmp_path, _opts(force=True))
    assert target.read_bytes() == _blob(1000)


def test_mirror_is_tried_after_not_found(srv: FileServer, tmp_path: Path) -> None:
    srv.files["b.hdf5"] = b"payload"
    files = (RemoteFile("sift-128-euclidean.hdf5", (srv.url("gone"), srv.url("b.hdf5"))),)
    source = replace(DATASETS["sift-128-euclidean"], files=files)
    install_dataset(source, tmp_path, OPTS)
    assert get_entry(tmp_path, source.name)["sources"][0]["url"] == srv.url("b.hdf5")


def test_no_network_is_one_clear_error(tmp_path: Path) -> None:
    files = (RemoteFile("sift-128-euclidean.hdf5", (closed_port_url(),)),)
    source = replace(DATASETS["sift-128-euclidean"], files=files)
    with pytest.raises(BenchError, match=r"no network\?.*connection refused"):
        install_dataset(source, tmp_path, OPTS)


def test_not_enough_disk_space_before_download(srv: FileServer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    source = _hdf5_source(srv, _blob(10_000))
    monkeypatch.setattr(fetch, "_free_bytes", lambda path: 1000)
    with pytest.raises(BenchError, match="not enough disk space"):
        install_dataset(source, tmp_path, OPTS)


def test_disk_full_while_writing(srv: FileServer, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    source = _hdf5_source(srv, _blob(10_000))

    def full(f: object, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch, "_append", full)
    with pytest.raises(BenchError, match="disk full while writing .*run again to resume"):
        install_dataset(source, tmp_path, OPTS)


# --- layouts -------------------------------------------------------------------------


def _bsds_archive() -> tuple[bytes, dict[str, bytes]]:
    images = {f"{split}{i}": _jpeg(10 * s + i) for s, split in enumerate(("1", "2", "3"))
              for i in range(2)}
    splits = {"1": "train", "2": "val", "3": "test"}
    members = {f"BSR/BSDS500/data/images/{splits[k[0]]}/{k}.jpg": v for k, v in images.items()}
    members["BSR/BSDS500/data/images/train/Thumbs.db"] = b"junk"
    members["BSR/BSDS500/data/groundTruth/train/10.mat"] = b"mat"
    members["BSR/documentation/readme.jpg"] = b"not an image of the set"
    return _tgz(members), {f"{k}.jpg": v for k, v in images.items()}


def test_bsds500_layout(srv: FileServer, tmp_path: Path) -> None:
    archive, expected = _bsds_archive()
    srv.files["BSR.tgz"] = archive
    files = (RemoteFile("BSR_bsds500.tgz", (srv.url("BSR.tgz"),)),)
    source = replace(registry.BSDS500, files=files, expect_files=6)
    install_dataset(source, tmp_path, OPTS)
    original = tmp_path / "bsds500" / "original"
    assert {p.name: p.read_bytes() for p in original.iterdir()} == expected
    real = replace(registry.BSDS500, files=files)  # expects all 500 images
    with pytest.raises(BenchError, match="expected 500 files, the archives gave 6"):
        install_dataset(real, tmp_path / "other", OPTS)


def test_damaged_archive_is_moved_aside(srv: FileServer, tmp_path: Path) -> None:
    srv.files["BSR.tgz"] = _blob(5000)
    files = (RemoteFile("BSR_bsds500.tgz", (srv.url("BSR.tgz"),)),)
    with pytest.raises(BenchError, match="damaged.*run again to download it afresh"):
        install_dataset(replace(registry.BSDS500, files=files), tmp_path, OPTS)
    assert (tmp_path / ".downloads" / "bsds500" / "BSR_bsds500.tgz.damaged").exists()


def test_mirflickr_layout_and_part_by_part_resume(srv: FileServer, tmp_path: Path) -> None:
    zip0 = {"images/0/0.jpg": _jpeg(0), "images/0/1.jpg": _jpeg(1),
            "images/1/10000.jpg": _jpeg(2), "__MACOSX/images/0/._0.jpg": b"x"}
    zip1 = {"2/20000.jpg": _jpeg(3), "3/30001.jpg": _jpeg(4), "README.txt": b"no"}
    srv.files["images0.zip"] = _zip(zip0)
    files = tuple(RemoteFile(f"images{i}.zip", (srv.url(f"images{i}.zip"),)) for i in range(2))
    source = replace(registry.MIRFLICKR_500K, files=files)
    with pytest.raises(BenchError, match="HTTP 404"):  # second part not there yet
        install_dataset(source, tmp_path, OPTS)
    assert not (tmp_path / "mirflickr").exists()
    srv.files["images1.zip"] = _zip(zip1)
    result = install_dataset(source, tmp_path, OPTS)
    assert [p for p, _ in srv.log].count("images0.zip") == 1  # part 0 kept from the 1st run
    flickr = tmp_path / "mirflickr"
    got = {p.relative_to(flickr).as_posix(): p.read_bytes() for p in flickr.rglob("*.jpg")}
    want = {"0/0.jpg": _jpeg(0), "0/1.jpg": _jpeg(1), "1/10000.jpg": _jpeg(2),
            "2/20000.jpg": _jpeg(3), "3/30001.jpg": _jpeg(4)}
    assert got == want and result.files_count == 5
    assert any("expected 500000 files" in w for w in result.warnings)  # not strict
    assert not (tmp_path / ".staging" / "mirflickr-500k").exists()


def _fvecs(a: np.ndarray, dtype: type) -> bytes:
    rows = np.hstack([np.full((len(a), 1), a.shape[1], np.int32).view(np.int32),
                      a.astype(dtype).view(np.int32)])
    return rows.astype(np.int32).tobytes()


def test_texmex_layout(srv: FileServer, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    base, query = rng.random((20, 4), np.float32), rng.random((3, 4), np.float32)
    gt = rng.integers(0, 20, (3, 5)).astype(np.int32)
    srv.files["siftsmall.tar.gz"] = _tgz({
        "siftsmall/siftsmall_base.fvecs": _fvecs(base, np.float32),
        "siftsmall/siftsmall_query.fvecs": _fvecs(query, np.float32),
        "siftsmall/siftsmall_learn.fvecs": _fvecs(base[:5], np.float32),
        "siftsmall/siftsmall_groundtruth.ivecs": _fvecs(gt, np.int32),
    })
    files = (RemoteFile("siftsmall.tar.gz", (srv.url("siftsmall.tar.gz"),)),)
    install_dataset(replace(DATASETS["siftsmall"], files=files), tmp_path, OPTS)
    folder = tmp_path / "texmex" / "siftsmall"
    raw = np.fromfile(folder / "siftsmall_base.fvecs", np.int32).reshape(20, 5)
    assert (raw[:, 0] == 4).all() and np.array_equal(raw[:, 1:].view(np.float32), base)
    raw = np.fromfile(folder / "siftsmall_groundtruth.ivecs", np.int32).reshape(3, 6)
    assert np.array_equal(raw[:, 1:], gt)
    assert len(list(folder.iterdir())) == 4


# --- weights -------------------------------------------------------------------------


def _fake_converter(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    calls: list[tuple[str, Path]] = []

    def convert_checkpoint(family: str, checkpoint_dir: Path, out: Path) -> None:
        calls.append((family, checkpoint_dir))
        names = sorted(p.name for p in Path(checkpoint_dir).iterdir())
        Path(out).write_text(json.dumps(names))

    module = types.ModuleType("bench.extractors.neural.convert")
    module.convert_checkpoint = convert_checkpoint  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.extractors.neural.convert", module)
    return calls


def _v2_weights(srv: FileServer):
    w = WEIGHTS[("simclr-v2", "r50_1x_sk0")]
    for f in w.files:
        srv.files[f.filename] = f.filename.encode() * 100
    return replace(w, files=tuple(RemoteFile(f.filename, (srv.url(f.filename),))
                                  for f in w.files))


def test_weights_download_then_convert(srv: FileServer, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_converter(monkeypatch)
    w = _v2_weights(srv)
    result = install_weights(w, tmp_path, OPTS)
    tf_dir = tmp_path / "weights" / "tf" / "simclr-v2-r50-1x-sk0"
    assert calls == [("simclr-v2", tf_dir)]
    assert result.converted == tmp_path / "weights" / "simclr-v2-r50-1x-sk0.pt"
    assert json.loads(result.converted.read_text()) == sorted(f.filename for f in w.files)
    entry = get_entry(tmp_path, w.name)
    assert entry["converted"] == str(result.converted) and len(entry["sources"]) == 3
    n = len(srv.log)
    assert install_weights(w, tmp_path, OPTS).status == "present"
    assert len(srv.log) == n and len(calls) == 1


def test_simclr_v1_zip_keeps_only_the_checkpoint(srv: FileServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_converter(monkeypatch)
    srv.files["v1.zip"] = _zip({
        "ResNet50_1x/checkpoint": b"model_checkpoint_path: ...",
        "ResNet50_1x/model.ckpt-225206.index": b"i",
        "ResNet50_1x/model.ckpt-225206.data-00000-of-00001": b"d",
        "ResNet50_1x/hub/saved_model.pb": b"hub",
    })
    w = replace(WEIGHTS[("simclr-v1", "1x")],
                files=(RemoteFile("ResNet50_1x.zip", (srv.url("v1.zip"),)),))
    result = install_weights(w, tmp_path, OPTS)
    assert json.loads(result.converted.read_text()) == [
        "checkpoint", "model.ckpt-225206.data-00000-of-00001", "model.ckpt-225206.index"]


def test_weights_without_converter_say_what_to_run(srv: FileServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bench.extractors.neural.convert", None)  # import fails
    w = _v2_weights(srv)
    with pytest.raises(BenchError, match="bench convert simclr-v2 .*simclr-v2-r50-1x-sk0"):
        install_weights(w, tmp_path, OPTS)
    assert (tmp_path / "weights" / "tf" / w.name / "model.ckpt-250228.index").exists()
    assert get_entry(tmp_path, w.name) is not None  # the download itself is kept


# --- registry and CLI ------------------------------------------------------------------


def test_registry_is_consistent() -> None:
    remotes = [f for d in DATASETS.values() for f in d.files]
    remotes += [f for w in WEIGHTS.values() for f in w.files]
    for f in remotes:
        assert f.urls and all(u.startswith(("http://", "https://", "ftp://")) for u in f.urls)
        assert f.sha256 is None or (len(f.sha256) == 64 and int(f.sha256, 16) >= 0)
    v2 = [w for (family, _), w in WEIGHTS.items() if family == "simclr-v2"]
    assert len(v2) == 13 and {w.variant for w in v2} >= {"r50_1x_sk0", "r152_3x_sk1"}
    w = registry.get_weights("simclr-v2", "r50-2x-sk1")
    assert w.name == "simclr-v2-r50-2x-sk1" and w.files[1].urls[0] == (
        "https://storage.googleapis.com/simclr-checkpoints/simclrv2/pretrained/r50_2x_sk1/"
        "model.ckpt-250228.index")
    assert registry.get_weights("simclr-v1", "4x").name == "simclr-v1-r50-4x"
    assert [f.filename for f in registry.MIRFLICKR_500K.files] == [
        f"images{i}.zip" for i in range(5)]
    assert DATASETS["glove-100-angular"].files[0].urls == (
        "http://ann-benchmarks.com/glove-100-angular.hdf5",)


def _cli() -> click.Group:
    root, datasets = click.Group("bench"), click.Group("datasets")
    add_commands(datasets, root)
    root.add_command(datasets)
    return root


def test_cli_download_list_info(srv: FileServer, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = replace(_hdf5_source(srv, b"hdf5 bytes"), name="tiny")
    monkeypatch.setitem(DATASETS, "tiny", source)
    runner, cli = CliRunner(), _cli()
    args = ["datasets", "download", "tiny", "--data-dir", str(tmp_path), "--no-progress"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "tiny installed" in result.output
    assert "already present" in runner.invoke(cli, args).output
    listing = runner.invoke(cli, ["datasets", "list", "--data-dir", str(tmp_path)],
                            terminal_width=200).output
    rows = {line.split("│")[1].strip(): line for line in listing.splitlines() if "│" in line}
    assert "present" in rows["tiny"] and "absent" in rows["bsds500"]
    assert "by hand" in rows["memes"]
    info = runner.invoke(cli, ["datasets", "info", "tiny", "--data-dir", str(tmp_path)]).output
    assert _sha(b"hdf5 bytes") in info and srv.url("sift.hdf5") in info
    memes = runner.invoke(cli, ["datasets", "info", "memes"]).output
    assert "bench datasets prepare memes" in memes
    manifest = load_manifest(tmp_path)
    assert set(manifest["entries"]) == {"tiny"}


def test_cli_errors_are_bench_errors(tmp_path: Path) -> None:
    runner, cli = CliRunner(), _cli()
    result = runner.invoke(cli, ["datasets", "download", "memes", "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, BenchError) and "bench datasets info memes" in str(
        result.exception)
    result = runner.invoke(cli, ["datasets", "download", "nope"])
    assert isinstance(result.exception, BenchError) and "unknown dataset 'nope'" in str(
        result.exception)
    result = runner.invoke(cli, ["weights", "download", "simclr-v2", "r50_9x_sk0"])
    assert isinstance(result.exception, BenchError) and "r152_3x_sk1" in str(result.exception)
