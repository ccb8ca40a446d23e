"""The cache: safe extraction, atomic publication, offline mode, free space, ls / verify / rm / prune,
hostile archives and cache faults."""
import gzip
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib
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
        assert (root / ".locks" / "b.lock").exists()     # held: kept
    assert not (root / ".locks" / "a.lock").exists()      # nothing holds it
    assert orphan in removed and (tmp / "a.part") in removed
    assert not orphan.exists() and not (tmp / "a.part").exists()


def test_offline_miss_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline mode is on") as info:
        cache.ensure_archive_entry("bert-base-uncased", "http://127.0.0.1:9/x.zip", root=tmp_path)
    assert "bert-hub download bert-base-uncased" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "models").exists()


def test_offline_still_reads_files_on_this_machine(tmp_path, monkeypatch):
    """file:// URLs and plain paths use no network, so offline mode does not refuse them."""
    monkeypatch.setenv("BERT_HUB_OFFLINE", "1")
    archive = make_zip(tmp_path / "m.zip", FILES)
    for name, url in (("by-uri", archive.as_uri()), ("by-path", str(archive))):
        folder = cache.ensure_archive_entry(name, url, root=tmp_path / "c")
        assert (folder / "vocab.txt").read_bytes() == FILES["vocab.txt"]
    with pytest.raises(OfflineError, match="offline mode is on"):
        cache.ensure_archive_entry("remote", "file://elsewhere/m.zip", root=tmp_path / "c")
    assert cache.ensure_file(archive.as_uri(), root=tmp_path / "c", local_files_only=True) \
        .read_bytes() == archive.read_bytes()
    with pytest.raises(OfflineError, match="offline mode is on"):
        cache.ensure_file("http://127.0.0.1:9/m.zip", root=tmp_path / "c")


def test_insufficient_space_before_extracting(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    archive = make_zip(tmp_path / "m.zip", FILES)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 << 20, 10 << 20, 1 << 20))
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


# --- hostile archives: every one a typed error, nothing published --------------------------

from hostile_archives import (  # noqa: E402
    END,
    TOP,
    google_files,
    pax_record,
    padded,
    raw_zip,
    sparse_member,
    tar_header,
    tar_members,
    tar_of,
    zip_of,
)

from bert_hub import archive as archives, cli, disk, hub  # noqa: E402
from bert_hub.errors import (  # noqa: E402
    BertHubError,
    CacheNotWritableError,
    IntegrityError,
)


def _members(files=None, **change):
    """raw_zip members of the Google folder, the last one changed by `change`."""
    members = [{"name": f"{TOP}/{n}".encode(), "data": d, "method": 8}
               for n, d in (files or google_files()).items()]
    members[-1].update(change)
    return members


