"""The cache: safe extraction, atomic publication, offline mode, free space, ls / verify / rm / prune."""
import io
import stat
import tarfile
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from bert_hub import cache
from bert_hub.errors import (
    ArchiveLayoutError,
    EntryNotFoundError,
    InsufficientSpaceError,
    OfflineError,
    UnsafeArchiveError,
)

FILES = {"bert_config.json": b'{"vocab_size": 10}', "vocab.txt": b"[PAD]\n[UNK]\nhello\n"}


def make_zip(path, members, top="model"):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return path


def make_tar(path, add):
    with tarfile.open(path, "w:gz") as tf:
        add(tf)
    return path


def tar_file(tf, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


# --- safe extraction --------------------------------------------------------------------------


@pytest.mark.parametrize("top", ["model", None])
def test_extract_zip_top_folder_or_flat(tmp_path, top):
    archive = make_zip(tmp_path / "a.zip", FILES, top=top)
    hashes = cache.safe_extract(archive, tmp_path / "out")
    folder = cache.model_folder_of(tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert (folder / "vocab.txt").read_bytes() == FILES["vocab.txt"]
    assert len(hashes) == len(FILES)


def test_extract_tar_gz(tmp_path):
    def add(tf):
        for name, data in FILES.items():
            tar_file(tf, f"top/{name}", data)
    archive = make_tar(tmp_path / "a.tar.gz", add)
    cache.safe_extract(archive, tmp_path / "out")
    assert (cache.model_folder_of(tmp_path / "out") / "bert_config.json").read_bytes() == FILES["bert_config.json"]


@pytest.mark.parametrize("name, reason", [
    ("../evil.txt", "'..'"),
    ("model/../../evil.txt", "'..'"),
    ("/etc/evil.txt", "absolute"),
])
def test_zip_escapes_refused_before_writing(tmp_path, name, reason):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model/ok.txt", b"fine")
        zf.writestr(name, b"evil")
    with pytest.raises(UnsafeArchiveError, match=reason):
        cache.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "model" / "ok.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("model/vocab.txt")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        cache.safe_extract(archive, tmp_path / "out")


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "absolute", "dotdot"])
def test_tar_unsafe_members_refused(tmp_path, kind):
    def add(tf):
        tar_file(tf, "model/ok.txt")
        if kind in ("symlink", "hardlink", "device"):
            info = tarfile.TarInfo("model/vocab.txt")
            info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE}[kind]
            info.linkname = "/etc/passwd"
            tf.addfile(info)
        else:
            tar_file(tf, "/tmp/evil.txt" if kind == "absolute" else "../evil.txt")
    archive = make_tar(tmp_path / "bad.tar.gz", add)
    with pytest.raises(UnsafeArchiveError):
        cache.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "model" / "ok.txt").exists()


def test_not_an_archive(tmp_path):
    junk = tmp_path / "model.zip"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(ArchiveLayoutError, match="neither a zip nor a tar"):
        cache.safe_extract(junk, tmp_path / "out")


# --- entries from local archives: publication, verify, rm, prune ------------------------------


def _layout_needs_config(folder: Path):
    if not (folder / "bert_config.json").exists():
        raise ArchiveLayoutError(f"no bert_config.json in {folder}")


def test_local_archive_entry_published_with_manifest(tmp_path):
    root = tmp_path / "cache"
    archive = make_zip(tmp_path / "m.zip", FILES)
    folder = cache.ensure_local_archive_entry("m", archive, root=root, check_layout=_layout_needs_config)
    assert folder == root / "models" / "m"
    manifest = cache.read_manifest(folder)
    assert set(manifest["files"]) == set(FILES)
    assert manifest["source"] == str(archive)
    # nothing left in the temp area
    assert list((root / ".tmp").iterdir()) == []
    entry = cache.find_entry(root, "m")
    assert cache.verify_entry(entry) == []


