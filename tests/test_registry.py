"""bert_hub.registry: the packaged Google entries, lookups, endpoints and user registry files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bert_hub import registry
from bert_hub.errors import RegistryError, UnknownModelError
from bert_hub.registry import ModelSpec, get_spec, load_registry, resolve_url

SHARED = Path("/work/shared/google_checkpoints.json")
PACKAGED = Path(registry.__file__).parent / "data" / "google_checkpoints.json"
GOOGLE = "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip"


def raw_entries():
    return json.loads(PACKAGED.read_text())["models"]


def write_registry(path: Path, entries) -> Path:
    path.write_text(json.dumps({"models": entries}))
    return path


def test_every_packaged_entry_loads_with_its_fields():
    reg = load_registry()
    raw = raw_entries()
    assert len(raw) >= 33
    for entry in raw:
        spec = reg.get(entry["name"])
        assert spec.url == entry["url"] and spec.aliases == tuple(entry["aliases"])
        assert spec.do_lower_case is entry["do_lower_case"] and spec.max_len == entry["max_len"]
        assert spec.top_folder == entry["top_folder"]
        assert dict(spec.file_sha256) == entry.get("file_sha256", {})
        assert spec.archive_sha256 == entry.get("archive_sha256")
        for alias in entry["aliases"]:
            assert reg.get(alias) is spec
    assert set(reg.names()) >= {e["name"] for e in raw}
    assert [s.name for s in reg][: len(raw)] == [e["name"] for e in raw]


@pytest.mark.skipif(not SHARED.exists(), reason="the upstream copy of google_checkpoints.json is absent")
def test_packaged_json_is_the_shared_copy():
    assert json.loads(PACKAGED.read_text()) == json.loads(SHARED.read_text())


def test_well_known_names_and_casing():
    assert get_spec("bert-base-uncased").do_lower_case is True
    assert get_spec("bert-base-cased").do_lower_case is False
    assert get_spec("cased_L-12_H-768_A-12").name == "bert-base-cased"
    assert get_spec("bert-tiny").name == "bert-uncased-L-2-H-128-A-2"
    assert get_spec("bert-base-uncased").file_sha256["vocab.txt"].startswith("07eced37")


def test_spec_is_frozen_and_its_hashes_read_only():
    spec = get_spec("bert-base-uncased")
    with pytest.raises(AttributeError):
        spec.url = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.file_sha256["vocab.txt"] = "0" * 64  # type: ignore[index]
    assert hash(spec) == hash(get_spec("bert-base-uncased"))


@pytest.mark.parametrize("typo, suggestion", [
    ("bert-base-uncase", "bert-base-uncased"),
    ("bert-large-cassed", "bert-large-cased"),
    ("BERT_BASE_UNCASED", "bert-base-uncased"),
    ("bert-tinny", "bert-tiny"),
])
def test_unknown_name_suggests_close_names(typo, suggestion):
    with pytest.raises(UnknownModelError) as info:
        get_spec(typo)
    message = str(info.value)
    assert repr(typo) in message and "Did you mean" in message and repr(suggestion) in message
    assert "bert-hub list" in message
    assert isinstance(info.value, ValueError)


def test_unknown_name_without_close_names():
    with pytest.raises(UnknownModelError) as info:
        get_spec("zzzz")
    assert "Did you mean" not in str(info.value) and "bert-hub list" in str(info.value)
    assert "zzzz" not in load_registry() and "bert-base-cased" in load_registry()


def test_endpoint_replaces_scheme_and_host_and_keeps_the_path(monkeypatch):
    spec = get_spec("bert-base-uncased")
    assert resolve_url(spec) == GOOGLE
    monkeypatch.setenv("BERT_HUB_ENDPOINT", "http://127.0.0.1:8000")
    assert resolve_url(spec) == "http://127.0.0.1:8000/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip"
    assert resolve_url(GOOGLE) == resolve_url(spec)  # a URL string on a registry host too
    assert resolve_url("https://example.org/x.zip") == "https://example.org/x.zip"  # others: never
    assert resolve_url("s3://bucket/x.zip") == "s3://bucket/x.zip"
    monkeypatch.setenv("BERT_HUB_ENDPOINT", "https://mirror.example.com/prefix/")
    assert resolve_url(spec) == "https://mirror.example.com/prefix/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip"


@pytest.mark.parametrize("endpoint", ["127.0.0.1:8000", "ftp://mirror", "http://", "http://example.org/?q=1"])
def test_bad_endpoint_is_named(monkeypatch, endpoint):
    monkeypatch.setenv("BERT_HUB_ENDPOINT", endpoint)
    with pytest.raises(RegistryError, match=f"BERT_HUB_ENDPOINT={endpoint!r}".replace("?", r"\?")):
        resolve_url(get_spec("bert-base-uncased"))


def test_package_url_resolves_to_a_file_inside_the_package():
    url = resolve_url("package://bert_hub/data/google_checkpoints.json")
    assert url.startswith("file://") and url.endswith("/bert_hub/data/google_checkpoints.json")
    assert Path(registry.package_file("package://bert_hub/data/google_checkpoints.json")) == PACKAGED
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_url("package://bert_hub/data/no-such-file.zip")
    with pytest.raises(RegistryError, match="Malformed package URL"):
        resolve_url("package://bert_hub/../etc/passwd")


def test_user_registry_adds_and_overrides_entries(tmp_path, monkeypatch):
    base = get_spec("bert-base-uncased")
    path = write_registry(tmp_path / "extra.json", [
        {"name": "my-bert", "url": "s3://models/my-bert.zip", "do_lower_case": False,
         "aliases": ["mine", "bert-tiny"], "max_len": 128, "_comment": "ignored"},
        {"name": "bert-base-uncased", "url": "local/uncased.zip", "do_lower_case": True},
    ])
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(path))
    reg = load_registry()
    mine = reg.get("mine")
    assert (mine.name, mine.url) == ("my-bert", "s3://models/my-bert.zip")
    assert (mine.do_lower_case, mine.max_len) == (False, 128)
    assert mine.source == str(path)
    assert reg.get("bert-tiny") is mine                    # the alias moved to the later entry
    assert "bert-tiny" not in reg.get("bert-uncased-L-2-H-128-A-2").aliases
    over = reg.get("bert-base-uncased")
    assert over.url == str(tmp_path / "local" / "uncased.zip")  # relative to the JSON file
    assert "uncased_L-12_H-768_A-12" not in reg               # its old aliases went with it
    assert reg.names().index("bert-base-uncased") == 0         # same place in the listing
    monkeypatch.delenv("BERT_HUB_REGISTRY")
    assert get_spec("bert-base-uncased") == base               # read when called, not at import


def test_several_user_files_later_wins(tmp_path, monkeypatch):
    a = write_registry(tmp_path / "a.json", [{"name": "x", "url": "http://a.example.com/x.zip", "do_lower_case": True}])
    b = write_registry(tmp_path / "b.json", [{"name": "x", "url": "http://b.example.com/x.zip", "do_lower_case": True}])
    monkeypatch.setenv("BERT_HUB_REGISTRY", os.pathsep.join([str(a), str(b)]))
    assert get_spec("x").url == "http://b.example.com/x.zip"


U = {"name": "x", "url": "http://example.com/x.zip", "do_lower_case": True}  # a valid entry to spoil


@pytest.mark.parametrize("entry, words", [
    ({"url": "http://example.com/x.zip", "do_lower_case": True}, "'name' is missing"),
    ({"name": "x", "do_lower_case": True}, "'url' is missing"),
    ({"name": "x", "url": "http://example.com/x.zip"}, "'do_lower_case' is missing"),
    ({"name": "x", "url": "http://example.com/x.zip", "do_lower_case": "yes"}, "'do_lower_case' must be true or false"),
    ({"name": "a/b", "url": "http://example.com/x.zip", "do_lower_case": True}, "'name' must be"),
    ({**U, "max_len": 0}, "'max_len' must be a positive"),
    ({**U, "archive_sha256": "abc"}, "64 lowercase hex"),
    ({**U, "file_sha256": {"vocab.txt": "A" * 64}},
     "'file_sha256' must be"),
    ({**U, "aliases": "y"}, "'aliases' must be a list"),
    ({**U, "aliases": ["x"]}, "repeat"),
    ({**U, "do_lower": True}, "Did you mean 'do_lower_case'"),
    ({"name": "x", "url": "gopher://h/x.zip", "do_lower_case": True}, "unsupported scheme 'gopher'"),
    ("x", "expected an object"),
])
def test_user_entry_validation_names_file_entry_and_problem(tmp_path, monkeypatch, entry, words):
    path = write_registry(tmp_path / "bad.json", [
        {"name": "fine", "url": "http://example.com/fine.zip", "do_lower_case": True}, entry])
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(path))
    with pytest.raises(RegistryError) as info:
        load_registry()
    message = str(info.value)
    assert str(path) in message and "entry 1" in message and words in message


def test_user_file_level_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(tmp_path / "missing.json"))
    with pytest.raises(RegistryError, match="missing.json .*does not exist.*BERT_HUB_REGISTRY"):
        load_registry()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(bad))
    with pytest.raises(RegistryError, match="bad.json is not valid JSON"):
        load_registry()
    bad.write_text('{"entries": []}')
    with pytest.raises(RegistryError, match="must hold .*models"):
        load_registry()
    dup = write_registry(tmp_path / "dup.json", [
        {"name": "x", "url": "http://example.com/x.zip", "do_lower_case": True},
        {"name": "y", "url": "http://example.com/y.zip", "do_lower_case": True, "aliases": ["x"]}])
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(dup))
    with pytest.raises(RegistryError, match="'x' is used by both 'x' and 'y'"):
        load_registry()
    clash = write_registry(tmp_path / "clash.json", [
        {**U, "aliases": ["bert-base-cased"]}])
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(clash))
    with pytest.raises(RegistryError, match="alias 'bert-base-cased' of 'x' is the name of the entry"):
        load_registry()


def test_user_file_edits_are_seen_on_the_next_load(tmp_path, monkeypatch):
    path = write_registry(tmp_path / "r.json", [{**U, "url": "http://a.example.com/x.zip"}])
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(path))
    assert get_spec("x").url == "http://a.example.com/x.zip"
    write_registry(path, [{**U, "url": "http://a.example.com/x2.zip"}])
    os.utime(path, ns=(1, 10**18))  # a different mtime even on coarse clocks
    assert get_spec("x").url == "http://a.example.com/x2.zip"


def test_model_spec_constructor_order():
    spec = ModelSpec("n", ("a",), "http://example.com/x.zip", None, True, 512)
    assert spec.file_sha256 == {} and spec.archive_sha256 is None
