"""Seeded hostile-input campaign against the cache: archives and cache faults.

Each case builds one hostile archive (tests/hostile_archives.py: byte mutations of real zip / tar /
tar.gz archives of a TensorFlow-written Google folder, plus every hostile class of the hardening
issue built explicitly), feeds it to the cache the way users do (a local archive, or a file://
URL, through ``hub.resolve_model``), and checks:

- a failure is a ``BertHubError`` (of the class the case expects, where it expects one), nothing
  is published, nothing is left in ``.tmp`` but a verified download kept after a disk error;
- a success serves what the archive holds (exactly, for valid archives; only bytes of the
  original files, where CRCs protect them), passes ``cache verify``, is a hit the second time
  (not "damaged"), and lists, verifies, prunes and removes cleanly;
- nothing is written outside the case's cache, no link is created;
- two cache-fault classes: a manifest or single-file record damaged in every way we could think
  of (``bert-hub list``, ``cache ls|verify|rm|prune`` and the next load must cope), and a disk
  that fills up mid-extraction (RLIMIT_FSIZE: a real EFBIG from write()).

Cases run in batches in worker processes under RLIMIT_AS (1 GiB: an unbounded allocation is a
MemoryError, reported) and RLIMIT_FSIZE, each case under a wall-clock alarm (a hang is reported).
Every case is reproducible from (seed, index):

    python tests/fuzz/test_fuzz_archives.py replay SEED INDEX [--keep DIR]

The default suite runs a fast slice (300 cases, fixed seed); ``make fuzz`` (pytest -m fuzz) runs
the full campaign (10,000 cases, a fresh seed each run; BERT_HUB_FUZZ_SEED / BERT_HUB_FUZZ_CASES
override both).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import hostile_archives as hostile  # noqa: E402

FAST_CASES = 300
FAST_SEED = 20261201
FULL_CASES = 10_000
BATCH = 1_000
CASE_CPU_SECONDS = 20      # CPU time per case before it counts as a hang (spinning)
CASE_SECONDS = 300         # wall clock per case before it counts as a hang (blocked); the
                           # machine may be busy, so this one is generous
MEMORY_LIMIT = 1 << 30     # RLIMIT_AS of a worker
FILE_LIMIT = 512 << 20     # RLIMIT_FSIZE of a worker


# ----------------------------------------------------------------------------------------------
# Cache-fault classes (they need the cache, so they live here, not in hostile_archives)


def _manifest_damage(rng):
    case = hostile.CLASSES["valid"](rng)
    case.expect, case.note = "ok", "manifest-damage"
    return case


def _disk_full(rng):
    files = dict(hostile.google_files(with_meta=rng.random() < 0.3))
    case = hostile.Case(hostile.zip_of(files) if rng.random() < 0.5 else hostile.tar_of(files),
                        "", "InsufficientSpaceError", files, note="disk-full")
    case.suffix = ".zip" if case.data.startswith(b"PK") else ".tar.gz"
    return case


CLASSES = {**hostile.CLASSES, "manifest-damage": _manifest_damage, "disk-full": _disk_full}
# Case i belongs to SCHEDULE[i % len(SCHEDULE)]: every class in every slice of the campaign, the
# costly ones (10,001 headers to parse, 200 MB bombs to build once per worker) less often.
_WEIGHT = {"many-members": 1, "zip-bomb": 2, "tar-bombs": 3}
SCHEDULE = [name for name in sorted(CLASSES) for _ in range(_WEIGHT.get(name, 4))]
CLASS_NAMES = sorted(CLASSES)

_DAMAGES = [
    b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00garbage", b'{"files": []}',
    b'{"files": {"vocab.txt": 7}}', b'{"files": {"vocab.txt": {"size": "7", "sha256": "x"}}}',
    b'{"files": {"vocab.txt": {"size": -1, "sha256": "x"}}}', b'{"files": {"vocab.txt": {}}}',
    b'{"files": {"../../etc/passwd": {"size": 1, "sha256": "x"}}}',
    b'{"files": {"": {"size": 1, "sha256": "x"}}}', b'{"files": null, "created": "soon"}',
    b"[" * 100_000 + b"]" * 100_000, b'{"source": ["not", "a", "string"], "files": {}}',
]


class _CaseTimeout(BaseException):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class CaseFailure(AssertionError):
    pass


# ----------------------------------------------------------------------------------------------
# One case


def run_case(seed: int, index: int, base: Path) -> dict:
    """Build case `index` of campaign `seed` under `base` and check everything; the result is
    a small dict (failure: its 'fail' key says why)."""
    name = SCHEDULE[index % len(SCHEDULE)]
    rng = random.Random(f"{seed}:{index}")
    started = time.monotonic()
    result = {"i": index, "cls": name}
    work = base / f"case-{index}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        signal.setitimer(signal.ITIMER_PROF, CASE_CPU_SECONDS)
        case = CLASSES[name](rng)
        result["note"] = case.note
        result["outcome"] = _exercise(case, rng, work)
    except _CaseTimeout as exc:
        result["fail"] = f"hang: {exc.what}"
    except CaseFailure as exc:
        result["fail"] = str(exc)
    except MemoryError:
        result["fail"] = "unbounded allocation: MemoryError under RLIMIT_AS"
    except Exception as exc:   # raised by a check after the case: still untyped, still reported
        result["fail"] = f"untyped error {type(exc).__name__}: {exc}\n{_short_trace()}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_PROF, 0)
        _restore_file_limit()
    result["s"] = round(time.monotonic() - started, 3)
    shutil.rmtree(work, ignore_errors=True)
    return result


def _exercise(case, rng, work: Path) -> str:
    from bert_hub import cache, hub
    from bert_hub.errors import BertHubError

    archive = work / f"archive{case.suffix}"
    archive.write_bytes(case.data)
    root = work / "cache"
    via_url = case.note not in ("disk-full",) and rng.random() < 0.25
    source = archive.as_uri() if via_url else str(archive)
    if case.note == "disk-full":   # the next write past `limit` bytes fails with EFBIG
        limit = rng.randint(1, max(len(d) for d in case.originals.values()) - 1)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        files = hub.resolve_model(source, cache_dir=root, need_weights=False)
    except BertHubError as exc:
        outcome = type(exc).__name__
        _check_failure(case, exc, root, via_url)
    except Exception as exc:
        raise CaseFailure(f"untyped error {type(exc).__name__}: {exc}\n{_short_trace()}") from None
    else:
        outcome = "ok"
        _check_success(case, files.folder, source, root)
    finally:
        _restore_file_limit()
    if outcome == "ok" and case.note == "manifest-damage":
        _damage_and_recover(rng, source, archive, root, case)
    _check_contained(work, archive, root)
    try:
        cache.prune(root)
        cache.list_entries(root)
    except Exception as exc:
        raise CaseFailure(f"prune / list after the case: {type(exc).__name__}: {exc}\n{_short_trace()}") from None
    return outcome


def _check_failure(case, exc, root: Path, via_url: bool) -> None:
    from bert_hub import cache
    from bert_hub.errors import CacheNotWritableError, InsufficientSpaceError

    if case.expect == "ok":
        raise CaseFailure(f"a valid archive was refused: {type(exc).__name__}: {exc}")
    if case.expect not in ("any", "error") and case.expect not in {c.__name__ for c in type(exc).__mro__}:
        raise CaseFailure(f"expected {case.expect}, got {type(exc).__name__}: {exc}")
    published = [e.name for e in cache.list_entries(root)]
    if published:
        raise CaseFailure(f"failed ({type(exc).__name__}: {exc}) but published {published}")
    left = sorted(p.name for p in (root / ".tmp").iterdir()) if (root / ".tmp").is_dir() else []
    kept = [n for n in left if re.fullmatch(r".+\.[0-9a-f]{64}\.verified", n)]
    if via_url and isinstance(exc, (InsufficientSpaceError, CacheNotWritableError)):
        left = [n for n in left if n not in kept]   # the verified download is kept for the retry
    if left:
        raise CaseFailure(f"failed ({type(exc).__name__}) and left {left} in .tmp")


def _check_success(case, folder: Path, source: str, root: Path) -> None:
    from bert_hub import cache, hub

    if case.expect not in ("ok", "any"):
        raise CaseFailure(f"expected {case.expect}, but the archive was accepted and served")
    if folder.parent != cache.models_dir(root):
        raise CaseFailure(f"served {folder}, which is not a cache entry")
    served = {p.name: p.read_bytes() for p in folder.iterdir()
              if p.is_file() and p.name != cache.MANIFEST_NAME}
    if case.exact and served != case.originals:
        raise CaseFailure(f"served {sorted(served)} differing from the archive's {sorted(case.originals)}")
    if case.crc_protected:
        known = set(case.originals.values())
        corrupt = sorted(name for name, data in served.items() if data not in known)
        if corrupt:
            raise CaseFailure(f"served corrupt bytes in {corrupt} (the archive's CRCs should catch it)")
    entry = cache.find_entry(root, folder.name)
    problems = cache.verify_entry(entry)
    if problems or entry.problem:
        raise CaseFailure(f"served, but `cache verify` says {problems or entry.problem}")
    created = cache.read_manifest(folder)["created"]
    again = hub.resolve_model(source, cache_dir=root, need_weights=False)
    if again.folder != folder or cache.read_manifest(folder)["created"] != created:
        raise CaseFailure("the entry was extracted again on the second load (seen as damaged)")


def _restore_file_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))


def _damage_and_recover(rng, source: str, archive: Path, root: Path, case) -> None:
    """Damage a published manifest (or a single file's record); every cache command must cope
    and the next load must fetch the entry again and serve it intact."""
    from bert_hub import cache, cli, hub

    (entry,) = cache.list_entries(root)
    if rng.random() < 0.25:   # a single cached file (cached_path) and its record
        target = cache.ensure_file(archive.as_uri(), root=root)
        record = target.with_name(target.name + ".json")
    else:
        record = entry.path / cache.MANIFEST_NAME
    damage = rng.choice(_DAMAGES + ["mutate", "folder"])
    if damage == "folder":
        record.unlink()
        record.mkdir()
    elif damage == "mutate":
        record.write_bytes(hostile.mutate(record.read_bytes(), rng))
    else:
        record.write_bytes(damage)
    label = damage if isinstance(damage, str) else damage[:40]
    try:
        for name in cache.list_entries(root):
            cache.verify_entry(name)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            codes = [cli.main(["cache", "ls", "--cache-dir", str(root)]),
                     cli.main(["cache", "verify", "--cache-dir", str(root)]),
                     cli.main(["list", "--cache-dir", str(root)])]
        if codes[0] != 0 or codes[2] != 0 or codes[1] not in (0, 1):
            raise CaseFailure(f"damage {label!r}: exit codes {codes}: {sink.getvalue()[-400:]}")
        files = hub.resolve_model(source, cache_dir=root, need_weights=False)
        served = {p.name: p.read_bytes() for p in files.folder.iterdir()
                  if p.is_file() and p.name != cache.MANIFEST_NAME}
        if served != case.originals:
            raise CaseFailure(f"damage {label!r}: the next load served {sorted(served)}")
        for listed in cache.list_entries(root):
            cache.remove_entry(root, listed.name)
        if cache.list_entries(root):
            raise CaseFailure(f"damage {label!r}: `cache rm` left {cache.list_entries(root)}")
    except CaseFailure:
        raise
    except Exception as exc:
        raise CaseFailure(f"damage {label!r}: {type(exc).__name__}: {exc}\n{_short_trace()}") from None


def _check_contained(work: Path, archive: Path, root: Path) -> None:
    outside = sorted(p.name for p in work.iterdir() if p not in (archive, root))
    if outside:
        raise CaseFailure(f"wrote outside the cache: {outside}")
    for base, dirs, names in os.walk(root):
        for name in dirs + names:
            if os.path.islink(os.path.join(base, name)):
                raise CaseFailure(f"created a link: {os.path.join(base, name)}")


def _short_trace() -> str:
    return "".join(traceback.format_exc().splitlines(keepends=True)[-12:])


# ----------------------------------------------------------------------------------------------
# Workers and the campaign


def _on_alarm(signum, frame):
    if signum == signal.SIGPROF:
        raise _CaseTimeout(f"used {CASE_CPU_SECONDS} s of CPU")
    raise _CaseTimeout(f"still running after {CASE_SECONDS} s")


def _install_alarms() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the file-size limit: EFBIG
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGPROF, _on_alarm)


def worker(seed: int, start: int, count: int, base: Path) -> None:
    """Run cases start..start+count-1 under resource limits; one JSON line per event on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    _install_alarms()
    import logging
    logging.disable(logging.CRITICAL)
    out = sys.stdout
    for index in range(start, start + count):
        print(json.dumps({"start": index}), file=out, flush=True)
        print(json.dumps(run_case(seed, index, base)), file=out, flush=True)


def campaign(seed: int, count: int, base: Path, parallel: int = 1):
    """Run `count` cases in worker batches; returns (results, failures). A worker that dies
    (a crash, or killed after a hang the alarm could not interrupt) fails its in-flight case and
    the batch goes on in a new worker."""
    batches = [(s, min(BATCH, count - s)) for s in range(0, count, BATCH)]
    results, failures, running = [], [], []
    env = {**os.environ, "BERT_HUB_DISABLE_PROGRESS": "1", "PYTHONHASHSEED": "0"}
    env.pop("BERT_HUB_OFFLINE", None)

    def launch(start, n):
        cmd = [sys.executable, __file__, "worker", str(seed), str(start), str(n), str(base)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        return proc, start, n, time.monotonic()

    def drain(proc, start, n, began):
        try:
            out, err = proc.communicate(timeout=n * CASE_CPU_SECONDS + CASE_SECONDS + 600)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done, in_flight = set(), None
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if "start" in event:
                in_flight = event["start"]
                continue
            done.add(event["i"])
            results.append(event)
            if "fail" in event:
                failures.append(event)
        if len(done) < n:
            if in_flight is not None and in_flight not in done:
                failures.append({"i": in_flight, "cls": SCHEDULE[in_flight % len(SCHEDULE)],
                                 "fail": f"worker died (exit {proc.returncode}): {err[-600:]}"})
                done.add(in_flight)
            rest = [i for i in range(start, start + n) if i not in done]
            if rest:
                return rest[0], start + n - rest[0]
        return None

    pending = list(batches)
    while pending or running:
        while pending and len(running) < parallel:
            running.append(launch(*pending.pop(0)))
        proc, start, n, began = running.pop(0)
        again = drain(proc, start, n, began)
        if again is not None:
            pending.insert(0, again)
    return results, failures


def report(seed: int, results, failures) -> str:
    by_class = {}
    for r in results:
        by_class.setdefault(r["cls"], {}).setdefault(r.get("outcome", "FAIL"), 0)
        by_class[r["cls"]][r.get("outcome", "FAIL")] += 1
    slowest = max(results, key=lambda r: r.get("s", 0), default={})
    lines = [f"archive campaign: seed {seed}, {len(results)} cases, {len(failures)} failures; "
             f"slowest case {slowest.get('i')} ({slowest.get('cls')}) {slowest.get('s')} s"]
    lines += [f"  {cls:<16} {json.dumps(outcomes, sort_keys=True)}" for cls, outcomes in sorted(by_class.items())]
    first_of_class = {f["cls"]: f for f in reversed(failures)}
    shown = list(first_of_class.values()) + [f for f in failures if f not in first_of_class.values()]
    for f in shown[:max(10, len(first_of_class))]:
        lines.append(f"FAILED case {f['i']} ({f['cls']}, {f.get('note', '')}): {f['fail']}\n"
                     f"  replay: python {Path(__file__).relative_to(TESTS.parent)} replay {seed} {f['i']}")
    return "\n".join(lines)


def replay(seed: int, index: int, keep: Path = None) -> None:
    """Run one case in this process, with the full traceback of anything unexpected."""
    name = SCHEDULE[index % len(SCHEDULE)]
    case = CLASSES[name](random.Random(f"{seed}:{index}"))
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"case-{index}{case.suffix}").write_bytes(case.data)
    _install_alarms()
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"bert-hub-replay-{os.getpid()}"
    print(json.dumps(run_case(seed, index, base), indent=1))


# ----------------------------------------------------------------------------------------------
# Tests (pytest imports this module; the workers run it as a script)


def _seed(default: int) -> int:
    return int(os.environ.get("BERT_HUB_FUZZ_SEED", default))


def test_fast_slice(tmp_path):
    """A few hundred cases, every class, in the default suite."""
    seed = _seed(FAST_SEED)
    results, failures = campaign(seed, FAST_CASES, tmp_path)
    summary = report(seed, results, failures)
    print(summary)
    assert not failures, summary
    assert {r["cls"] for r in results} == set(CLASS_NAMES), summary


try:   # pytest is not needed by the workers
    import pytest
except ImportError:   # pragma: no cover
    pytest = None

if pytest is not None:
    @pytest.mark.fuzz
    @pytest.mark.slow
    @pytest.mark.timeout(4 * 3600)   # 10,000 cases take minutes on an idle machine
    def test_full_campaign(tmp_path, request):
        """>= 10,000 cases under `make fuzz` (pytest -m fuzz); skipped in the default run."""
        expression = request.config.getoption("markexpr") or ""
        if not re.search(r"(?<!not )\bfuzz\b", expression) and "BERT_HUB_FUZZ_CASES" not in os.environ:
            pytest.skip("the full campaign runs under `make fuzz` (pytest -m fuzz)")
        seed = _seed(random.SystemRandom().randrange(1 << 31))
        count = int(os.environ.get("BERT_HUB_FUZZ_CASES", FULL_CASES))
        print(f"archive campaign: seed {seed} (replay with BERT_HUB_FUZZ_SEED={seed})", flush=True)
        results, failures = campaign(seed, count, tmp_path, parallel=2)
        summary = report(seed, results, failures)
        print(summary)
        assert not failures, summary
        assert len(results) >= count and {r["cls"] for r in results} == set(CLASS_NAMES), summary


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    elif command == "replay":
        keep = Path(sys.argv[sys.argv.index("--keep") + 1]) if "--keep" in sys.argv else None
        replay(int(sys.argv[2]), int(sys.argv[3]), keep)
    else:
        sys.exit(f"usage: {sys.argv[0]} worker SEED START COUNT DIR | replay SEED INDEX [--keep DIR]")