def test_layout_failure_publishes_nothing(tmp_path):
    root = tmp_path / "cache"
    archive = make_zip(tmp_path / "m.zip", {"vocab.txt": b"a\n"})
    with pytest.raises(ArchiveLayoutError):
        cache.ensure_local_archive_entry("m", archive, root=root, check_layout=_layout_needs_config)
    assert not (root / "models" / "m").exists()
    assert list((root / ".tmp").iterdir()) == []


def test_verify_detects_corruption_and_rm_removes(tmp_path):
    root = tmp_path / "cache"
    folder = cache.ensure_local_archive_entry("m", make_zip(tmp_path / "m.zip", FILES), root=root)
    (folder / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nhellO\n")  # same size, other bytes
    problems = cache.verify_entry(cache.find_entry(root, "m"))
    assert problems and "vocab.txt" in problems[0]
    (folder / "bert_config.json").unlink()
    assert any("missing" in p for p in cache.verify_entry(cache.find_entry(root, "m")))
    removed = cache.remove_entry(root, "m")
    assert removed.name == "m" and not folder.exists()
    with pytest.raises(EntryNotFoundError, match="bert-hub cache ls"):
        cache.remove_entry(root, "m")


def test_folder_without_manifest_is_not_an_entry(tmp_path):
    root = tmp_path / "cache"
    half = root / "models" / "half"
    half.mkdir(parents=True)
    (half / "bert_config.json").write_text("{}")
    assert cache.cached_entry(root, "half") is None
    assert [e.name for e in cache.list_entries(root)] == []
    removed = cache.prune(root)
    assert half in removed and not half.exists()


def test_prune_sweeps_orphans_but_not_locked_work(tmp_path):
    root = tmp_path / "cache"
    tmp = root / ".tmp"
    tmp.mkdir(parents=True)
    orphan = tmp / ("a." + "0" * 32 + ".extract")
    orphan.mkdir()
    (tmp / "a.part").write_bytes(b"partial")
    busy = tmp / "b.part"
    busy.write_bytes(b"in progress")
    with cache.entry_lock(root, "b"):   # another worker is still busy with entry "b"
        removed = cache.prune(root)
        assert busy.exists() and busy not in removed
    assert orphan in removed and (tmp / "a.part") in removed
    assert not orphan.exists() and not (tmp / "a.part").exists()


def test_offline_miss_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline mode is on") as info:
        cache.ensure_archive_entry("bert-base-uncased", "http://127.0.0.1:9/x.zip", root=tmp_path)
    assert "bert-hub download bert-base-uncased" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "models").exists()


def test_insufficient_space_before_extracting(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    archive = make_zip(tmp_path / "m.zip", FILES)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda p: Usage(10 << 20, 10 << 20, 1 << 20))
    with pytest.raises(InsufficientSpaceError, match="BERT_HUB_CACHE"):
        cache.ensure_local_archive_entry("m", archive, root=root)
    assert not (root / "models" / "m").exists()


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path / "a"))
    assert cache.cache_root() == tmp_path / "a"
    assert cache.cache_root(tmp_path / "b") == tmp_path / "b"
    monkeypatch.delenv("BERT_HUB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "bert_hub"


def test_url_entry_names_are_distinct_and_safe():
    a = cache.url_entry_name("http://127.0.0.1:1/a/model.v1.zip")
    b = cache.url_entry_name("http://127.0.0.1:2/a/model.v1.zip")
    assert a != b and "/" not in a and "." not in a
    assert a.startswith("url--model_v1--")


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_bad_lock_timeout_is_a_clear_error(tmp_path, monkeypatch, value):
    from bert_hub.errors import InvalidInputError
    monkeypatch.setenv("BERT_HUB_LOCK_TIMEOUT", value)
    with pytest.raises(InvalidInputError, match="BERT_HUB_LOCK_TIMEOUT"):
        with cache.entry_lock(tmp_path, "x"):
            pass
