"""A loopback stand-in for the Hugging Face Hub: the part of its HTTP API that huggingface_hub
uses to download models, answered the way the Hub answers it.

- ``GET /api/models/{repo}[/revision/{rev}]``: the repo's info (``sha``, ``siblings``).
- ``GET /api/models/{repo}/tree/{rev}``: the files at a commit (git blob ids, LFS sha256 and size).
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: a small file is answered directly (``ETag`` = its
  git blob id, ``X-Repo-Commit``); a large file (``.safetensors``, ``.bin``, ...) is stored in
  LFS: the answer is a 302 to a second server standing for the CDN (``tests/http_server.py``'s
  ``FileServer``, which can inject faults), with ``X-Linked-Etag`` (its sha256) and
  ``X-Linked-Size``.
- Errors carry the Hub's ``X-Error-Code``: 404 ``RepoNotFound``, 404 ``RevisionNotFound``, 404
  ``EntryNotFound`` (with ``X-Repo-Commit``), 401 ``GatedRepo`` for a gated repo asked for
  without an accepted token. A renamed repo answers 307 to its new name.

A revision is a branch, a tag or a full commit id (40 hex digits)::

    with FakeHub() as hub:
        commit = hub.add_repo("org/tiny", {"config.json": b"{...}", "model.safetensors": data})
        hub.tag("org/tiny", "v1", commit)
        hub.cdn.add_faults(hub.lfs_path(data), Fault("reset", at=100))
        ... HF_ENDPOINT=hub.endpoint ...
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from http_server import FileServer, _QuietServer

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".onnx", ".ckpt")


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content (what the Hub sends as the ETag of a small file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    commits: Dict[str, Dict[str, bytes]] = field(default_factory=dict)   # sha -> path -> bytes
    refs: Dict[str, str] = field(default_factory=dict)                   # branch or tag -> sha
    gated: bool = False
    accepted_tokens: Tuple[str, ...] = ()
    lost: Tuple[str, ...] = ()    # listed, but answered 404 EntryNotFound (an inconsistent repo)


@dataclass(frozen=True)
class HubRequest:
    method: str
    path: str
    status: int
    authorization: Optional[str]


class FakeHub:
    """Both servers (the Hub and its CDN) on ephemeral loopback ports; a context manager."""

    def __init__(self):
        self.cdn = FileServer(goog_headers=False)
        self.requests: List[HubRequest] = []
        self._repos: Dict[str, _Repo] = {}
        self._renamed: Dict[str, str] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd = _QuietServer(("127.0.0.1", 0), _HubHandler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread: Optional[threading.Thread] = None

    # -- setup ---------------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: Dict[str, bytes], *, branch: str = "main",
                 gated: bool = False, accepted_tokens: Tuple[str, ...] = ()) -> str:
        """A repo whose ``branch`` holds ``files``; returns the commit id."""
        with self._lock:
            self._repos[repo_id] = _Repo(gated=gated, accepted_tokens=accepted_tokens)
        return self.commit(repo_id, files, branch=branch)

    def commit(self, repo_id: str, files: Dict[str, bytes], *, branch: str = "main") -> str:
        """A new commit on ``branch`` replacing the files named in ``files`` (others stay); a new
        branch starts from main."""
        with self._lock:
            repo = self._repos[repo_id]
            self._counter += 1
            sha = hashlib.sha1(f"{repo_id}@{self._counter}".encode()).hexdigest()
            parent = repo.commits.get(repo.refs.get(branch) or repo.refs.get("main", ""), {})
            repo.commits[sha] = {**parent, **files}
            repo.refs[branch] = sha
        for path, data in files.items():
            if path.endswith(LFS_SUFFIXES):
                self.cdn.put(self.lfs_path(data), data)
        return sha

    def tag(self, repo_id: str, name: str, sha: str) -> None:
        with self._lock:
            self._repos[repo_id].refs[name] = sha

    def lose(self, repo_id: str, path: str) -> None:
        """``path`` stays in the listings but its download answers 404 EntryNotFound."""
        with self._lock:
            self._repos[repo_id].lost += (path,)

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            self._renamed[old] = new

    @staticmethod
    def lfs_path(data: bytes) -> str:
        return f"/lfs/{hashlib.sha256(data).hexdigest()}"

    # -- inspection ----------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def count(self, method: Optional[str] = None, contains: str = "") -> int:
        """Requests to the Hub itself (not the CDN), optionally of one method and path part."""
        with self._lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method) and contains in r.path)

    def total_requests(self) -> int:
        """Every request either server saw."""
        with self._lock:
            hub = len(self.requests)
        return hub + sum(self.cdn.counts().values())

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "FakeHub":
        self.cdn.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.cdn.stop()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- used by the handler -------------------------------------------------------------------
    def _split_repo(self, parts: List[str]) -> Tuple[Optional[str], List[str]]:
        """(repo id, the rest) from URL path segments: 'org/name' or a legacy 'name'."""
        with self._lock:
            for size in (2, 1):
                candidate = "/".join(parts[:size])
                if len(parts) >= size and (candidate in self._repos or candidate in self._renamed):
                    return candidate, parts[size:]
        return (("/".join(parts[:2]), parts[2:]) if len(parts) >= 2 else (None, parts))

    def _lookup(self, repo_id: str, revision: str) -> Tuple[Optional[_Repo], Optional[str]]:
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                return None, None
            sha = repo.refs.get(revision)
            if sha is None and revision in repo.commits:
                sha = revision
            return repo, sha


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-hub"

    def log_message(self, *args) -> None:  # quiet
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.owner  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    # -- answers -------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None,
              content_type: str = "application/json") -> None:
        with self.hub._lock:
            self.hub.requests.append(HubRequest(self.command, self.path, status,
                                                self.headers.get("Authorization")))
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, extra: Optional[Dict[str, str]] = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})}
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _json(self, data) -> None:
        self._send(200, json.dumps(data).encode())

    # -- routing -------------------------------------------------------------------------------
    def _route(self) -> None:
        path = urlsplit(self.path).path
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"]:
            repo_id, rest = self.hub._split_repo(parts[2:])
            if repo_id is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            if self._moved(repo_id, path):
                return
            if not rest:
                return self._info(repo_id, "main")
            if rest[0] == "revision" and len(rest) == 2:
                return self._info(repo_id, rest[1])
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo_id, rest[1])
        elif "resolve" in parts:
            at = parts.index("resolve")
            repo_id = "/".join(parts[:at])
            if len(parts) > at + 2 and repo_id:
                if self._moved(repo_id, path):
                    return
                return self._resolve(repo_id, parts[at + 1], "/".join(parts[at + 2:]))
        self._error(404, "RepoNotFound", "Repository not found")

    def _moved(self, repo_id: str, path: str) -> bool:
        new = self.hub._renamed.get(repo_id)
        if new is None:
            return False
        self._send(307, b"", {"Location": path.replace(f"/{repo_id}/", f"/{new}/", 1)})
        return True

    def _commit(self, repo_id: str, revision: str):
        repo, sha = self.hub._lookup(repo_id, revision)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None, None
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None, None
        return repo, sha

    def _info(self, repo_id: str, revision: str) -> None:
        repo, sha = self._commit(repo_id, revision)
        if repo is None:
            return
        files = repo.commits[sha]
        self._json({"_id": sha[:24], "id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                    "gated": "manual" if repo.gated else False, "disabled": False,
                    "lastModified": "2026-01-01T00:00:00.000Z", "tags": ["transformers", "bert"],
                    "library_name": "transformers",
                    "siblings": [{"rfilename": name} for name in sorted(files)]})

    def _tree(self, repo_id: str, revision: str) -> None:
        repo, sha = self._commit(repo_id, revision)
        if repo is None:
            return
        entries, folders = [], set()
        for name, data in sorted(repo.commits[sha].items()):
            entry = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": name}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                "pointerSize": 134}
            entries.append(entry)
            parent = name.rpartition("/")[0]
            while parent and parent not in folders:
                folders.add(parent)
                entries.append({"type": "directory", "oid": git_blob_id(parent.encode()), "size": 0,
                                "path": parent})
                parent = parent.rpartition("/")[0]
        self._json(entries)

    def _resolve(self, repo_id: str, revision: str, name: str) -> None:
        repo, sha = self._commit(repo_id, revision)
        if repo is None:
            return
        if repo.gated and (self.headers.get("Authorization") or "").removeprefix("Bearer ") \
                not in repo.accepted_tokens:
            return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must "
                                                 "have access to it and be authenticated to access it.")
        data = repo.commits[sha].get(name)
        if data is None or name in repo.lost:
            return self._error(404, "EntryNotFound", f"{name} does not exist on \"{revision}\"",
                               {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if name.endswith(LFS_SUFFIXES):
            # Git LFS's pointer-file text (the ETag is its blob id); the first line names the
            # spec version as every pointer file does: an identifier, never fetched.
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:" \
                      f"{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n".encode()
            headers.update({"ETag": f'"{git_blob_id(pointer)}"',
                            "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                            "X-Linked-Size": str(len(data)),
                            "Location": self.hub.cdn.url(self.hub.lfs_path(data))})
            return self._send(302, b"", headers)
        headers["ETag"] = f'"{git_blob_id(data)}"'
        self._send(200, data, headers, content_type="application/octet-stream")
