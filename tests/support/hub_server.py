"""A loopback server that speaks the Hugging Face Hub HTTP API, for tests.

Tests cannot reach huggingface.co, yet uploads and downloads should go through the real
``huggingface_hub`` client (and through ``transformers`` / ``datasets`` on top of it), not
through mocks. :class:`LoopbackHub` runs a small Hub look-alike on ``127.0.0.1`` with the
standard library only (``http.server.ThreadingHTTPServer`` in a daemon thread):

* repositories (models, datasets, spaces) with a git-like history: every commit gets a new
  40-hex revision and a full snapshot of its files; branches and tags point at commits;
* file contents live on disk, content-addressed by sha256, under the hub's temporary folder;
* the routes the client calls: ``whoami-v2``, ``repos/create``, repo info, ``tree``,
  ``paths-info``, ``preupload``, the LFS batch API with its upload URL, the NDJSON ``commit``,
  ``refs``, ``commits``, branches, tags and ``resolve`` (HEAD/GET with ``Range``).

Uploads must go through plain HTTP + LFS: the client only does that with ``HF_HUB_DISABLE_XET``
set, which :func:`hub_env` takes care of (it also repoints every module-level constant that the
libraries read at import time, so it works in a process that already imported them).

Typical use in a test::

    def test_roundtrip(loopback_hub, tmp_path, monkeypatch):
        api = HfApi()
        api.create_repo("me/model")
        api.upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id="me/model")
        assert loopback_hub.files("me/model") == {".gitattributes": ..., "a.txt": b"hi"}
        hub_env(monkeypatch, loopback_hub)  # fresh client caches, same server
        ...

Any route the server does not know answers ``501`` with the method and path in the body, is
logged at ERROR level and is recorded in :attr:`LoopbackHub.unhandled`; the ``loopback_hub``
fixture fails the test at teardown if that list is not empty, so a missing endpoint is named
instead of surfacing as an obscure client error.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import logging
import re
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset", "space")
#: URL prefix of each repo type on the web side (``/resolve``, LFS); models have none.
_WEB_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
#: Plural used by the ``/api/{type}s/...`` routes.
_API_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}

#: Files at least this large are stored with LFS, as on the Hub.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

#: The ``.gitattributes`` the Hub writes in the first commit of a new repository. Its LFS
#: patterns (plus the size threshold and a binary sniff) decide "regular" vs "lfs" uploads.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z",
        "*.arrow",
        "*.bin",
        "*.bz2",
        "*.ckpt",
        "*.ftz",
        "*.gz",
        "*.h5",
        "*.joblib",
        "*.lfs.*",
        "*.mlmodel",
        "*.model",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.ot",
        "*.parquet",
        "*.pb",
        "*.pickle",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.rar",
        "*.safetensors",
        "saved_model/**/*",
        "*.tar.*",
        "*.tar",
        "*.tflite",
        "*.tgz",
        "*.wasm",
        "*.xz",
        "*.zip",
        "*.zst",
        "*tfevents*",
    )
)

_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


# --------------------------------------------------------------------------------------------
# Storage model
# --------------------------------------------------------------------------------------------


def _git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's ``oid``/ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class StoredFile:
    """One file of a snapshot. Contents are in the hub's blob store, keyed by ``sha256``."""

    path: str
    size: int
    sha256: str
    lfs: bool
    #: Git object id: of the content for regular files, of the LFS pointer for LFS files.
    git_oid: str
    pointer_size: int = 0

    @classmethod
    def create(cls, path: str, data: bytes, *, lfs: bool) -> StoredFile:
        sha256 = hashlib.sha256(data).hexdigest()
        if not lfs:
            return cls(path, len(data), sha256, False, _git_blob_oid(data))
        pointer = _LFS_POINTER.format(oid=sha256, size=len(data)).encode()
        return cls(path, len(data), sha256, True, _git_blob_oid(pointer), len(pointer))

    @property
    def etag(self) -> str:
        """The ETag the client caches the file under: sha256 for LFS, git oid otherwise."""
        return self.sha256 if self.lfs else self.git_oid

    def lfs_info(self) -> dict[str, Any] | None:
        if not self.lfs:
            return None
        return {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}


@dataclass(frozen=True)
class Commit:
    """An immutable revision: a full snapshot of the repository's files."""

    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: datetime
    files: Mapping[str, StoredFile]

    def folders(self) -> set[str]:
        """Every folder that holds at least one file (``""``, the root, excluded)."""
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def files_under(self, folder: str) -> list[StoredFile]:
        prefix = folder.rstrip("/") + "/" if folder else ""
        return [f for p, f in sorted(self.files.items()) if p.startswith(prefix)]

    def folder_oid(self, folder: str) -> str:
        """A stable id for a folder's content (the Hub reports git tree ids)."""
        listing = "\n".join(f"{f.path} {f.git_oid}" for f in self.files_under(folder))
        return hashlib.sha1(f"tree {folder}\n{listing}".encode()).hexdigest()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: datetime
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: LFS objects this repository may reference (uploaded to it, or already committed).
    lfs_oids: set[str] = field(default_factory=set)
    pull_requests: int = 0

    @property
    def web_path(self) -> str:
        return _WEB_PREFIX[self.repo_type] + self.repo_id


