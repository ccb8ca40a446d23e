"""A loopback mirror of Google's bucket for hub and CLI tests: the tiny TF-written checkpoint
zipped in Google's layout, served at a Google-style path, registered as 'tiny-bert'."""
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

TF_TINY = Path(__file__).parent / "data" / "tf_tiny"
GOOGLE_PATH = "/bert_models/2020_02_20/tiny_L-2_H-16_A-2.zip"
TOP = "tiny_L-2_H-16_A-2"


def google_zip(top=TOP, extra=None, source=TF_TINY):
    """The tiny TF-written checkpoint zipped in Google's layout (one top folder)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(source.iterdir()):
            zf.write(path, f"{top}/{path.name}" if top else path.name)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def file_hashes(source=TF_TINY):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.iterdir()}


@pytest.fixture
def mirror(file_server, tmp_path, monkeypatch):
    """A loopback mirror at Google's URL paths plus a user registry entry 'tiny-bert'."""
    file_server.put(GOOGLE_PATH, google_zip())
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"models": [{
        "name": "tiny-bert", "aliases": ["tiny_L-2"],
        "url": "https://storage.googleapis.com" + GOOGLE_PATH,
        "top_folder": TOP, "do_lower_case": True, "max_len": 16,
        "file_sha256": file_hashes(),
    }]}))
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(registry))
    monkeypatch.setenv("BERT_HUB_ENDPOINT", file_server.endpoint)
    return file_server
