"""s3:// downloads against moto's S3 server on 127.0.0.1 (a real HTTP endpoint for boto3)."""
from __future__ import annotations

import base64
import hashlib
import random

import pytest

from floats import assert_close

from bert_hub import download, fetcher
from bert_hub.s3_fetcher import S3Fetcher
from bert_hub.download import fetch, head
from bert_hub.errors import DownloadError, IntegrityError

moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server",
                                  reason="moto[server] is not installed")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")

BUCKET = "bert-mirror"
KEY = "bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip"
DATA = random.Random(2).randbytes(700_000)
FAST = dict(timeout=(2, 5), backoff=0.01)
_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                    "AWS_ENDPOINT_URL_S3")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                         aws_access_key_id="test", aws_secret_access_key="test")
    admin.create_bucket(Bucket=BUCKET)
    admin.put_object(Bucket=BUCKET, Key=KEY, Body=DATA, ACL="public-read")
    admin.put_object(Bucket=BUCKET, Key="private.zip", Body=DATA[:1000])
    yield url
    server.stop()


@pytest.fixture
def aws_env(endpoint, monkeypatch, tmp_path):
    """No ambient AWS configuration: only what each test sets."""
    for name in _CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return monkeypatch


@pytest.fixture
def with_credentials(aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "test")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "test")


def admin_client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def test_fetch_with_credentials_verifies_etag_md5(with_credentials, tmp_path):
    dest = tmp_path / "x.part"
    result = fetch(f"s3://{BUCKET}/{KEY}", dest, expected_sha256=sha(DATA), **FAST)
    assert dest.read_bytes() == DATA and result.size == len(DATA)
    assert result.etag.strip('"') == hashlib.md5(DATA).hexdigest()
    info = head(f"s3://{BUCKET}/{KEY}")
    assert info.size == len(DATA)
    assert info.checksums["md5"] == base64.b64encode(hashlib.md5(DATA).digest()).decode()


def test_anonymous_access_when_no_credentials(aws_env, tmp_path):
    # Signing without credentials raises NoCredentialsError in botocore: success means unsigned.
    fetcher = S3Fetcher((2, 5))
    assert fetcher.anonymous
    fetcher.close()
    result = fetch(f"s3://{BUCKET}/{KEY}", tmp_path / "x.part", **FAST)
    assert result.sha256 == sha(DATA)
    with pytest.raises(DownloadError, match="denied .*no AWS credentials were found.*AWS_ACCESS_KEY_ID"):
        fetch(f"s3://{BUCKET}/private.zip", tmp_path / "y.part", **FAST)


def test_missing_key_and_bucket_are_clear_errors(with_credentials, tmp_path):
    dest = tmp_path / "x.part"
    with pytest.raises(DownloadError, match=r"s3://bert-mirror/nope.zip was not found .*AWS_ENDPOINT_URL"):
        fetch(f"s3://{BUCKET}/nope.zip", dest, **FAST)
    with pytest.raises(DownloadError, match="was not found"):
        fetch("s3://no-such-bucket/x.zip", dest, **FAST)
    with pytest.raises(DownloadError, match="was not found"):
        head(f"s3://{BUCKET}/nope.zip")
    assert not dest.exists()


def test_partial_file_is_resumed_with_a_ranged_get(with_credentials, tmp_path):
    dest = tmp_path / "x.part"
    etag = f'"{hashlib.md5(DATA).hexdigest()}"'
    dest.write_bytes(DATA[:250_000])  # what an interrupted fetch leaves: a prefix and its sidecar
    download._write_meta(dest, {"url": f"s3://{BUCKET}/{KEY}", "etag": etag, "last_modified": None,
                                "total": len(DATA), "checksums": fetcher.etag_md5(etag),
                                "resumable": True})
    opened = []
    real_open = S3Fetcher.open

    def spy(self, url, offset, validator):
        opened.append((offset, validator))
        return real_open(self, url, offset, validator)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(S3Fetcher, "open", spy)
        result = fetch(f"s3://{BUCKET}/{KEY}", dest, expected_sha256=sha(DATA), **FAST)
    assert result.sha256 == sha(DATA) and dest.read_bytes() == DATA
    assert opened == [(250_000, etag)]


def test_object_changed_since_the_prefix_restarts_from_zero(endpoint, with_credentials, tmp_path):
    key = "changing.zip"
    old, new = DATA[:300_000], DATA[300_000:]
    admin_client(endpoint).put_object(Bucket=BUCKET, Key=key, Body=new)
    dest = tmp_path / "x.part"
    dest.write_bytes(old[:100_000])
    old_etag = f'"{hashlib.md5(old).hexdigest()}"'
    download._write_meta(dest, {"url": f"s3://{BUCKET}/{key}", "etag": old_etag, "last_modified": None,
                                "total": len(old), "checksums": {}, "resumable": True})
    result = fetch(f"s3://{BUCKET}/{key}", dest, expected_sha256=sha(new), **FAST)
    assert result.sha256 == sha(new) and dest.read_bytes() == new


def test_wrong_expected_hash_is_an_integrity_error(with_credentials, tmp_path):
    dest = tmp_path / "x.part"
    with pytest.raises(IntegrityError, match="SHA-256"):
        fetch(f"s3://{BUCKET}/{KEY}", dest, expected_sha256="0" * 64, **FAST)
    assert not dest.exists()


def test_from_pretrained_and_registry_entries_over_s3(with_credentials, endpoint, tmp_path, monkeypatch):
    """The whole hub path from an s3:// archive: a URL, and a BERT_HUB_REGISTRY mirror entry."""
    import json

    import torch
    from mirror import TF_TINY, file_hashes, google_zip

    from bert_hub import BertModel, BertTokenizer
    admin_client(endpoint).put_object(Bucket=BUCKET, Key="mirror/tiny.zip", Body=google_zip())
    url = f"s3://{BUCKET}/mirror/tiny.zip"
    by_url = BertModel.from_pretrained(url)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"models": [{
        "name": "tiny-s3", "url": url, "do_lower_case": True, "max_len": 16,
        "file_sha256": file_hashes()}]}))
    monkeypatch.setenv("BERT_HUB_REGISTRY", str(registry))
    by_name = BertModel.from_pretrained("tiny-s3")
    assert BertTokenizer.from_pretrained("tiny-s3").basic_tokenizer.do_lower_case is True
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        torch.testing.assert_close(by_url(ids)[1], by_name(ids)[1], rtol=0, atol=0)
    import shutil
    shutil.copytree(TF_TINY, tmp_path / "google")   # converting writes beside the checkpoint
    reference = BertModel.from_pretrained(tmp_path / "google")
    with torch.no_grad():
        assert_close(by_name(ids)[1], reference(ids)[1], tol=1e-6)
