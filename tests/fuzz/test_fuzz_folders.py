"""Seeded campaigns against model folders and the cache entries they live in:

- hostile folders (``folder_cases.py``, ``folder_mutations.py``): every JSON file a loader
  reads made hostile, and weights whose shapes disagree with the config; each loader must
  succeed or raise a ``BertHubError`` in bounded time (a shape error names the tensor, both
  shapes and the file);
- writers killed midway (a cache entry's conversion, ``bert-hub convert``): what they leave is
  one temp file of the one known name, which ``cache prune`` removes with every lock file no
  process holds, and the entry still verifies and loads;
- ``cache rm`` racing a tokenizer load, at every point between resolving the entry and reading
  its vocabulary: the load is resolved again (a bounded number of times) or fails typed.

Every case is reproducible from (seed, index). The default suite runs a slice with a fixed seed;
``make fuzz`` (``pytest -m fuzz``) runs the full campaigns with a fresh seed
(``BERT_HUB_FUZZ_SEED`` replays one).
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import folder_mutations  # noqa: E402
import test_fuzz_tf  # noqa: E402
from mirror import TF_TINY, TOP, google_zip  # noqa: E402

SLICE_SEED = 2026_12_08
SLICE = {"folders": 120, "killed": 3, "races": 24}
FULL = {"folders": 4000, "killed": 60, "races": 600}
TEMP_NAME = re.compile(r"^\.[\w.-]+\.[0-9a-f]{32}\.tmp$")       # the one temp name (filenames.py)


def _plan(request, campaign: str):
    """(seed, cases): the slice by default; the full campaign under `make fuzz` (-m fuzz)."""
    expression = request.config.getoption("markexpr") or ""
    if re.search(r"(?<!not )\bfuzz\b", expression):
        seed = int(os.environ.get("BERT_HUB_FUZZ_SEED") or random.SystemRandom().randrange(1 << 31))
        return seed, FULL[campaign]
    return int(os.environ.get("BERT_HUB_FUZZ_SEED") or SLICE_SEED), SLICE[campaign]


# -- hostile folders -------------------------------------------------------------------------
def _launch(seed, start, stop, out, case_timeout):
    return test_fuzz_tf._worker(seed, start, stop, out, case_timeout, HERE / "folder_cases.py")


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
def test_hostile_model_folders_end_in_typed_errors(request):
    seed, cases = _plan(request, "folders")
    print(f"\nfuzz_folders: seed {seed}, {cases} cases")
    records = test_fuzz_tf.run_campaign(seed, cases, case_timeout=30.0, launch=_launch)
    assert sorted(records) == list(range(cases)), "some cases were never run"
    findings = [f"case {seed}/{i} [{r['case'].get('kind')} on {r['case'].get('base')}: "
                f"{r['case'].get('notes')}] {f['target']}: {f['error']}\n"
                f"    replay: python tests/fuzz/folder_cases.py --seed {seed} --replay {i}"
                for i, r in sorted(records.items()) for f in r["findings"]]
    assert not findings, "\n".join(findings)
    kinds = Counter(r["case"]["kind"] for r in records.values())
    files = Counter(r["case"]["notes"].split(",")[0] for r in records.values()
                    if r["case"]["kind"] == "json")
    print(f"fuzz_folders: {dict(kinds)}; json files: {dict(files)}")
    assert set(kinds) == set(folder_mutations.KINDS)
    if cases >= 1000 or seed == SLICE_SEED:      # every file a loader reads (the slice's seed too)
        assert set(files) == set(folder_mutations.JSON_TARGETS)


def _content(path: Path):
    """What a file holds (a safetensors header's key order is the writer's hash order)."""
    if path.suffix != ".safetensors":
        return path.read_bytes()
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k).tolist() for k in sorted(f.keys())}


def test_folder_cases_are_reproducible(tmp_path):
    mats = folder_mutations.Materials(tmp_path / "materials")
    first = [folder_mutations.make_case(5, i, mats, tmp_path / "a") for i in range(10)]
    again = [folder_mutations.make_case(5, i, mats, tmp_path / "b") for i in range(10)]
    for a, b in zip(first, again):
        assert {k: v for k, v in a.items() if k != "folder"} == \
            {k: v for k, v in b.items() if k != "folder"}
        files = [p.relative_to(a["folder"]) for p in Path(a["folder"]).rglob("*") if p.is_file()]
        for name in files:
            assert _content(Path(a["folder"]) / name) == _content(Path(b["folder"]) / name), \
                (a["index"], name)
    assert len({c["notes"] for c in first}) > 5


# -- writers killed midway -------------------------------------------------------------------
_KILLED_WRITER = textwrap.dedent("""
    import json, os, signal, sys
    case = json.loads(sys.argv[1])
    from bert_hub import weights
    real_open, writes = open, [0]

    class Killing:                # the weights file: killed at its n-th write, half written
        def __init__(self, f):
            self.f = f
        def write(self, data):
            writes[0] += 1
            if writes[0] >= case["kill_at"]:
                self.f.write(bytes(memoryview(data).cast("B"))[: len(memoryview(data).cast("B")) // 2])
                self.f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return self.f.write(data)
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    weights.open = lambda path, mode="r", *a, **k: (Killing(real_open(path, mode, *a, **k))
                                                    if "w" in mode else real_open(path, mode, *a, **k))
    if case["writer"] == "cache_conversion":
        from bert_hub import BertModel
        BertModel.from_pretrained(case["archive"])
    else:
        from bert_hub import cli
        sys.exit(cli.main(["convert", "--tf-checkpoint", case["prefix"], "--config", case["config"],
                           "--out", case["out"]]))
""")


def _leftovers(folder: Path, final: set) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name not in final) if folder.is_dir() else []


def _killed_case(seed: int, index: int, tmp: Path, archive: Path) -> dict:
    rng = random.Random(f"killed/{seed}/{index}")
    case = {"writer": rng.choice(["cache_conversion", "cli_convert"]),
            "kill_at": rng.choice([1, 2, 3, 5, 8, 13, 40, 10**6]),       # 10**6: never killed
            "archive": str(archive), "prefix": str(TF_TINY / "bert_model.ckpt"),
            "config": str(TF_TINY / "bert_config.json"),
            "out": str(tmp / f"out{index}" / rng.choice(["model.safetensors", "pytorch_model.bin"]))}
    return case


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
def test_killed_writers_leave_one_known_temp_name(request, tmp_path, monkeypatch):
    from bert_hub import BertModel, cache, weights

    seed, cases = _plan(request, "killed")
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(google_zip())
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    for index in range(cases):
        case = _killed_case(seed, index, tmp_path, archive)
        root = tmp_path / f"cache{index}"
        monkeypatch.setenv("BERT_HUB_CACHE", str(root))
        where = f"case {seed}/{index} {case}"
        if case["writer"] == "cache_conversion":     # the entry exists, not yet converted
            from bert_hub import hub
            hub.resolve_model(archive, need_weights=False)
        proc = subprocess.run([sys.executable, str(script), json.dumps(case)], env=dict(os.environ),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode in (0, -signal.SIGKILL), f"{where}: {proc.stderr[-2000:]}"
        if case["writer"] == "cli_convert":
            out = Path(case["out"])
            left = _leftovers(out.parent, {out.name})
            assert all(TEMP_NAME.match(n) and n.startswith(f".{out.name}.") for n in left), (where, left)
            if out.exists():                         # complete, or not there at all
                assert weights.load_weights(out), where
            continue
        (entry,) = (root / "models").iterdir()
        final = {p.name for p in entry.iterdir() if not p.name.startswith(".") or
                 p.name == cache.MANIFEST_NAME}
        left = _leftovers(entry, final)
        assert len(left) <= 1 and all(TEMP_NAME.match(n) for n in left), (where, left)
        assert cache.verify_entry(cache.find_entry(root, entry.name)) == [], where
        removed = cache.prune(root)
        assert {entry / n for n in left} <= set(removed), where
        assert _leftovers(entry, final) == [] and list((root / ".locks").iterdir()) == [], where
        assert BertModel.from_pretrained(archive) is not None and _leftovers(entry, final | {
            "model.safetensors"}) == [], where
        cache.prune(root)
        assert list((root / ".locks").iterdir()) == [], where


# -- cache rm racing a tokenizer load --------------------------------------------------------
POINTS = ("resolved", "tokenizer_config", "vocab_open")


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
def test_cache_rm_at_every_point_of_a_tokenizer_load(request, tmp_path, monkeypatch):
    """The entry removed (or removed and fetched again) 1-4 times at a seeded point between
    resolving it and reading its vocabulary: the load is resolved again and serves the right
    vocabulary, or (removed on every attempt) fails with a typed error that says so."""
    from bert_hub import hub, tokenization, wordpiece
    from bert_hub.errors import BertHubError, EntryNotFoundError
    from bert_hub.tokenization import BertTokenizer

    seed, cases = _plan(request, "races")
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(google_zip(extra={f"{TOP}/tokenizer_config.json":
                                          json.dumps({"do_lower_case": True})}))
    want = BertTokenizer(str(TF_TINY / "vocab.txt")).vocab
    real = {"resolved": hub.resolve_model, "tokenizer_config": tokenization._read_tokenizer_config,
            "vocab_open": open}
    outcomes = Counter()
    for index in range(cases):
        rng = random.Random(f"races/{seed}/{index}")
        point, action, times = rng.choice(POINTS), rng.choice(["rm", "rm_refill"]), rng.randint(1, 4)
        root = tmp_path / f"cache{index}"
        monkeypatch.setenv("BERT_HUB_CACHE", str(root))
        BertTokenizer.from_pretrained(archive)                      # the entry is there
        hits = [0]

        def interrupt():
            if hits[0] < times:
                hits[0] += 1
                from bert_hub import cache
                (entry,) = (root / "models").iterdir()
                cache.remove_entry(root, entry.name)
                if action == "rm_refill":
                    real["resolved"](archive, need_weights=False)

        def resolved(*args, **kwargs):
            files = real["resolved"](*args, **kwargs)
            interrupt()
            return files

        def tokenizer_config(path):
            interrupt()
            return real["tokenizer_config"](path)

        def vocab_open(path, *args, **kwargs):
            interrupt()
            return real["vocab_open"](path, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(hub, "resolve_model", resolved)
            patch.setattr(tokenization, "_read_tokenizer_config", tokenizer_config)
            if point == "vocab_open":
                patch.setattr(wordpiece, "open", vocab_open, raising=False)
            if point != "resolved":
                patch.setattr(hub, "resolve_model", real["resolved"])
            if point != "tokenizer_config":
                patch.setattr(tokenization, "_read_tokenizer_config", real["tokenizer_config"])
            where = f"case {seed}/{index}: {action} x{times} at {point}"
            try:
                tok = BertTokenizer.from_pretrained(archive)
                outcome = "loaded"
                assert tok.vocab == want and tok.basic_tokenizer.do_lower_case, where
            except EntryNotFoundError as exc:
                outcome = "typed"
                assert "removed or replaced" in str(exc) or "removed while" in str(exc), where
            except BertHubError as exc:
                pytest.fail(f"{where}: {type(exc).__name__}, not EntryNotFoundError: {exc}")
            except Exception as exc:   # noqa: BLE001 - anything untyped is the finding
                pytest.fail(f"{where}: untyped {type(exc).__name__}: {exc}")
        if action == "rm" and times < hub._ENTRY_ATTEMPTS:
            assert outcome == "loaded", f"{where}: not resolved again"
        if action == "rm" and times >= hub._ENTRY_ATTEMPTS:
            assert outcome == "typed", where
        outcomes[(point, outcome)] += 1
    print(f"\nrm races: seed {seed}, {cases} cases: {dict(outcomes)}")
    assert {p for p, _ in outcomes} == set(POINTS)