def _corrupt_deflate():
    members = _members()
    payload = bytearray(zlib.compress(members[-1]["data"])[2:-4])
    payload[len(payload) // 2:] = b"\xff" * (len(payload) - len(payload) // 2)
    members[-1]["payload"] = bytes(payload)
    return raw_zip(members)


def _truncated_member():
    members = _members()
    data = members[-1]["data"]
    members[-1]["payload"] = zlib.compress(data)[2:-4][:20]
    return raw_zip(members)


HOSTILE_ZIPS = {   # what the issue lists, each with the error it must become
    "BadZipFile": (lambda: b"PK\x03\x04" + bytes(300), IntegrityError),
    "zlib.error": (_corrupt_deflate, IntegrityError),
    "EOFError": (_truncated_member, IntegrityError),
    "encrypted member": (lambda: raw_zip(_members(flags=0x1)), ArchiveLayoutError),
    "NotImplementedError (method 9)": (lambda: raw_zip(_members(method=9)), ArchiveLayoutError),
    "empty member name": (lambda: raw_zip(_members() + [{"name": b"", "data": b"x"}]), UnsafeArchiveError),
    "a '.' member": (lambda: raw_zip(_members() + [{"name": b".", "data": b"x"}]), UnsafeArchiveError),
    "file/folder collision": (lambda: raw_zip(_members() + [{"name": f"{TOP}/vocab.txt/x".encode(),
                                                              "data": b"x"}]), ArchiveLayoutError),
    "same name twice": (lambda: raw_zip(_members() + [{"name": f"{TOP}/./vocab.txt".encode(),
                                                        "data": b"x"}]), ArchiveLayoutError),
    "over-long name": (lambda: raw_zip(_members() + [{"name": b"n" * 300, "data": b"x"}]), ArchiveLayoutError),
    "over-long path": (lambda: raw_zip(_members() + [{"name": b"/".join([b"d" * 200] * 30), "data": b"x"}]),
                       ArchiveLayoutError),
    "folder named model.safetensors": (lambda: raw_zip(_members() + [{"name": f"{TOP}/model.safetensors/".encode(),
                                                                       "mode": stat.S_IFDIR | 0o755}]),
                                       ArchiveLayoutError),
}

HOSTILE_TARS = {
    "tarfile.ReadError": (lambda: b"\0" * 257 + b"ustar" + bytes(250) + b"junk" * 200, IntegrityError),
    "empty member name": (lambda: tar_members(google_files()) + tar_header(b"", 1) + padded(b"x") + END,
                          UnsafeArchiveError),
    "a '.' member": (lambda: tar_members(google_files()) + tar_header(b".", 1) + padded(b"x") + END,
                     UnsafeArchiveError),
    "file/folder collision": (lambda: tar_members(google_files()) + tar_header(f"{TOP}/vocab.txt/x".encode(), 1)
                              + padded(b"x") + END, ArchiveLayoutError),
    "folder named model.safetensors": (lambda: tar_members(google_files()) + tar_header(
        f"{TOP}/model.safetensors".encode(), 0, tarfile.DIRTYPE) + END, ArchiveLayoutError),
    "corrupt header mid-archive": (lambda: tar_members(google_files()) + b"\1" * 512 + END, IntegrityError),
    "no end-of-archive marker": (lambda: tar_members(google_files()), IntegrityError),
}


def _assert_nothing_published(root: Path):
    assert cache.list_entries(root) == []
    tmp = root / ".tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


@pytest.mark.parametrize("kind", sorted(HOSTILE_ZIPS))
def test_hostile_zip_is_a_typed_error(tmp_path, kind):
    build, error = HOSTILE_ZIPS[kind]
    archive = tmp_path / "hostile.zip"
    archive.write_bytes(build())
    root = tmp_path / "cache"
    with pytest.raises(error):
        cache.ensure_local_archive_entry("m", archive, root=root, check_layout=hub.check_layout)
    _assert_nothing_published(root)


@pytest.mark.parametrize("compression", ["", "gz"])
@pytest.mark.parametrize("kind", sorted(HOSTILE_TARS))
def test_hostile_tar_is_a_typed_error(tmp_path, kind, compression):
    build, error = HOSTILE_TARS[kind]
    archive = tmp_path / "hostile.tar"
    data = build()
    archive.write_bytes(gzip.compress(data) if compression else data)
    root = tmp_path / "cache"
    with pytest.raises(error):
        cache.ensure_local_archive_entry("m", archive, root=root, check_layout=hub.check_layout)
    _assert_nothing_published(root)


@pytest.mark.parametrize("kind", ["empty member name", "a '.' member", "file/folder collision",
                                  "same name twice", "over-long name", "encrypted member"])
def test_structural_refusals_come_before_any_write(tmp_path, kind):
    build, error = HOSTILE_ZIPS[kind]
    archive = tmp_path / "hostile.zip"
    archive.write_bytes(build())
    with pytest.raises(error):
        cache.safe_extract(archive, tmp_path / "out")
    assert [p for p in (tmp_path / "out").rglob("*")] == []


# --- bombs: bounded expansion, time and memory ------------------------------------------------

Usage = namedtuple("Usage", "total used free")


def _sparse_tgz(realsize):
    return gzip.compress(tar_members(google_files()) + sparse_member(
        f"{TOP}/model.safetensors".encode(), realsize) + END)


@pytest.mark.parametrize("free, realsize", [(10 << 40, 2 << 30), (400 << 20, 330 << 20)])
def test_sparse_member_cannot_fill_the_disk(tmp_path, monkeypatch, free, realsize):
    """A small tar.gz whose sparse member declares hundreds of MB: refused before writing, on a
    large disk and on a small one."""
    archive = tmp_path / "sparse.tar.gz"
    archive.write_bytes(_sparse_tgz(realsize))
    assert archive.stat().st_size < 100_000
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(free, 0, free))
    root = tmp_path / "cache"
    with pytest.raises(UnsafeArchiveError, match="archive bomb"):
        cache.ensure_local_archive_entry("m", archive, root=root)
    _assert_nothing_published(root)
    written = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert written < 1 << 20


