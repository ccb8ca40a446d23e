"""The ``s3://`` fetcher: boto3, with our retry loop in charge.

Credentials come from the usual chain; with none the requests go unsigned (public buckets).
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` point it at MinIO, moto or a private endpoint.
A ranged GET is pinned with ``IfMatch``; a single-part object's ETag is its MD5.
"""
from __future__ import annotations

import http.client
import os
from typing import Optional, Tuple
from urllib.parse import unquote, urlsplit

from .errors import DownloadError, UnsupportedURLError
from .fetcher import (
    RETRY_STATUSES,
    Opened,
    RangeNotSatisfiable,
    RemoteInfo,
    Restart,
    Timeout,
    Transient,
    describe,
    etag_md5,
    parse_content_range,
    urllib3_errors,
    user_agent,
)


class S3Fetcher:
    """boto3: credentials from the usual chain, anonymous (unsigned) when there are none,
    AWS_ENDPOINT_URL(_S3) honoured (for MinIO, moto, private endpoints)."""

    def __init__(self, timeout: Timeout):
        import boto3
        import botocore
        from botocore.config import Config

        self._botocore = botocore
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        session = boto3.session.Session()
        config = Config(connect_timeout=connect, read_timeout=read,
                        retries={"max_attempts": 1, "mode": "standard"},  # our loop retries
                        user_agent_extra=user_agent())
        self.anonymous = session.get_credentials() is None
        if self.anonymous:
            config = config.merge(Config(signature_version=botocore.UNSIGNED))
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        self.client = session.client("s3", endpoint_url=endpoint, config=config)

    def close(self) -> None:
        self.client.close()

    def head(self, url: str) -> RemoteInfo:
        bucket, key = _split_s3(url)
        resp = self._call(url, lambda: self.client.head_object(Bucket=bucket, Key=key))
        return RemoteInfo(size=resp.get("ContentLength"), etag=resp.get("ETag"), url=url,
                          last_modified=str(resp.get("LastModified")), accept_ranges=True,
                          checksums=etag_md5(resp.get("ETag")))

    def open(self, url: str, offset: int, validator: Optional[str]) -> Opened:
        bucket, key = _split_s3(url)
        extra = {"Range": f"bytes={offset}-", "IfMatch": validator} if offset else {}
        resp = self._call(url, lambda: self.client.get_object(Bucket=bucket, Key=key, **extra))
        body = resp["Body"]
        if offset:
            start, total = parse_content_range(resp.get("ContentRange"))
            if start is None:
                body.close()
                raise Restart(f"a ranged answer without a usable Content-Range "
                              f"({resp.get('ContentRange')!r})")
        else:
            start, total = 0, resp.get("ContentLength")
        bc = self._botocore.exceptions
        read_errors = (bc.BotoCoreError, urllib3_errors(), http.client.HTTPException, OSError)

        def read(n: int) -> bytes:
            try:
                return body.read(n)
            except read_errors as exc:
                raise Transient(describe(exc)) from None

        return Opened(url=url, start=start, total=total, length=resp.get("ContentLength"),
                      etag=resp.get("ETag"), last_modified=None,
                      checksums=etag_md5(resp.get("ETag")), read=read, close=body.close)

    def _call(self, url: str, call):
        bc = self._botocore.exceptions
        try:
            return call()
        except bc.ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
                raise DownloadError(
                    f"{url} was not found ({code or status}). Check the bucket and key, and "
                    f"AWS_ENDPOINT_URL if you use a private S3 endpoint.") from None
            denied = ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch")
            if code in denied or status == 403:
                how = ("no AWS credentials were found, so the request was anonymous; configure "
                       "credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)" if self.anonymous else
                       "check that your AWS credentials may read it")
                raise DownloadError(f"Access to {url} was denied ({code or status}): {how}.") from None
            if code in ("PreconditionFailed", "412") or status == 412:
                raise Restart("the object changed since the partial download began") from None
            if code in ("InvalidRange", "416") or status == 416:
                raise RangeNotSatisfiable(None) from None
            if status in RETRY_STATUSES or code in ("SlowDown", "InternalError", "RequestTimeout"):
                raise Transient(f"S3 {code or status}") from None
            raise DownloadError(f"S3 refused {url}: {code} {err.get('Message', '')}".strip()) from None
        except bc.NoCredentialsError:  # only when a profile is half configured
            raise DownloadError(f"AWS credentials for {url} are incomplete; fix or unset them.") from None
        except (bc.BotoCoreError, urllib3_errors(), OSError) as exc:
            raise Transient(describe(exc)) from None


def _split_s3(url: str) -> Tuple[str, str]:
    parts = urlsplit(url)
    key = unquote(parts.path).lstrip("/")
    if not parts.netloc or not key:
        raise UnsupportedURLError(f"Malformed S3 URL {url!r}: expected s3://<bucket>/<key>.")
    return parts.netloc, key