class HubError(Exception):
    """An HTTP error answered the way the Hub does (``X-Error-Code`` drives client exceptions)."""

    def __init__(self, status: int, message: str, error_code: str | None = None, **headers: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers


def _repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")


@dataclass(frozen=True)
class CommitOperation:
    """One line of the NDJSON commit payload, decoded."""

    kind: str  # "file" | "lfsFile" | "deletedFile" | "deletedFolder"
    path: str
    content: bytes | None = None
    oid: str | None = None


class HubStore:
    """Repositories, commits and blobs of one :class:`LoopbackHub`. Thread-safe."""

    def __init__(self, root: Path, user: str):
        self.root = root
        self.user = user
        self._blobs = root / "objects"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._repos: dict[tuple[str, str], Repo] = {}
        self._lock = threading.RLock()
        self._commit_counter = 0
        #: LFS objects announced through the batch API and waiting for their PUT -> their size.
        self._pending_uploads: dict[tuple[str, str, str], int] = {}

    # -- blobs --------------------------------------------------------------------------

    def _blob_path(self, sha256: str) -> Path:
        return self._blobs / sha256[:2] / sha256[2:]

    def put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._blob_path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)  # atomic: concurrent readers never see half a blob
        return sha256

    def has_blob(self, sha256: str) -> bool:
        return self._blob_path(sha256).exists()

    def read_blob(self, sha256: str) -> bytes:
        return self._blob_path(sha256).read_bytes()

    # -- repositories -------------------------------------------------------------------

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool) -> tuple[Repo, bool]:
        """Create a repository with the Hub's initial commit; return it and whether it is new."""
        with self._lock:
            key = (repo_type, repo_id)
            if key in self._repos:
                return self._repos[key], False
            repo = Repo(repo_type, repo_id, private, datetime.now(timezone.utc))
            self._repos[key] = repo
            attributes = DEFAULT_GITATTRIBUTES.encode()
            self.put_blob(attributes)
            initial = self._new_commit(
                repo,
                parent=None,
                files={".gitattributes": StoredFile.create(".gitattributes", attributes, lfs=False)},
                title="initial commit",
                message="",
            )
            repo.branches["main"] = initial.oid
            return repo, True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self._lock:
            if self._repos.pop((repo_type, repo_id), None) is None:
                raise _repo_not_found(repo_type, repo_id)

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise _repo_not_found(repo_type, repo_id)
        return repo

    def repos(self) -> list[Repo]:
        with self._lock:
            return list(self._repos.values())

    def resolve(self, repo: Repo, revision: str) -> Commit:
        """A branch, tag, full commit id or unique commit prefix -> the commit."""
        with self._lock:
            oid = repo.branches.get(revision) or repo.tags.get(revision)
            if oid is None and revision.startswith("refs/heads/"):
                oid = repo.branches.get(revision[len("refs/heads/") :])
            if oid is None and re.fullmatch(r"[0-9a-f]{7,40}", revision):
                matches = [c for c in repo.commits if c.startswith(revision)]
                oid = matches[0] if len(matches) == 1 else None
            if oid is None:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return repo.commits[oid]

    def history(self, repo: Repo, commit: Commit) -> list[Commit]:
        """``commit`` and its ancestors, newest first."""
        with self._lock:
            out = [commit]
            while out[-1].parent is not None:
                out.append(repo.commits[out[-1].parent])
            return out

    def last_commit_touching(self, repo: Repo, commit: Commit, path: str, is_folder: bool) -> Commit:
        """The newest ancestor of ``commit`` that changed ``path`` (a file or a folder)."""

        def signature(c: Commit) -> Any:
            if is_folder:
                return tuple((f.path, f.git_oid) for f in c.files_under(path))
            entry = c.files.get(path)
            return entry.git_oid if entry else None

        history = self.history(repo, commit)
        for newer, older in zip(history, history[1:]):
            if signature(newer) != signature(older):
                return newer
        return history[-1]

    # -- LFS uploads ----------------------------------------------------------------------

    def has_lfs_object(self, repo: Repo, oid: str) -> bool:
        with self._lock:
            return oid in repo.lfs_oids and self.has_blob(oid)

    def expect_upload(self, repo: Repo, oid: str, size: int) -> None:
        """Record an object announced through the LFS batch API (its PUT is then accepted)."""
        with self._lock:
            self._pending_uploads[(repo.repo_type, repo.repo_id, oid)] = size

    def receive_upload(self, repo: Repo, oid: str, data: bytes) -> None:
        """Store the body of an LFS PUT after checking it is the announced object."""
        key = (repo.repo_type, repo.repo_id, oid)
        with self._lock:
            expected_size = self._pending_uploads.get(key)
        if expected_size is None:
            raise HubError(403, f"No pending upload for {oid}")
        if len(data) != expected_size or hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match oid {oid} / size {expected_size}")
        self.put_blob(data)
        with self._lock:
            repo.lfs_oids.add(oid)
            self._pending_uploads.pop(key, None)

    # -- writes -------------------------------------------------------------------------

    def _new_commit(
        self, repo: Repo, *, parent: str | None, files: dict[str, StoredFile], title: str, message: str
    ) -> Commit:
        self._commit_counter += 1
        now = datetime.now(timezone.utc)
        manifest = "\n".join(f"{p} {f.git_oid}" for p, f in sorted(files.items()))
        seed = f"{repo.repo_type}/{repo.repo_id}\n{parent}\n{title}\n{message}\n{now.isoformat()}"
        oid = hashlib.sha1(f"{seed}\n{self._commit_counter}\n{manifest}".encode()).hexdigest()
        commit = Commit(oid, parent, title, message, self.user, now, dict(files))
        repo.commits[oid] = commit
        repo.lfs_oids.update(f.sha256 for f in files.values() if f.lfs)
        self._write_manifest(repo, commit)
        return commit

    def _write_manifest(self, repo: Repo, commit: Commit) -> None:
        """Keep a readable trace of each commit on disk, next to the blobs, for debugging."""
        folder = self.root / "repos" / f"{repo.repo_type}s" / repo.repo_id / "commits"
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "oid": commit.oid,
            "parent": commit.parent,
            "title": commit.title,
            "date": _iso(commit.date),
            "files": {p: {"sha256": f.sha256, "size": f.size, "lfs": f.lfs} for p, f in commit.files.items()},
        }
        (folder / f"{commit.oid}.json").write_text(json.dumps(record, indent=1))

    def upload_mode(self, repo: Repo, path: str, size: int, sample: bytes) -> str:
        """``"lfs"`` or ``"regular"``, decided like the Hub: .gitattributes, size, binary content."""
        if size >= LFS_SIZE_THRESHOLD or b"\0" in sample:
            return "lfs"
        head = self.resolve(repo, "main")
        attributes = head.files.get(".gitattributes")
        text = self.read_blob(attributes.sha256).decode() if attributes else DEFAULT_GITATTRIBUTES
        return "lfs" if _matches_lfs_attribute(text, path) else "regular"

    def create_branch(self, repo: Repo, branch: str, starting_point: str | None) -> None:
        with self._lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            if branch.startswith("refs/"):
                raise HubError(400, f"Invalid reference for a branch: {branch}")
            repo.branches[branch] = self.resolve(repo, starting_point or "main").oid

    def delete_branch(self, repo: Repo, branch: str) -> None:
        with self._lock:
            if branch == "main" or repo.branches.pop(branch, None) is None:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")

    def create_tag(self, repo: Repo, tag: str, revision: str) -> None:
        with self._lock:
            if tag in repo.tags:
                raise HubError(409, f"Tag already exists: {tag}")
            repo.tags[tag] = self.resolve(repo, revision).oid

    def commit(
        self,
        repo: Repo,
        *,
        revision: str,
        operations: list[CommitOperation],
        title: str,
        message: str,
        parent_commit: str | None,
        create_pr: bool,
    ) -> tuple[Commit, int | None]:
        """Apply ``operations`` on top of branch ``revision``; return the commit and PR number."""
        with self._lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.commits[repo.branches[revision]]
            if parent_commit is not None and parent_commit != head.oid:
                # The client relies on 412 to retry (datasets' push_to_hub does).
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for op in operations:
                self._apply(repo, files, op)
            commit = self._new_commit(repo, parent=head.oid, files=files, title=title, message=message)
            if not create_pr:
                repo.branches[revision] = commit.oid
                return commit, None
            repo.pull_requests += 1
            repo.branches[f"refs/pr/{repo.pull_requests}"] = commit.oid
            return commit, repo.pull_requests

    def _apply(self, repo: Repo, files: dict[str, StoredFile], op: CommitOperation) -> None:
        if op.kind == "file":
            assert op.content is not None
            self.put_blob(op.content)
            files[op.path] = StoredFile.create(op.path, op.content, lfs=False)
        elif op.kind == "lfsFile":
            if not self.has_lfs_object(repo, op.oid):
                raise HubError(422, f"LFS object {op.oid} for '{op.path}' was never uploaded to this repo")
            files[op.path] = StoredFile.create(op.path, self.read_blob(op.oid), lfs=True)
        elif op.kind == "deletedFile":
            if files.pop(op.path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {op.path}", "EntryNotFound")
        elif op.kind == "deletedFolder":
            prefix = op.path.rstrip("/") + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {op.path}", "EntryNotFound")
            for path in doomed:
                del files[path]
        else:
            raise HubError(400, f"Unknown commit operation: {op.kind}")


def _matches_lfs_attribute(gitattributes: str, path: str) -> bool:
    """Whether a ``filter=lfs`` line of ``.gitattributes`` matches ``path`` (last match wins)."""
    name = path.rsplit("/", 1)[-1]
    tracked = False
    for line in gitattributes.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        pattern, attributes = parts[0], parts[1:]
        # git matches slash-less patterns against the basename, others against the full path
        target = path if "/" in pattern else name
        if fnmatchcase(target, pattern):
            if "filter=lfs" in attributes:
                tracked = True
            elif "-filter" in attributes or "!filter" in attributes:
                tracked = False
    return tracked


# --------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------

_SEG = r"[^/]+"
_REPO = rf"(?P<ns>{_SEG})/(?P<name>{_SEG})"
_API = rf"/api/(?P<api_type>models|datasets|spaces)/{_REPO}"
_WEB = rf"/(?:(?P<web_type>datasets|spaces)/)?{_REPO}"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., None]