def _peak_bytes(call):
    import tracemalloc
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("kind", ["gnu-longname", "pax-header", "pax-size", "global-pax", "zip-directory",
                                  "zip-zeros", "tgz-zeros"])
def test_bombs_are_refused_in_bounded_memory(tmp_path, kind):
    files = google_files()
    if kind == "gnu-longname":
        data = gzip.compress(tar_members(files) + tar_header(b"././@LongLink", 1 << 30, tarfile.GNUTYPE_LONGNAME,
                                                             gnu=True) + bytes(1024))
    elif kind == "pax-header":
        data = tar_members(files) + tar_header(b"pax", 1 << 30, tarfile.XHDTYPE) + bytes(1024)
    elif kind == "pax-size":
        record = pax_record("size", str(1 << 40))
        data = tar_members(files) + tar_header(b"pax", len(record), tarfile.XHDTYPE) + padded(record) + \
            tar_header(f"{TOP}/big".encode(), 1) + padded(b"x") + END
    elif kind == "global-pax":
        body = b"".join(pax_record(f"k{i}", "v") for i in range(5000))
        data = tar_members(files) + tar_header(b"g", len(body), tarfile.XGLTYPE) + padded(body) + END
    elif kind == "zip-directory":   # an end record claiming a 1 GB central directory
        data = bytearray(zip_of(files))
        end = data.rfind(b"PK\x05\x06")
        data[end + 12:end + 16] = (1 << 30).to_bytes(4, "little")
        data = bytes(data)
    elif kind == "zip-zeros":   # 200 MB of zeros in a 200 KB zip
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            with zf.open(f"{TOP}/zeros.bin", "w", force_zip64=True) as member:
                for _ in range(200):
                    member.write(bytes(1 << 20))
        data = buf.getvalue()
    else:
        data = gzip.compress(tar_members(files) + tar_header(f"{TOP}/zeros".encode(), 200 << 20)) + \
            gzip.compress(bytes((200 << 20) + 1024), compresslevel=1)
    archive = tmp_path / "bomb"
    archive.write_bytes(data)
    root = tmp_path / "cache"
    errors = []

    def attempt():
        try:
            cache.ensure_local_archive_entry("m", archive, root=root)
        except BertHubError as exc:
            errors.append(exc)
    peak = _peak_bytes(attempt)
    assert errors and isinstance(errors[0], (UnsafeArchiveError, IntegrityError)), errors
    assert peak < 32 << 20, f"{peak / 1e6:.0f} MB allocated to refuse a {len(data)}-byte archive"
    _assert_nothing_published(root)


# --- compressed streams are checked to their end ----------------------------------------------


@pytest.mark.parametrize("damage, words", [("crc", "CRC"), ("length", "length"), ("truncated", "ended"),
                                           ("garbage", "gzip")])
