"""bert_hub.download against a real HTTP server on 127.0.0.1 that injects faults.

Each fault ends in success or in the promised error, and never leaves a complete-looking file
at `dest` when it fails (a resumable prefix keeps its sidecar; a verification failure deletes
both)."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bert_hub import env, http_fetcher
from bert_hub.download import CHUNK_SIZE, fetch, head
from bert_hub.errors import (
    DownloadError,
    EntryNotFoundError,
    IntegrityError,
    UnsupportedURLError,
)
from http_server import Fault, FileServer, file_server  # noqa: F401,F811  (a fixture)

PATH = "/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip"
SMALL = random.Random(0).randbytes(300_000)
BIG = random.Random(1).randbytes(CHUNK_SIZE + 1_000_003)  # more than one read block
FAST = dict(timeout=(2, 2), backoff=0.01)                 # short waits keep the suite fast


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".meta.json")


@pytest.fixture
def server():
    with FileServer({PATH: SMALL, "/big.zip": BIG}) as srv:
        yield srv


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "cache" / ".tmp" / "entry.part"


def assert_nothing_left(dest: Path):
    assert not dest.exists() and not sidecar(dest).exists()


def test_download_hashes_while_receiving_and_leaves_file_at_dest(server, dest):
    result = fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), expected_size=len(SMALL), **FAST)
    assert dest.read_bytes() == SMALL
    assert (result.path, result.size, result.sha256) == (dest, len(SMALL), sha(SMALL))
    assert result.etag == f'"{hashlib.md5(SMALL).hexdigest()}"'
    assert not sidecar(dest).exists()
    (request,) = server.requests
    assert request.user_agent.startswith("bert_hub/") and request.range is None


def test_head_reports_size_etag_and_checksums(server):
    info = head(server.url(PATH))
    assert info.size == len(SMALL) and info.etag.strip('"') == hashlib.md5(SMALL).hexdigest()
    assert set(info.checksums) == {"crc32c", "md5"} and info.accept_ranges
    assert server.count(PATH, "GET") == 0 and server.count(PATH, "HEAD") == 1


def test_truncated_body_is_resumed_with_a_range_request(server, dest):
    server.add_faults(PATH, Fault("truncate", at=100_000))
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert dest.read_bytes() == SMALL
    assert server.ranges(PATH) == [None, "bytes=100000-"]
    assert server.requests[1].if_range == f'"{hashlib.md5(SMALL).hexdigest()}"'


def test_connection_reset_mid_stream_resumes_after_the_last_whole_block(server, dest):
    server.add_faults("/big.zip", Fault("reset", at=CHUNK_SIZE + 500_000, pause=0.5))
    fetch(server.url("/big.zip"), dest, expected_sha256=sha(BIG), **FAST)
    assert dest.read_bytes() == BIG
    assert server.ranges("/big.zip") == [None, f"bytes={CHUNK_SIZE}-"]


def test_500_then_200_retries(server, dest):
    server.add_faults(PATH, Fault("status", status=500))
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert [r.status for r in server.requests] == [500, 200]


def test_429_waits_for_retry_after(server, dest):
    server.add_faults(PATH, Fault("status", status=429, retry_after="1"))
    start = time.monotonic()
    fetch(server.url(PATH), dest, **FAST)
    assert time.monotonic() - start >= 0.9  # backoff alone would have waited 0.01 s
    assert [r.status for r in server.requests] == [429, 200]
    assert dest.read_bytes() == SMALL


def test_retry_after_is_capped_and_read_as_date():
    assert http_fetcher.retry_after("5") == 5.0
    assert http_fetcher.retry_after("100000") == http_fetcher.RETRY_AFTER_CAP
    assert http_fetcher.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert http_fetcher.retry_after("soon") is None


def test_retries_are_bounded(server, dest):
    server.always(PATH, Fault("status", status=503))
    with pytest.raises(DownloadError, match=r"after 3 attempts: HTTP 503"):
        fetch(server.url(PATH), dest, max_retries=2, **FAST)
    assert server.count(PATH) == 3
    assert not dest.exists() or dest.stat().st_size == 0


@pytest.mark.parametrize("status, words", [(404, "was not found"), (403, "was denied")])
def test_404_and_403_fail_at_once_with_the_fix(server, dest, status, words):
    server.add_faults(PATH, Fault("status", status=status))
    with pytest.raises(DownloadError) as info:
        fetch(server.url(PATH), dest, **FAST)
    assert words in str(info.value) and "BERT_HUB_ENDPOINT" in str(info.value)
    assert server.url(PATH) in str(info.value)
    assert server.count(PATH) == 1
    assert_nothing_left(dest)


def test_missing_object_is_404(server, dest):
    with pytest.raises(DownloadError, match="was not found.*model name"):
        fetch(server.url("/bert_models/nope.zip"), dest, **FAST)
    with pytest.raises(DownloadError, match="was not found"):
        head(server.url("/bert_models/nope.zip"))


def test_200_in_answer_to_a_range_restarts_from_zero(server, dest):
    server.add_faults(PATH, Fault("truncate", at=100_000), Fault("ignore_range"))
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert dest.read_bytes() == SMALL
    assert server.ranges(PATH) == [None, "bytes=100000-"]
    assert [r.status for r in server.requests] == [200, 200]


def test_206_with_a_wrong_content_range_is_not_appended(server, dest):
    server.add_faults(PATH, Fault("truncate", at=100_000), Fault("bad_range"))
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert dest.read_bytes() == SMALL
    assert server.ranges(PATH) == [None, "bytes=100000-", None]


def test_stalled_stream_hits_the_read_timeout_and_recovers(server, dest):
    server.add_faults(PATH, Fault("stall", at=100_000, seconds=20))
    start = time.monotonic()
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), timeout=(2, 0.3), backoff=0.01)
    assert time.monotonic() - start < 5
    assert dest.read_bytes() == SMALL and server.count(PATH) == 2


def test_stall_that_never_ends_is_a_download_error(server, dest):
    server.always(PATH, Fault("stall", at=10, seconds=20))
    with pytest.raises(DownloadError, match="after 2 attempts.*[Rr]ead timed out"):
        fetch(server.url(PATH), dest, timeout=(2, 0.2), max_retries=1, backoff=0.01)
    assert not dest.exists() or dest.stat().st_size < len(SMALL)


def test_content_length_shorter_than_stored_object_is_resumed(server, dest):
    # Content-Length says 1000 bytes fewer than x-goog-stored-content-length: a short answer.
    server.add_faults(PATH, Fault("wrong_length", length=len(SMALL) - 1000))
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert dest.read_bytes() == SMALL
    assert server.ranges(PATH) == [None, f"bytes={len(SMALL) - 1000}-"]


def test_content_length_longer_than_body_never_looks_complete(dest):
    with FileServer({PATH: SMALL}, goog_headers=False) as server:
        server.always(PATH, Fault("wrong_length", length=len(SMALL) + 1000))
        with pytest.raises(DownloadError, match="after 3 attempts"):
            fetch(server.url(PATH), dest, max_retries=2, **FAST)
    # What is left is a prefix still marked as partial (its sidecar), never a finished download.
    assert not dest.exists() or sidecar(dest).exists()


def test_wrong_x_goog_hash_is_an_integrity_error_after_one_retry(server, dest):
    server.always(PATH, Fault("bad_hash"))
    with pytest.raises(IntegrityError, match="crc32c .* but the server states AAAAAA=="):
        fetch(server.url(PATH), dest, **FAST)
    assert server.count(PATH) == 2
    assert_nothing_left(dest)


def test_corrupted_body_is_caught_by_crc32c_and_downloaded_again(server, dest):
    server.add_faults(PATH, Fault("corrupt", at=12_345))
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert dest.read_bytes() == SMALL and server.count(PATH) == 2


def test_etag_md5_is_checked_when_no_x_goog_hash(dest):
    with FileServer({PATH: SMALL}, goog_hash=False) as server:
        server.always(PATH, Fault("corrupt", at=777))
        with pytest.raises(IntegrityError, match="md5"):
            fetch(server.url(PATH), dest, **FAST)
        assert_nothing_left(dest)
        server.always(PATH, None)
        assert fetch(server.url(PATH), dest, **FAST).sha256 == sha(SMALL)


def test_opaque_etag_of_a_plain_server_is_not_taken_for_md5(dest):
    with FileServer({PATH: SMALL}, goog_headers=False) as server:
        server.add_faults(PATH, Fault("corrupt", at=777))
        result = fetch(server.url(PATH), dest, **FAST)  # nothing to check against but the length
    assert result.sha256 != sha(SMALL) and result.size == len(SMALL)


def test_expected_sha256_mismatch_deletes_and_raises(server, dest):
    with pytest.raises(IntegrityError, match=f"SHA-256 {sha(SMALL)} does not match the expected 0{{63}}"):
        fetch(server.url(PATH), dest, expected_sha256="0" * 64, **FAST)
    assert server.count(PATH) == 2  # one fresh retry, then the error
    assert_nothing_left(dest)


def test_expected_size_mismatch_fails_before_the_body(server, dest):
    with pytest.raises(IntegrityError, match=f"is {len(SMALL)} bytes, but 5 were expected"):
        fetch(server.url(PATH), dest, expected_size=5, max_retries=0, **FAST)
    assert_nothing_left(dest)


def test_redirect_is_followed(server, dest):
    server.redirect("/old/location.zip", PATH)
    result = fetch(server.url("/old/location.zip"), dest, expected_sha256=sha(SMALL), **FAST)
    assert result.url == server.url(PATH)
    assert [(r.path, r.status) for r in server.requests] == [("/old/location.zip", 302), (PATH, 200)]


def test_prefix_from_an_earlier_call_is_resumed(server, dest):
    server.always(PATH, Fault("truncate", at=123_456))
    with pytest.raises(DownloadError, match="kept in .* and will be resumed"):
        fetch(server.url(PATH), dest, max_retries=0, **FAST)
    assert dest.stat().st_size == 123_456 and sidecar(dest).exists()
    server.always(PATH, None)
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert dest.read_bytes() == SMALL and server.ranges(PATH) == [None, "bytes=123456-"]


def test_prefix_of_an_object_that_changed_is_not_appended_to(server, dest):
    server.always(PATH, Fault("truncate", at=100_000))
    with pytest.raises(DownloadError):
        fetch(server.url(PATH), dest, max_retries=0, **FAST)
    new = SMALL[::-1]
    server.put(PATH, new)  # new bytes, new ETag: If-Range no longer matches, the server sends 200
    server.always(PATH, None)
    fetch(server.url(PATH), dest, expected_sha256=sha(new), **FAST)
    assert dest.read_bytes() == new
    assert [r.status for r in server.requests] == [200, 200] and server.ranges(PATH)[1] == "bytes=100000-"


def test_a_prefix_without_sidecar_is_not_trusted(server, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"garbage")
    fetch(server.url(PATH), dest, expected_sha256=sha(SMALL), **FAST)
    assert dest.read_bytes() == SMALL and server.ranges(PATH) == [None]


def test_complete_prefix_left_unverified_is_verified_without_refetching(server, dest):
    server.always(PATH, Fault("truncate", at=len(SMALL) - 1))
    with pytest.raises(DownloadError):
        fetch(server.url(PATH), dest, max_retries=0, **FAST)
    with open(dest, "ab") as f:  # as if the process died right after the last byte arrived
        f.write(SMALL[-1:])
    server.always(PATH, None)
    result = fetch(server.url(PATH), dest, **FAST)
    assert result.sha256 == sha(SMALL)
    assert [r.status for r in server.requests] == [200, 416]


def test_killed_downloader_is_resumed_by_the_next_process(server, dest):
    """SIGKILL a downloading process mid-stream; the next fetch resumes with Range and verifies."""
    server.add_faults("/big.zip", Fault("stall", at=CHUNK_SIZE + 200_000, seconds=30))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from bert_hub.download import fetch
        fetch({server.url('/big.zip')!r}, {str(dest)!r}, timeout=(5, 60), progress=False)
    """)])
    try:
        deadline = time.monotonic() + 30
        while (not dest.exists() or dest.stat().st_size < CHUNK_SIZE) and time.monotonic() < deadline:
            assert child.poll() is None, "the downloader exited before it could be killed"
            time.sleep(0.02)
        assert dest.stat().st_size == CHUNK_SIZE, "the downloader never got mid-stream"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    result = fetch(server.url("/big.zip"), dest, expected_sha256=sha(BIG), **FAST)
    assert result.sha256 == sha(BIG) and dest.read_bytes() == BIG
    assert server.ranges("/big.zip") == [None, f"bytes={CHUNK_SIZE}-"]