@dataclass
class Request:
    """What a route handler needs from the HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as error:
            raise HubError(400, f"Malformed JSON body: {error}") from error

    def flag(self, name: str) -> bool:
        return (self.query.get(name) or ["false"])[-1].lower() in ("1", "true", "yes")

    @property
    def token(self) -> str | None:
        value = self.headers.get("authorization") or ""
        if not value.lower().startswith("bearer "):
            return None
        return value[len("bearer ") :].strip() or None


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into calls on :class:`LoopbackHub`'s route handlers."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server: _HubHTTPServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("loopback hub: " + format, *args)

    # -- plumbing ---------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except Exception:  # a broken body leaves the connection in an unknown state
            self.close_connection = True
            raise
        for route in hub.routes:
            match = route.pattern.fullmatch(url.path)
            if route.method == method and match:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                request = Request(method, url.path, parse_qs(url.query), _lower(self.headers), body, params)
                self._run(route.handler, request)
                return
        hub._record_unhandled(method, self.path)
        self._send(501, f"loopback hub: no route for {method} {self.path}\n".encode(), "text/plain")

    def _run(self, handler: Callable[..., None], request: Request) -> None:
        hub = self.server.hub
        try:
            handler(self, request)
        except HubError as error:
            # header values must be one latin-1 line: paths may hold anything
            one_line = error.message.replace("\n", " ").encode("ascii", "backslashreplace").decode()
            headers = {"X-Error-Message": one_line, **error.headers}
            if error.error_code:
                headers["X-Error-Code"] = error.error_code
            self.send_json({"error": error.message}, status=error.status, headers=headers)
        except Exception:
            trace = traceback.format_exc()
            hub.errors.append(f"{request.method} {request.path}\n{trace}")
            logger.error("loopback hub: error while serving %s %s\n%s", request.method, request.path, trace)
            self._send(500, trace.encode(), "text/plain")
        finally:
            hub.requests.append((request.method, self.path))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        *,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(
        self,
        payload: Any,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self._send(status, json.dumps(payload).encode(), content_type, headers)

    def send_bytes(
        self, body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None, length: int | None = None
    ) -> None:
        self._send(status, body, "application/octet-stream", headers, length=length)


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: LoopbackHub):
        self.hub = hub
        super().__init__(("127.0.0.1", 0), _Handler)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> inclusive (start, end); None if absent."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or match.groups() == ("", ""):
        raise HubError(416, f"Unsupported range: {header}", **{"Content-Range": f"bytes */{size}"})
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise HubError(416, f"Range not satisfiable: {header}", **{"Content-Range": f"bytes */{size}"})
    return start, end


# --------------------------------------------------------------------------------------------
# The hub
# --------------------------------------------------------------------------------------------


class LoopbackHub:
    """A Hugging Face Hub look-alike on ``http://127.0.0.1:<random port>``.

    Args:
        root: where repositories and blobs are stored; a fresh temporary folder by default
            (removed by :meth:`stop`).
        user: the account the token belongs to (``whoami-v2``, default namespace).
        token: the only token accepted for writes; any reader may read public repos.

    Use it as a context manager (``with LoopbackHub() as hub: ...``) or call :meth:`start` and
    :meth:`stop`. Point the client at it with :func:`hub_env`.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        user: str = "loopback-user",
        token: str = "hf_loopbackFakeToken0000000000000000",
    ):
        self._owns_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="loopback-hub-"))
        self.user = user
        self.token = token
        self.store = HubStore(self.root / "storage", user)
        #: (method, raw path) of every request the server had no route for.
        self.unhandled: list[tuple[str, str]] = []
        #: Tracebacks of handler crashes (answered 500).
        self.errors: list[str] = []
        #: (method, raw path) of every routed request, in order (handy to see what a client did).
        self.requests: list[tuple[str, str]] = []
        self.routes = self._build_routes()
        self._server: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> LoopbackHub:
        if self._server is not None:
            return self
        self._server = _HubHTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"loopback-hub-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = self._thread = None
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LoopbackHub is not started")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The value for ``HF_ENDPOINT``: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Same as :attr:`endpoint`."""
        return self.endpoint

    # -- helpers for tests ------------------------------------------------------------------

    def repo_url(self, repo_id: str, repo_type: str = "model") -> str:
        return f"{self.endpoint}/{_WEB_PREFIX[repo_type]}{repo_id}"

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Path -> content of every file at ``revision`` (the ``main`` head by default)."""
        repo = self.store.get_repo(repo_type, repo_id)
        commit = self.store.resolve(repo, revision)
        return {path: self.store.read_blob(f.sha256) for path, f in sorted(commit.files.items())}

    def commits(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[Commit]:
        """The history of ``revision``, newest first (the last one is the "initial commit")."""
        repo = self.store.get_repo(repo_type, repo_id)
        return self.store.history(repo, self.store.resolve(repo, revision))

    def lfs_files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> set[str]:
        """Paths stored with LFS at ``revision``."""
        repo = self.store.get_repo(repo_type, repo_id)
        return {p for p, f in self.store.resolve(repo, revision).files.items() if f.lfs}

    def repos(self) -> list[tuple[str, str]]:
        """``(repo_type, repo_id)`` of every repository."""
        return sorted((r.repo_type, r.repo_id) for r in self.store.repos())

    def _record_unhandled(self, method: str, path: str) -> None:
        self.unhandled.append((method, path))
        logger.error("loopback hub: NO ROUTE for %s %s (answered 501)", method, path)

    # -- routing ----------------------------------------------------------------------------

    def _build_routes(self) -> list[Route]:
        table: list[tuple[str, str, Callable[..., None]]] = [
            ("GET", r"/api/whoami-v2", self._whoami),
            ("POST", r"/api/repos/create", self._create_repo),
            ("DELETE", r"/api/repos/delete", self._delete_repo),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("GET", rf"{_API}(?:/revision/(?P<rev>{_SEG}))?", self._repo_info),
            ("GET", rf"{_API}/tree/(?P<rev>{_SEG})(?:/(?P<path>.*))?", self._tree),
            ("POST", rf"{_API}/paths-info/(?P<rev>{_SEG})", self._paths_info),
            ("POST", rf"{_API}/preupload/(?P<rev>{_SEG})", self._preupload),
            ("POST", rf"{_API}/commit/(?P<rev>{_SEG})", self._commit),
            ("GET", rf"{_API}/refs", self._refs),
            ("GET", rf"{_API}/commits/(?P<rev>{_SEG})", self._list_commits),
            ("POST", rf"{_API}/branch/(?P<branch>.+)", self._create_branch),
            ("DELETE", rf"{_API}/branch/(?P<branch>.+)", self._delete_branch),
            ("POST", rf"{_API}/tag/(?P<rev>.+)", self._create_tag),
            ("POST", rf"{_WEB}\.git/info/lfs/objects/batch", self._lfs_batch),
            ("POST", rf"{_WEB}\.git/info/lfs/objects/verify", self._lfs_verify),
            ("PUT", rf"/lfs-upload/(?P<repo_type>model|dataset|space)/{_REPO}/(?P<oid>[0-9a-f]{{64}})", self._lfs_put),
            ("HEAD", rf"{_WEB}/resolve/(?P<rev>{_SEG})/(?P<path>.+)", self._resolve),
            ("GET", rf"{_WEB}/resolve/(?P<rev>{_SEG})/(?P<path>.+)", self._resolve),
        ]
        return [Route(method, re.compile(pattern), handler) for method, pattern, handler in table]

    # -- request helpers --------------------------------------------------------------------

    def _require_token(self, request: Request) -> None:
        if request.token is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        if request.token != self.token:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, request: Request, *, write: bool = False) -> Repo:
        """The repository a route names; private repos hide from readers without the token."""
        p = request.params
        if "api_type" in p:
            repo_type = _API_TYPE[p["api_type"]]
        elif "repo_type" in p:
            repo_type = p["repo_type"]
        else:
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(p.get("web_type", ""), "model")
        if write:
            self._require_token(request)
        repo = self.store.get_repo(repo_type, f"{p['ns']}/{p['name']}")
        if repo.private and request.token != self.token:
            raise _repo_not_found(repo_type, repo.repo_id)
        return repo

    def _revision(self, request: Request, repo: Repo) -> Commit:
        return self.store.resolve(repo, request.params.get("rev") or "main")

    # -- account / repos --------------------------------------------------------------------

    def _whoami(self, http: _Handler, request: Request) -> None:
        self._require_token(request)
        http.send_json(
            {
                "type": "user",
                "id": hashlib.sha1(self.user.encode()).hexdigest()[:24],
                "name": self.user,
                "fullname": self.user,
                "email": f"{self.user}@loopback.invalid",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "periodEnd": None,
                "avatarUrl": "",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "write"}},
            }
        )

    def _create_repo(self, http: _Handler, request: Request) -> None:
        self._require_token(request)
        body = request.json()
        repo_type = body.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        private = body.get("private") is True or body.get("visibility") == "private"
        repo, created = self.store.create_repo(repo_type, repo_id, private=private)
        url = self.repo_url(repo_id, repo_type)
        if not created:
            payload = {"error": f"You already created this {repo_type} repo", "url": url}
            http.send_json(payload, status=409, headers={"X-Error-Message": payload["error"]})
            return
        http.send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, http: _Handler, request: Request) -> None:
        self._require_token(request)
        body = request.json()
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        self.store.delete_repo(body.get("type") or "model", repo_id)
        http.send_json({})

    def _validate_yaml(self, http: _Handler, request: Request) -> None:
        # The Hub checks the card metadata against its schema; accepting it keeps this server
        # standard-library only (no YAML parser).
        http.send_json({"errors": [], "warnings": []})

    def _repo_info(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        commit = self._revision(request, repo)
        with_blobs = request.flag("blobs")
        siblings = []
        for path, f in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=f.size, blobId=f.git_oid)
                if f.lfs:
                    sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
            siblings.append(sibling)
        namespace = repo.repo_id.split("/")[0]
        http.send_json(
            {
                "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "author": namespace,
                "sha": commit.oid,
                "lastModified": _iso(commit.date),
                "createdAt": _iso(repo.created_at),
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(f.size for f in commit.files.values()),
            }
        )

    # -- reading trees ----------------------------------------------------------------------

    def _entry(self, repo: Repo, commit: Commit, path: str, *, expand: bool) -> dict[str, Any]:
        """A ``tree`` / ``paths-info`` entry for a file or folder that exists in ``commit``."""
        stored = commit.files.get(path)
        if stored is not None:
            entry: dict[str, Any] = {"type": "file", "oid": stored.git_oid, "size": stored.size, "path": path}
            if stored.lfs:
                entry["lfs"] = stored.lfs_info()
        else:
            entry = {"type": "directory", "oid": commit.folder_oid(path), "size": 0, "path": path}
        if expand:
            last = self.store.last_commit_touching(repo, commit, path, is_folder=stored is None)
            entry["lastCommit"] = {"id": last.oid, "title": last.title, "date": _iso(last.date)}
        return entry

    def _tree(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        commit = self._revision(request, repo)
        folder = (request.params.get("path") or "").strip("/")
        folders = commit.folders()
        if folder and folder not in folders:
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound", **{"X-Repo-Commit": commit.oid})
        prefix = folder + "/" if folder else ""
        candidates = sorted(folders | set(commit.files))
        if request.flag("recursive"):
            paths = [p for p in candidates if p.startswith(prefix)]
        else:
            paths = [p for p in candidates if p.startswith(prefix) and "/" not in p[len(prefix) :]]
        # folders first, as the Hub does ("tree first")
        paths.sort(key=lambda p: (p in commit.files, p))
        expand = request.flag("expand")
        http.send_json([self._entry(repo, commit, p, expand=expand) for p in paths])

    def _paths_info(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        commit = self._revision(request, repo)
        if request.headers.get("content-type", "").startswith("application/json"):
            body = request.json()
            paths, expand = body.get("paths", []), bool(body.get("expand"))
        else:  # the client posts a form: paths=a&paths=b&expand=false
            form = parse_qs(request.body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand") or ["false"])[-1].lower() == "true"
        folders = commit.folders()
        existing = [p.strip("/") for p in paths if p.strip("/") in commit.files or p.strip("/") in folders]
        http.send_json([self._entry(repo, commit, p, expand=expand) for p in existing])

    def _refs(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)

        def ref(name: str, full: str, oid: str) -> dict[str, str]:
            return {"name": name, "ref": full, "targetCommit": oid}

        branches = {k: v for k, v in repo.branches.items() if not k.startswith("refs/")}
        payload: dict[str, Any] = {
            "branches": [ref(k, f"refs/heads/{k}", v) for k, v in sorted(branches.items())],
            "converts": [],
            "tags": [ref(k, f"refs/tags/{k}", v) for k, v in sorted(repo.tags.items())],
        }
        if request.flag("include_prs"):
            payload["pullRequests"] = [
                ref(k.rsplit("/", 1)[-1], k, v) for k, v in sorted(repo.branches.items()) if k.startswith("refs/pr/")
            ]
        http.send_json(payload)

    def _list_commits(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        history = self.store.history(repo, self._revision(request, repo))
        http.send_json(
            [
                {
                    "id": c.oid,
                    "title": c.title,
                    "message": c.message,
                    "date": _iso(c.date),
                    "authors": [{"user": c.author, "avatar": ""}],
                }
                for c in history
            ]
        )

    # -- resolve (downloads) ----------------------------------------------------------------

    def _resolve(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        commit = self._revision(request, repo)
        path = request.params["path"]
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", **{"X-Repo-Commit": commit.oid})
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{stored.git_oid}"',
            "Accept-Ranges": "bytes",
        }
        if stored.lfs:
            # On the Hub an LFS file answers with a redirect to its CDN copy and these headers;
            # serving the bytes straight away keeps the same metadata for the client.
            headers["X-Linked-Etag"] = f'"{stored.sha256}"'
            headers["X-Linked-Size"] = str(stored.size)
        span = _parse_range(request.headers.get("range"), stored.size)
        if request.method == "HEAD":
            http.send_bytes(b"", headers=headers, length=stored.size)
            return
        data = self.store.read_blob(stored.sha256)
        if span is None:
            http.send_bytes(data, headers=headers)
            return
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
        http.send_bytes(data[start : end + 1], status=HTTPStatus.PARTIAL_CONTENT, headers=headers)

    # -- writes -----------------------------------------------------------------------------

    def _preupload(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        revision = request.params["rev"]
        try:
            current = self.store.resolve(repo, revision).files
        except HubError:
            current = {}  # a commit may create the branch (create_pr); nothing to compare against
        answers = []
        for item in request.json().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            mode = self.store.upload_mode(repo, item["path"], int(item["size"]), sample)
            remote = current.get(item["path"])
            # the client skips unchanged files by comparing this oid with its own
            remote_oid = None if remote is None else (remote.sha256 if remote.lfs else remote.git_oid)
            answers.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": remote_oid})
        http.send_json({"files": answers})

    def _commit(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        header: dict[str, Any] = {}
        operations: list[CommitOperation] = []
        for line in request.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding: {value.get('encoding')}")
                operations.append(CommitOperation("file", value["path"], content=base64.b64decode(value["content"])))
            elif key == "lfsFile":
                operations.append(CommitOperation("lfsFile", value["path"], oid=value["oid"]))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append(CommitOperation(key, value["path"]))
            else:
                raise HubError(400, f"Unknown commit line key: {key}")
        if not header.get("summary"):
            raise HubError(400, "Commit summary is required")
        create_pr = request.flag("create_pr")
        commit, pr_number = self.store.commit(
            repo,
            revision=request.params["rev"],
            operations=operations,
            title=header["summary"],
            message=header.get("description", ""),
            parent_commit=header.get("parentCommit"),
            create_pr=create_pr,
        )
        base = f"{self.endpoint}/{repo.web_path}"
        http.send_json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{base}/commit/{commit.oid}",
                "hookOutput": "",
                "pullRequestUrl": f"{base}/discussions/{pr_number}" if pr_number else None,
            }
        )

    def _create_branch(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        body = request.json()
        self.store.create_branch(repo, request.params["branch"], body.get("startingPoint"))
        http.send_json({})

    def _delete_branch(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        self.store.delete_branch(repo, request.params["branch"])
        http.send_json({})

    def _create_tag(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        self.store.create_tag(repo, request.json()["tag"], request.params["rev"])
        http.send_json({})

    # -- LFS --------------------------------------------------------------------------------

    def _lfs_batch(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        body = request.json()
        if body.get("operation") != "upload":
            raise HubError(400, f"Unsupported LFS operation: {body.get('operation')}")
        verify_href = f"{self.endpoint}/{repo.web_path}.git/info/lfs/objects/verify"
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not _SHA256_RE.fullmatch(oid):
                answer["error"] = {"code": 422, "message": f"Invalid oid: {oid}"}
            elif self.store.has_lfs_object(repo, oid):
                pass  # already there: no "actions", the client skips the upload
            else:
                self.store.expect_upload(repo, oid, size)
                href = f"{self.endpoint}/lfs-upload/{repo.repo_type}/{repo.repo_id}/{oid}"
                answer["actions"] = {
                    "upload": {"href": href, "header": {}},
                    "verify": {"href": verify_href, "header": {}},
                }
            objects.append(answer)
        http.send_json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_put(self, http: _Handler, request: Request) -> None:
        # Like a pre-signed storage URL: no Authorization header, but only objects announced
        # through the (authenticated) batch call are accepted.
        repo = self._repo(request)
        oid = request.params["oid"]
        self.store.receive_upload(repo, oid, request.body)
        http.send_bytes(b"", headers={"ETag": f'"{oid}"'})

    def _lfs_verify(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        body = request.json()
        oid, size = body["oid"], int(body["size"])
        if not self.store.has_lfs_object(repo, oid):
            raise HubError(404, f"LFS object {oid} not found")
        if len(self.store.read_blob(oid)) != size:
            raise HubError(422, f"LFS object {oid} has a different size")
        http.send_json({"message": "Verified"})


# --------------------------------------------------------------------------------------------
# Pointing the client libraries at the hub
# --------------------------------------------------------------------------------------------

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE")


def _import_optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _set(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, value: Any) -> None:
    """Patch ``module.name`` if the installed release has it (names move between releases)."""
    if module is not None and hasattr(module, name):
        monkeypatch.setattr(module, name, value)


def hub_env(monkeypatch: pytest.MonkeyPatch, hub: LoopbackHub, home: str | Path | None = None) -> Path:
    """Point ``huggingface_hub``, ``transformers``, ``datasets`` and ``evaluate`` at ``hub``.

    Sets ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1``, ``HF_TOKEN`` (the hub's fake token) and fresh
    ``HF_HOME`` / ``HF_HUB_CACHE`` / ``HF_DATASETS_CACHE`` under ``home`` (a new folder inside the
    hub's storage when omitted), and clears the offline switches. The libraries copy most of these
    into module-level constants when they are imported, so those constants (and the cached API
    clients built from them) are patched too; ``monkeypatch`` undoes everything after the test.

    Call it again with another ``home`` to get a fresh client cache against the same hub (to
    prove that a download really came from the server). Returns the ``HF_HOME`` folder.

    ``HF_MODULES_CACHE`` (remote code) is left alone: transformers puts it on ``sys.path`` once
    per process, so it must be chosen before transformers is imported (e.g. in conftest.py).
    """
    home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="client-home-", dir=hub.root))
    hub_cache, datasets_cache = home / "hub", home / "datasets"
    for folder in (hub_cache, datasets_cache, home / "assets", home / "xet"):
        folder.mkdir(parents=True, exist_ok=True)
    endpoint = hub.endpoint

    # Import first so that patched constants are the ones these modules keep using, and so
    # that monkeypatch restores them (a first import under our env would leak the loopback URL).
    constants = importlib.import_module("huggingface_hub.constants")
    hf_api = importlib.import_module("huggingface_hub.hf_api")
    http_utils = _import_optional("huggingface_hub.utils._http")
    cache_manager = _import_optional("huggingface_hub.utils._cache_manager")
    cache_assets = _import_optional("huggingface_hub.utils._cache_assets")
    transformers_hub = _import_optional("transformers.utils.hub")
    datasets_config = _import_optional("datasets.config")
    # evaluate is not imported here: importing it pulls in transformers.pipelines (seconds), and
    # it only reads the endpoint to fetch Hub metrics. Patched when a test already imported it.
    evaluate_config = sys.modules.get("evaluate.config")

    environment = {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": hub.token,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_DATASETS_CACHE": str(datasets_cache),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    for key in (*_OFFLINE_VARIABLES, "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN"):
        monkeypatch.delenv(key, raising=False)

    # huggingface_hub: constants read at import time, and copies of them in other modules.
    for name, value in {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS | {"127.0.0.1"}),
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }.items():
        _set(monkeypatch, constants, name, value)
    _set(monkeypatch, cache_manager, "HF_HUB_CACHE", str(hub_cache))
    _set(monkeypatch, cache_assets, "HF_ASSETS_CACHE", str(home / "assets"))
    if http_utils is not None and hasattr(http_utils, "_HUB_ORIGINS"):
        # origins allowed to receive the token on redirects
        origins = frozenset(http_utils._HUB_ORIGINS | {http_utils._url_origin(endpoint)})
        monkeypatch.setattr(http_utils, "_HUB_ORIGINS", origins)
    # `huggingface_hub.create_repo` & co. are bound methods of one HfApi built at import time.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    monkeypatch.setattr(hf_api.api, "_whoami_cache", {})

    # transformers keeps one shared HfApi, built on first use: drop it so it is rebuilt here.
    _set(monkeypatch, transformers_hub, "_hf_api", None)

    if datasets_config is not None:
        for name, value in {
            "HF_ENDPOINT": endpoint,
            "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            # The parquet export lives on datasets-server.<endpoint host>: not on this hub.
            "USE_PARQUET_EXPORT": False,
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": datasets_cache,
            "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
            "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
        }.items():
            _set(monkeypatch, datasets_config, name, value)

    if evaluate_config is not None:
        for name, value in {
            "HF_ENDPOINT": endpoint,
            "HF_LIST_ENDPOINT": endpoint + "/api/spaces?filter={type}",
            "HUB_EVALUATE_URL": endpoint + "/spaces/{path}/resolve/{revision}/{name}",
            "HF_EVALUATE_OFFLINE": False,
        }.items():
            _set(monkeypatch, evaluate_config, name, value)

    # HfFileSystem instances are cached per (endpoint, token) with their directory listings.
    hf_file_system = importlib.import_module("huggingface_hub.hf_file_system")
    hf_file_system.HfFileSystem.clear_instance_cache()
    return home


@pytest.fixture
def loopback_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LoopbackHub]:
    """A started :class:`LoopbackHub` with the client libraries pointed at it (:func:`hub_env`).

    Fails the test at teardown if a client called a route the server does not implement, or if
    a handler crashed, so that such gaps are reported by name.
    """
    with LoopbackHub(tmp_path / "loopback-hub") as hub:
        hub_env(monkeypatch, hub, tmp_path / "hf-home")
        yield hub
        problems = [f"unhandled route: {method} {path}" for method, path in hub.unhandled] + hub.errors
        if problems:
            pytest.fail("loopback hub:\n" + "\n".join(problems), pytrace=False)