def test_gzip_trailer_is_verified(tmp_path, damage, words):
    """tarfile stops at the end-of-archive blocks and never reads gzip's CRC-32 and length."""
    data = bytearray(tar_of(google_files(), compression="gz"))
    if damage == "crc":
        data[-8] ^= 0xFF
    elif damage == "length":
        data[-1] ^= 0x01
    elif damage == "truncated":
        data = data[:-5]
    else:
        data += b"\x01garbage"
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(bytes(data))
    root = tmp_path / "cache"
    with pytest.raises(IntegrityError, match=words):
        cache.ensure_local_archive_entry("m", archive, root=root)
    _assert_nothing_published(root)


def test_verify_flags_a_tar_entry_cached_without_the_stream_check(tmp_path, capsys):
    """An entry extracted from a tar.gz by an older version (no `archive_checked` in its
    manifest) cannot be vouched for: `cache verify` says so instead of 'ok'."""
    root = tmp_path / "cache"
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(tar_of(google_files(), compression="gz"))
    folder = cache.ensure_local_archive_entry("m", archive, root=root)
    assert cache.verify_entry(cache.find_entry(root, "m")) == []
    manifest = cache.read_manifest(folder)
    del manifest["archive_checked"]
    cache.write_manifest(folder, manifest)
    problems = cache.verify_entry(cache.find_entry(root, "m"))
    assert problems and "compressed stream" in problems[0]
    assert cli.main(["cache", "verify", "--cache-dir", str(root)]) == 1
    assert "CORRUPT" in capsys.readouterr().out


def test_verify_checks_a_cached_archive_file_whole(tmp_path):
    """A single cached file (cached_path) that is a tar.gz with a bad CRC: its SHA-256 matches
    what was recorded, but `cache verify` reads the compressed stream to its end."""
    bad = bytearray(tar_of(google_files(), compression="gz"))
    bad[-6] ^= 0x10
    source = tmp_path / "model.tar.gz"
    source.write_bytes(bytes(bad))
    root = tmp_path / "cache"
    cache.ensure_file(source.as_uri(), root=root)
    (entry,) = cache.list_entries(root)
    problems = cache.verify_entry(entry)
    assert problems and "CRC" in problems[0]


# --- disk space: scaled reserve, watched writes, full disks -----------------------------------


def test_reserve_scales_with_the_job():
    assert disk.reserve(100_000) == 1 << 20
    assert disk.reserve(200 << 20) == 20 << 20
    assert disk.reserve(10 << 30) == 64 << 20


def test_small_disk_takes_a_tiny_model(tmp_path, monkeypatch):
    """3 MB free is plenty for a 100 KB model (a fixed 64 MB margin refused it)."""
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of(google_files()))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(8 << 20, 5 << 20, 3 << 20))
    folder = cache.ensure_local_archive_entry("m", archive, root=tmp_path / "cache")
    assert (folder / "vocab.txt").exists()


def test_free_space_is_watched_while_writing(tmp_path, monkeypatch):
    """Declared sizes fit, then another process fills the disk: the writer stops at the reserve."""
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of({**google_files(), "padding.bin": os.urandom(3 << 20)}))
    monkeypatch.setattr(disk, "_WATCH_EVERY", 1 << 20)
    root = tmp_path / "cache"

    def disk_usage(path):   # room for everything until 1 MB is written, then 100 KB left
        written = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        return Usage(1 << 40, written, 1 << 40 if written < 1 << 20 else 100_000)
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    with pytest.raises(InsufficientSpaceError, match="reserve"):
        cache.ensure_local_archive_entry("m", archive, root=root)
    _assert_nothing_published(root)