def test_proxy_is_taken_from_the_environment(server, dest, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", server.endpoint)
    monkeypatch.setenv("http_proxy", server.endpoint)
    url = "http://mirror.example.com" + PATH   # never contacted: only the proxy answers
    assert fetch(url, dest, expected_sha256=sha(SMALL), **FAST).sha256 == sha(SMALL)
    assert server.requests[0].proxied_host == "mirror.example.com"


def test_file_url_and_plain_path_are_copied_and_verified(tmp_path, dest):
    src = tmp_path / "src dir" / "model.zip"
    src.parent.mkdir()
    src.write_bytes(SMALL)
    for url in (src.as_uri(), str(src)):
        result = fetch(url, dest, expected_sha256=sha(SMALL))
        assert result.sha256 == sha(SMALL) and dest.read_bytes() == SMALL and not sidecar(dest).exists()
        assert head(url).size == len(SMALL)
    with pytest.raises(IntegrityError, match="SHA-256"):
        fetch(str(src), dest, expected_sha256="f" * 64)
    assert_nothing_left(dest)
    with pytest.raises(EntryNotFoundError, match="no such file"):
        fetch(str(tmp_path / "missing.zip"), dest)


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/x.zip", "'ftp://' is not supported"),
    ("hf://bert/x.zip", "'hf://' is not supported"),
    ("package://bert_hub/data/x.zip", "resolve_url"),
    ("file://otherhost/x.zip", "must name a local file"),
    ("s3://bucket-only", "expected s3://<bucket>/<key>"),
])
def test_unsupported_urls_are_named(url, words, dest):
    with pytest.raises(UnsupportedURLError) as info:
        fetch(url, dest)
    assert url in str(info.value) and words in str(info.value)