_FILL_SCRIPT = textwrap.dedent("""
    import errno, json, resource, shutil, signal, sys
    from collections import namedtuple
    from pathlib import Path
    from bert_hub import cache
    from bert_hub.errors import BertHubError
    archive, root, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    # The checks up front see room (as if another process filled the disk afterwards).
    Usage = namedtuple("Usage", "total used free")
    shutil.disk_usage = lambda p: Usage(1 << 40, 0, 1 << 40)
    if mode == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
    try:
        cache.ensure_local_archive_entry("m", archive, root=root)
        print(json.dumps({"error": None}))
    except BaseException as exc:
        print(json.dumps({"error": type(exc).__name__, "typed": isinstance(exc, BertHubError),
                          "message": str(exc)}))
""")


def _can_mount_tmpfs(tmp_path) -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    return subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                          capture_output=True, timeout=30).returncode == 0


@pytest.mark.parametrize("mode", ["tmpfs", "fsize"])
def test_full_disk_during_extraction_is_a_typed_error_naming_the_path(tmp_path, mode):
    """A real ENOSPC (a 256 KB tmpfs in a private mount namespace) or EFBIG (RLIMIT_FSIZE) while
    extracting: InsufficientSpaceError naming the file, nothing published, nothing left over."""
    if mode == "tmpfs" and not _can_mount_tmpfs(tmp_path):
        pytest.skip("needs root and `unshare -m` to mount a small tmpfs")
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of({**google_files(), "padding.bin": os.urandom(400_000)}))
    root = tmp_path / "cache"
    root.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(_FILL_SCRIPT)
    command = [sys.executable, str(script), str(archive), str(root), mode]
    if mode == "tmpfs":
        command = ["unshare", "-m", "sh", "-c",
                   f"mount -t tmpfs -o size=256k tmpfs {root} && exec \"$@\"", "sh", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] == "InsufficientSpaceError" and result["typed"], result
    assert str(root) in result["message"] and ".extract" in result["message"]
    if mode == "fsize":
        _assert_nothing_published(root)


# --- manifests the cache did not write, and the cache's own names in archives ---------------


def test_archive_member_named_like_the_manifest_is_left_out(tmp_path, caplog):
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of({**google_files(), cache.MANIFEST_NAME: b'{"files": {}}',
                                ".model.safetensors." + "0" * 32 + ".tmp": b"junk"}))
    root = tmp_path / "cache"
    folder = cache.ensure_local_archive_entry("m", archive, root=root)
    assert "names the cache keeps for itself" in caplog.text
    assert sorted(cache.read_manifest(folder)["files"]) == sorted(google_files())
    created = cache.read_manifest(folder)["created"]
    caplog.clear()
    assert cache.ensure_local_archive_entry("m", archive, root=root) == folder
    assert cache.read_manifest(folder)["created"] == created      # a hit, not "damaged"
    assert "damaged" not in caplog.text
    assert cache.verify_entry(cache.find_entry(root, "m")) == []


DAMAGED_MANIFESTS = {
    "not JSON": b"{not json",
    "a list": b"[]",
    "files is a list": b'{"files": []}',
    "record without a size": b'{"files": {"vocab.txt": {"sha256": "00"}}}',
    "size as text": b'{"files": {"vocab.txt": {"size": "12", "sha256": "00"}}}',
    "path in a file name": b'{"files": {"../../x": {"size": 1, "sha256": "00"}}}',
    "deep nesting": b"[" * 200_000 + b"]" * 200_000,
    "not UTF-8": b"\xff\xfe\x00\x01",
    "empty": b"",
    "a folder": None,
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_MANIFESTS))
def test_damaged_manifest_breaks_no_command(tmp_path, capsys, damage):
    root = tmp_path / "cache"
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of(google_files()))
    folder = cache.ensure_local_archive_entry("m", archive, root=root)
    good = cache.ensure_local_archive_entry("good", archive, root=root)
    manifest = folder / cache.MANIFEST_NAME
    manifest.unlink()
    if DAMAGED_MANIFESTS[damage] is None:
        manifest.mkdir()
    else:
        manifest.write_bytes(DAMAGED_MANIFESTS[damage])
    args = ["--cache-dir", str(root)]
    (entry,) = [e for e in cache.list_entries(root) if e.name == "m"]
    assert entry.problem
    assert cache.cached_entry(root, "m") is None                      # never served
    assert cli.main(["cache", "ls", *args]) == 0
    out = capsys.readouterr()
    assert "DAMAGED" in out.out and "good" in out.out and "cache rm m" in out.err
    assert cli.main(["cache", "verify", *args]) == 1
    assert "m: CORRUPT" in capsys.readouterr().out
    assert cli.main(["list", *args]) == 0
    assert cli.main(["cache", "rm", "m", *args]) == 0
    assert not folder.exists() and good.exists()
    # A damaged entry is replaced on the next load.
    folder = cache.ensure_local_archive_entry("m", archive, root=root)
    assert cache.verify_entry(cache.find_entry(root, "m")) == []


@pytest.mark.parametrize("record", [b"{oops", b"[1]", b'{"sha256": 1}', None])
def test_damaged_single_file_record_breaks_no_command(tmp_path, record):
    source = tmp_path / "vocab.txt"
    source.write_text("[PAD]\n")
    root = tmp_path / "cache"
    target = cache.ensure_file(source.as_uri(), root=root)
    meta = target.with_name(target.name + ".json")
    meta.unlink()
    meta.mkdir() if record is None else meta.write_bytes(record)
    (entry,) = cache.list_entries(root)
    assert entry.problem and cache.verify_entry(entry) == [entry.problem]
    cache.remove_entry(root, entry.name)
    assert cache.list_entries(root) == []


def test_prune_removes_damaged_entries_temp_files_and_stale_locks(tmp_path):
    root = tmp_path / "cache"
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of(google_files()))
    folder = cache.ensure_local_archive_entry("m", archive, root=root)
    damaged = cache.ensure_local_archive_entry("d", archive, root=root)
    (damaged / cache.MANIFEST_NAME).write_text("[]")
    killed = cache.temp_path(folder / "model.safetensors")     # a conversion killed midway
    killed.write_bytes(b"half")
    # what an earlier version's killed conversion left: a writer's temp name on a temp name
    legacy = folder / f".model.safetensors.{'2' * 32}.tmp.{'3' * 12}.tmp"
    legacy.write_bytes(b"half")
    half_manifest = folder / f"{cache.MANIFEST_NAME}.{'1' * 32}.tmp"
    half_manifest.write_text("{")
    with cache.entry_lock(root, "gone"):      # an entry removed long ago left its lock file
        pass
    assert (root / ".locks" / "m.lock").exists()      # made when "m" was filled
    removed = cache.prune(root)
    assert {killed, legacy, half_manifest, damaged, root / ".locks" / "gone.lock",
            root / ".locks" / "m.lock"} <= set(removed)
    assert not killed.exists() and not legacy.exists() and not damaged.exists()
    assert cache.verify_entry(cache.find_entry(root, "m")) == []
    assert list((root / ".locks").iterdir()) == []     # no process holds any of them
    assert cache.ensure_local_archive_entry("m", archive, root=root) == folder   # locks again


def test_rm_of_an_entry_another_process_removed_is_a_typed_error(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of(google_files()))
    folder = cache.ensure_local_archive_entry("m", archive, root=root)
    stale = cache.find_entry(root, "m")
    shutil.rmtree(folder)
    monkeypatch.setattr(cache, "find_entry", lambda r, n: stale)
    with pytest.raises(EntryNotFoundError, match="removed by another process"):
        cache.remove_entry(root, "m")


def test_unwritable_cache_is_a_typed_error(tmp_path, monkeypatch):
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_of(google_files()))
    real_open = open

    def read_only_open(path, mode="r", *args, **kwargs):
        if "x" in mode:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)
    monkeypatch.setattr(archives, "open", read_only_open, raising=False)
    with pytest.raises(CacheNotWritableError, match="BERT_HUB_CACHE"):
        cache.ensure_local_archive_entry("m", archive, root=tmp_path / "cache")