def test_progress_follows_the_environment_and_the_terminal(monkeypatch, server, dest, capsys):
    monkeypatch.delenv("BERT_HUB_DISABLE_PROGRESS")
    monkeypatch.setattr(env, "_stderr_is_tty", lambda: True)
    assert env.progress_enabled(None)
    monkeypatch.setenv("BERT_HUB_DISABLE_PROGRESS", "1")
    assert not env.progress_enabled(None)
    assert env.progress_enabled(True)
    monkeypatch.delenv("BERT_HUB_DISABLE_PROGRESS")
    monkeypatch.setattr(env, "_stderr_is_tty", lambda: False)
    assert not env.progress_enabled(None)  # a script writing to a file or a pipe
    fetch(server.url(PATH), dest, progress=True, desc="bert-demo", **FAST)
    assert "bert-demo" in capsys.readouterr().err


@pytest.mark.parametrize("value, shown", [("yes", False), ("TRUE", False), ("on", False),
                                          ("0", True), ("off", True), ("", True)])
def test_yes_no_variables_read_one_way(monkeypatch, value, shown):
    """BERT_HUB_DISABLE_PROGRESS and BERT_HUB_OFFLINE share one reading of yes/no."""
    from bert_hub import cache
    monkeypatch.setattr(env, "_stderr_is_tty", lambda: True)
    monkeypatch.setenv("BERT_HUB_DISABLE_PROGRESS", value)
    monkeypatch.setenv("BERT_HUB_OFFLINE", value)
    assert env.progress_enabled(None) is shown
    assert cache.is_offline() is not shown


def test_yes_no_variable_with_another_value_is_a_clear_error(monkeypatch):
    from bert_hub import cache
    from bert_hub.errors import InvalidInputError
    monkeypatch.setenv("BERT_HUB_DISABLE_PROGRESS", "maybe")
    with pytest.raises(InvalidInputError, match="BERT_HUB_DISABLE_PROGRESS='maybe' is not a yes/no"):
        env.progress_enabled(None)
    monkeypatch.setenv("BERT_HUB_OFFLINE", "sometimes")
    with pytest.raises(InvalidInputError, match="BERT_HUB_OFFLINE='sometimes'"):
        cache.is_offline()


def test_disk_full_is_a_clear_error(server, tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full to simulate a full disk")
    dest = tmp_path / "full.part"
    os.symlink("/dev/full", dest)
    with pytest.raises(OSError, match="is full. Free some space"):
        fetch(server.url(PATH), dest, **FAST)


def test_file_server_fixture_serves_what_is_put(file_server, dest):  # noqa: F811
    file_server.put("/x/y.bin", b"abc" * 1000)
    assert fetch(file_server.url("/x/y.bin"), dest, **FAST).sha256 == sha(b"abc" * 1000)
    assert file_server.counts()[("GET", "/x/y.bin")] == 1
