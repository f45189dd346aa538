"""A loopback server that speaks the part of the Hugging Face Hub HTTP API our uploads and downloads use, for tests.

Tests cannot reach huggingface.co, yet uploads and downloads should go through the real `huggingface_hub` client (and
through `transformers` / `datasets` on top of it), not through mocks. `LoopbackHub` runs a small Hub look-alike on
`127.0.0.1` with the standard library only (`http.server.ThreadingHTTPServer` in a daemon thread):

* repositories (models and datasets) with a linear history on `main`: every commit gets a new 40-hex revision and a
  full snapshot of its files; file contents live on disk, content-addressed by sha256, under the hub's folder;
* the routes that `push_to_hub` (models, `Trainer`, datasets), `create_repo`, `upload_folder`, `from_pretrained` and
  `load_dataset` call: `repos/create`, `validate-yaml`, repo info, `tree`, `preupload`, the NDJSON `commit` (with the
  412 answer to a stale `parentCommit` that datasets' retry loop relies on), the LFS batch API with its upload and
  verify URLs, and `resolve` (HEAD and GET).

That is all it implements: branches, tags, pull requests, private repositories, deletions, `paths-info`, listings of
refs or commits and `Range` requests are not used by this project. A route the server does not know answers `501`
with the method and path in the body, and a known route asked for an option it does not implement answers `501`
naming the option; both are recorded in `LoopbackHub.unhandled`, and the `loopback_hub` fixture fails the test at
teardown if that list is not empty, so a new need is named instead of surfacing as an obscure client error.

Uploads must go through plain HTTP + LFS: the client only does that with `HF_HUB_DISABLE_XET` set, which `hub_env`
takes care of. `hub_env` also repoints the module-level constants and cached clients that the libraries build at
import time; some of those are private names (`_client_patches`), checked when `hub_env` starts: if an installed
release lacks one, the test is skipped with a reason that names it (the `test` extra of pyproject.toml pins the
releases this was tested with).

Typical use in a test:

    def test_roundtrip(loopback_hub, tmp_path, monkeypatch):
        api = HfApi()
        api.create_repo("me/model")
        api.upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id="me/model")
        assert loopback_hub.files("me/model") == {".gitattributes": ..., "a.txt": b"hi"}
        hub_env(monkeypatch, loopback_hub, tmp_path / "fresh")  # fresh client caches, same server
        ...
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import json
import logging
import re
import shutil
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset")
# URL prefix of each repo type on the web side (`/resolve`, LFS); models have none.
_WEB_PREFIX = {"model": "", "dataset": "datasets/"}
# Plural used by the `/api/{type}s/...` routes.
_API_TYPE = {"models": "model", "datasets": "dataset"}

# Files at least this large are stored with LFS, as on the Hub.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

# The `.gitattributes` the Hub writes in the first commit of a new repository. Its LFS patterns (plus the size
# threshold and a binary sniff) decide "regular" vs "lfs" uploads.
_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz *.onnx "
    "*.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar *.tflite *.tgz "
    "*.wasm *.xz *.zip *.zst *tfevents*"
)
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in _LFS_PATTERNS.split()
)

_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


# ---------------------------------------------------------------------------------------------------------------------
# Storage model
# ---------------------------------------------------------------------------------------------------------------------


def _git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's `oid` / ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class StoredFile:
    """One file of a snapshot. Contents are in the hub's blob store, keyed by `sha256`."""

    path: str
    size: int
    sha256: str
    lfs: bool
    # Git object id: of the content for regular files, of the LFS pointer for LFS files.
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
    def upload_oid(self) -> str:
        """The id the client compares with its own to skip an unchanged file: sha256 for LFS, git oid otherwise."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass(frozen=True)
class Commit:
    """An immutable revision: a full snapshot of the repository's files."""

    oid: str
    parent: str | None
    title: str
    message: str
    date: datetime
    files: Mapping[str, StoredFile]

    def folders(self) -> set[str]:
        """Every folder that holds at least one file (`""`, the root, excluded)."""
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def folder_oid(self, folder: str) -> str:
        """A stable id for a folder's content (the Hub reports git tree ids)."""
        prefix = folder + "/"
        listing = "\n".join(f"{p} {f.git_oid}" for p, f in sorted(self.files.items()) if p.startswith(prefix))
        return hashlib.sha1(f"tree {folder}\n{listing}".encode()).hexdigest()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    created_at: datetime
    commits: dict[str, Commit] = field(default_factory=dict)
    head: str = ""  # the commit `main` points at
    # LFS objects this repository may reference (uploaded to it, or already committed).
    lfs_oids: set[str] = field(default_factory=set)

    @property
    def web_path(self) -> str:
        return _WEB_PREFIX[self.repo_type] + self.repo_id


class HubError(Exception):
    """An HTTP error answered the way the Hub does (`X-Error-Code` drives the client's exception classes)."""

    def __init__(self, status: int, message: str, error_code: str | None = None, **headers: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers


class NotImplementedByLoopbackHub(HubError):
    """A request for something this server leaves out: answered 501 and recorded in `LoopbackHub.unhandled`."""

    def __init__(self, what: str):
        super().__init__(501, f"loopback hub: {what} is not implemented (only what this project uses is)")


def _repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")


@dataclass(frozen=True)
class CommitOperation:
    """One line of the NDJSON commit payload, decoded."""

    kind: str  # "file" | "lfsFile"
    path: str
    content: bytes | None = None
    oid: str | None = None


class HubStore:
    """Repositories, commits and blobs of one `LoopbackHub`. Thread-safe."""

    def __init__(self, root: Path):
        self.root = root
        self._blobs = root / "objects"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._repos: dict[tuple[str, str], Repo] = {}
        self._lock = threading.RLock()
        self._commit_counter = 0
        # LFS objects announced through the batch API and waiting for their PUT -> their size.
        self._pending_uploads: dict[tuple[str, str, str], int] = {}

    # -- blobs -------------------------------------------------------------------------------------------------------

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

    # -- repositories ------------------------------------------------------------------------------------------------

    def create_repo(self, repo_type: str, repo_id: str) -> tuple[Repo, bool]:
        """Create a repository with the Hub's initial commit; return it and whether it is new."""
        with self._lock:
            key = (repo_type, repo_id)
            if key in self._repos:
                return self._repos[key], False
            repo = Repo(repo_type, repo_id, datetime.now(timezone.utc))
            self._repos[key] = repo
            attributes = DEFAULT_GITATTRIBUTES.encode()
            self.put_blob(attributes)
            gitattributes = {".gitattributes": StoredFile.create(".gitattributes", attributes, lfs=False)}
            repo.head = self._new_commit(repo, None, gitattributes, "initial commit", "").oid
            return repo, True

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise _repo_not_found(repo_type, repo_id)
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        """`main` or a full commit id (what the clients pin after their first call) -> the commit."""
        with self._lock:
            if revision in ("main", "refs/heads/main"):
                return repo.commits[repo.head]
            if revision in repo.commits:
                return repo.commits[revision]
        if not _COMMIT_RE.fullmatch(revision):
            raise NotImplementedByLoopbackHub(f"revision {revision!r} (only `main` and full commit ids)")
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history(self, repo: Repo) -> list[Commit]:
        """The commits of `main`, newest first."""
        with self._lock:
            out = [repo.commits[repo.head]]
            while out[-1].parent is not None:
                out.append(repo.commits[out[-1].parent])
            return out

    # -- LFS uploads -------------------------------------------------------------------------------------------------

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

    # -- writes ------------------------------------------------------------------------------------------------------

    def _new_commit(
        self, repo: Repo, parent: str | None, files: dict[str, StoredFile], title: str, message: str
    ) -> Commit:
        self._commit_counter += 1
        now = datetime.now(timezone.utc)
        manifest = "\n".join(f"{p} {f.git_oid}" for p, f in sorted(files.items()))
        seed = f"{repo.repo_type}/{repo.repo_id}\n{parent}\n{title}\n{message}\n{now.isoformat()}"
        oid = hashlib.sha1(f"{seed}\n{self._commit_counter}\n{manifest}".encode()).hexdigest()
        commit = Commit(oid, parent, title, message, now, dict(files))
        repo.commits[oid] = commit
        repo.lfs_oids.update(f.sha256 for f in files.values() if f.lfs)
        return commit

    def upload_mode(self, repo: Repo, path: str, size: int, sample: bytes) -> str:
        """`"lfs"` or `"regular"`, decided like the Hub: .gitattributes, size, binary content."""
        if size >= LFS_SIZE_THRESHOLD or b"\0" in sample:
            return "lfs"
        attributes = self.resolve(repo, "main").files.get(".gitattributes")
        text = self.read_blob(attributes.sha256).decode() if attributes else DEFAULT_GITATTRIBUTES
        return "lfs" if _matches_lfs_attribute(text, path) else "regular"

    def commit(
        self, repo: Repo, operations: list[CommitOperation], title: str, message: str, parent_commit: str | None
    ) -> Commit:
        """Apply `operations` on top of `main`; return the new commit."""
        with self._lock:
            head = repo.commits[repo.head]
            if parent_commit is not None and parent_commit != head.oid:
                # The client relies on 412 to retry (datasets' push_to_hub does).
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for op in operations:
                if op.kind == "file":
                    assert op.content is not None
                    self.put_blob(op.content)
                    files[op.path] = StoredFile.create(op.path, op.content, lfs=False)
                elif not self.has_lfs_object(repo, op.oid):
                    raise HubError(422, f"LFS object {op.oid} for '{op.path}' was never uploaded to this repo")
                else:
                    files[op.path] = StoredFile.create(op.path, self.read_blob(op.oid), lfs=True)
            commit = self._new_commit(repo, head.oid, files, title, message)
            repo.head = commit.oid
            return commit


def _matches_lfs_attribute(gitattributes: str, path: str) -> bool:
    """Whether a `filter=lfs` line of `.gitattributes` matches `path` (last match wins)."""
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


# ---------------------------------------------------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------------------------------------------------

_SEG = r"[^/]+"
_REPO = rf"(?P<ns>{_SEG})/(?P<name>{_SEG})"
_API = rf"/api/(?P<api_type>models|datasets)/{_REPO}"
_WEB = rf"/(?:(?P<web_type>datasets)/)?{_REPO}"


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
    """Turns HTTP requests into calls on `LoopbackHub`'s route handlers."""

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
        hub._record_unhandled(method, self.path, "no route")
        self._send(501, f"loopback hub: no route for {method} {self.path}\n".encode(), "text/plain")

    def _run(self, handler: Callable[..., None], request: Request) -> None:
        hub = self.server.hub
        try:
            handler(self, request)
        except HubError as error:
            if isinstance(error, NotImplementedByLoopbackHub):
                hub._record_unhandled(request.method, self.path, error.message)
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

    def send_bytes(self, body: bytes, *, headers: Mapping[str, str] | None = None, length: int | None = None) -> None:
        self._send(200, body, "application/octet-stream", headers, length=length)


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: LoopbackHub):
        self.hub = hub
        super().__init__(("127.0.0.1", 0), _Handler)


# ---------------------------------------------------------------------------------------------------------------------
# The hub
# ---------------------------------------------------------------------------------------------------------------------


class LoopbackHub:
    """A Hugging Face Hub look-alike on `http://127.0.0.1:<random port>`.

    Args:
        root: where repositories and blobs are stored; a fresh temporary folder by default (removed by `stop`).
        user: the account the token belongs to (the namespace of a repository created without one).
        token: the only token accepted for writes; anyone may read.

    Use it as a context manager (`with LoopbackHub() as hub: ...`) or call `start` and `stop`. Point the client
    libraries at it with `hub_env`.
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
        self.store = HubStore(self.root / "storage")
        # (method, raw path, why) of every request the server had no route or no implementation for.
        self.unhandled: list[tuple[str, str, str]] = []
        # Tracebacks of handler crashes (answered 500).
        self.errors: list[str] = []
        # (method, raw path) of every routed request, in order (handy to see what a client did).
        self.requests: list[tuple[str, str]] = []
        self.routes = self._build_routes()
        self._server: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------------

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
        """The value for `HF_ENDPOINT`: `http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    # -- helpers for tests -------------------------------------------------------------------------------------------

    def repo_url(self, repo_id: str, repo_type: str = "model") -> str:
        return f"{self.endpoint}/{_WEB_PREFIX[repo_type]}{repo_id}"

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """Path -> content of every file at the head of `main`."""
        commit = self.store.resolve(self.store.get_repo(repo_type, repo_id), "main")
        return {path: self.store.read_blob(f.sha256) for path, f in sorted(commit.files.items())}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        """The history of `main`, newest first (the last one is the "initial commit")."""
        return self.store.history(self.store.get_repo(repo_type, repo_id))

    def lfs_files(self, repo_id: str, repo_type: str = "model") -> set[str]:
        """Paths stored with LFS at the head of `main`."""
        commit = self.store.resolve(self.store.get_repo(repo_type, repo_id), "main")
        return {p for p, f in commit.files.items() if f.lfs}

    def _record_unhandled(self, method: str, path: str, why: str) -> None:
        self.unhandled.append((method, path, why))
        logger.error("loopback hub: %s %s answered 501: %s", method, path, why)

    # -- routing -----------------------------------------------------------------------------------------------------

    def _build_routes(self) -> list[Route]:
        table: list[tuple[str, str, Callable[..., None]]] = [
            ("POST", r"/api/repos/create", self._create_repo),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("GET", rf"{_API}(?:/revision/(?P<rev>{_SEG}))?", self._repo_info),
            ("GET", rf"{_API}/tree/(?P<rev>{_SEG})(?:/(?P<path>.*))?", self._tree),
            ("POST", rf"{_API}/preupload/(?P<rev>{_SEG})", self._preupload),
            ("POST", rf"{_API}/commit/(?P<rev>{_SEG})", self._commit),
            ("POST", rf"{_WEB}\.git/info/lfs/objects/batch", self._lfs_batch),
            ("POST", rf"{_WEB}\.git/info/lfs/objects/verify", self._lfs_verify),
            ("PUT", rf"/lfs-upload/(?P<repo_type>model|dataset)/{_REPO}/(?P<oid>[0-9a-f]{{64}})", self._lfs_put),
            ("HEAD", rf"{_WEB}/resolve/(?P<rev>{_SEG})/(?P<path>.+)", self._resolve),
            ("GET", rf"{_WEB}/resolve/(?P<rev>{_SEG})/(?P<path>.+)", self._resolve),
        ]
        return [Route(method, re.compile(pattern), handler) for method, pattern, handler in table]

    # -- request helpers ---------------------------------------------------------------------------------------------

    def _require_token(self, request: Request) -> None:
        if request.token != self.token:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, request: Request, *, write: bool = False) -> Repo:
        """The repository a route names."""
        p = request.params
        if "api_type" in p:
            repo_type = _API_TYPE[p["api_type"]]
        elif "repo_type" in p:
            repo_type = p["repo_type"]
        else:
            repo_type = "dataset" if p.get("web_type") else "model"
        if write:
            self._require_token(request)
        return self.store.get_repo(repo_type, f"{p['ns']}/{p['name']}")

    def _revision(self, request: Request, repo: Repo) -> Commit:
        return self.store.resolve(repo, request.params.get("rev") or "main")

    # -- repositories ------------------------------------------------------------------------------------------------

    def _create_repo(self, http: _Handler, request: Request) -> None:
        self._require_token(request)
        body = request.json()
        repo_type = body.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise NotImplementedByLoopbackHub(f"repo type {repo_type!r}")
        if body.get("private") is True or body.get("visibility") == "private":
            raise NotImplementedByLoopbackHub("a private repository")
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        _, created = self.store.create_repo(repo_type, repo_id)
        url = self.repo_url(repo_id, repo_type)
        if not created:
            payload = {"error": f"You already created this {repo_type} repo", "url": url}
            http.send_json(payload, status=409, headers={"X-Error-Message": payload["error"]})
            return
        http.send_json({"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, http: _Handler, request: Request) -> None:
        # The Hub checks the card metadata against its schema; accepting it keeps this server standard-library only
        # (no YAML parser).
        http.send_json({"errors": [], "warnings": []})

    def _repo_info(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        commit = self._revision(request, repo)
        if request.flag("blobs"):
            raise NotImplementedByLoopbackHub("repo info with blobs=true")
        http.send_json(
            {
                "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": _iso(commit.date),
                "createdAt": _iso(repo.created_at),
                "private": False,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
                "usedStorage": sum(f.size for f in commit.files.values()),
            }
        )

    def _tree(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        commit = self._revision(request, repo)
        if request.flag("expand"):
            raise NotImplementedByLoopbackHub("tree with expand=true (last commits)")
        folder = (request.params.get("path") or "").strip("/")
        folders = commit.folders()
        if folder and folder not in folders:
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound", **{"X-Repo-Commit": commit.oid})
        prefix = folder + "/" if folder else ""
        paths = [p for p in sorted(folders | set(commit.files)) if p.startswith(prefix)]
        if not request.flag("recursive"):
            paths = [p for p in paths if "/" not in p[len(prefix) :]]
        paths.sort(key=lambda p: (p in commit.files, p))  # folders first, as the Hub does
        entries = []
        for path in paths:
            stored = commit.files.get(path)
            if stored is None:
                entries.append({"type": "directory", "oid": commit.folder_oid(path), "size": 0, "path": path})
                continue
            entry: dict[str, Any] = {"type": "file", "oid": stored.git_oid, "size": stored.size, "path": path}
            if stored.lfs:
                entry["lfs"] = {"oid": stored.sha256, "size": stored.size, "pointerSize": stored.pointer_size}
            entries.append(entry)
        http.send_json(entries)

    # -- resolve (downloads) -----------------------------------------------------------------------------------------

    def _resolve(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request)
        commit = self._revision(request, repo)
        path = request.params["path"]
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", **{"X-Repo-Commit": commit.oid})
        if request.headers.get("range"):
            raise NotImplementedByLoopbackHub("a Range request")
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.git_oid}"'}
        if stored.lfs:
            # On the Hub an LFS file answers with a redirect to its CDN copy and these headers; serving the bytes
            # straight away keeps the same metadata for the client.
            headers["X-Linked-Etag"] = f'"{stored.sha256}"'
            headers["X-Linked-Size"] = str(stored.size)
        if request.method == "HEAD":
            http.send_bytes(b"", headers=headers, length=stored.size)
        else:
            http.send_bytes(self.store.read_blob(stored.sha256), headers=headers)

    # -- writes ------------------------------------------------------------------------------------------------------

    def _writable_main(self, request: Request) -> Repo:
        repo = self._repo(request, write=True)
        if request.params["rev"] not in ("main", "refs/heads/main"):
            raise NotImplementedByLoopbackHub(f"writing to revision {request.params['rev']!r} (only `main`)")
        return repo

    def _preupload(self, http: _Handler, request: Request) -> None:
        repo = self._writable_main(request)
        current = self.store.resolve(repo, "main").files
        answers = []
        for item in request.json().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            mode = self.store.upload_mode(repo, item["path"], int(item["size"]), sample)
            remote = current.get(item["path"])
            # the client skips unchanged files by comparing this oid with its own
            remote_oid = None if remote is None else remote.upload_oid
            answers.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": remote_oid})
        http.send_json({"files": answers})

    def _commit(self, http: _Handler, request: Request) -> None:
        repo = self._writable_main(request)
        if request.flag("create_pr"):
            raise NotImplementedByLoopbackHub("a commit with create_pr=true")
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
            else:
                raise NotImplementedByLoopbackHub(f"the commit operation {key!r}")
        if not header.get("summary"):
            raise HubError(400, "Commit summary is required")
        commit = self.store.commit(
            repo, operations, header["summary"], header.get("description", ""), header.get("parentCommit")
        )
        base = f"{self.endpoint}/{repo.web_path}"
        http.send_json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{base}/commit/{commit.oid}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    # -- LFS ---------------------------------------------------------------------------------------------------------

    def _lfs_batch(self, http: _Handler, request: Request) -> None:
        repo = self._repo(request, write=True)
        body = request.json()
        if body.get("operation") != "upload":
            raise NotImplementedByLoopbackHub(f"the LFS operation {body.get('operation')!r}")
        verify_href = f"{self.endpoint}/{repo.web_path}.git/info/lfs/objects/verify"
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not _SHA256_RE.fullmatch(oid):
                answer["error"] = {"code": 422, "message": f"Invalid oid: {oid}"}
            elif not self.store.has_lfs_object(repo, oid):  # one already there gets no "actions": not uploaded
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
        # Like a pre-signed storage URL: no Authorization header, but only objects announced through the
        # (authenticated) batch call are accepted.
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


# ---------------------------------------------------------------------------------------------------------------------
# Pointing the client libraries at the hub
# ---------------------------------------------------------------------------------------------------------------------

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def _client_patches(endpoint: str, hub_cache: Path, datasets_cache: Path) -> dict[str, dict[str, Any]]:
    """Module -> name -> value: what the libraries copied from the environment at import time, or built from it once.

    Public module constants and private names alike may move between releases: `hub_env` checks that they all exist
    before it patches anything.
    """
    return {
        "huggingface_hub.constants": {
            "ENDPOINT": endpoint,
            "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_OFFLINE": False,
            "HF_HUB_CACHE": str(hub_cache),
        },
        # `huggingface_hub.create_repo` & co. are bound methods of this one HfApi, built at import time.
        "huggingface_hub.hf_api.api": {"endpoint": endpoint},
        # transformers keeps one shared HfApi, built on first use (a private name): rebuilt against this endpoint.
        "transformers.utils.hub": {"_hf_api": None},
        "datasets.config": {
            "HF_ENDPOINT": endpoint,
            "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_HUB_OFFLINE": False,
            # The parquet export lives on datasets-server.<endpoint host>: not on this hub.
            "USE_PARQUET_EXPORT": False,
            "HF_DATASETS_CACHE": datasets_cache,
        },
    }


def _resolve_or_skip(patches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The objects `patches` names (`"a.b.c"`: attribute `c` of module `a.b` where `a.b.c` is no module), imported.

    Skips the calling test, naming every missing name and the installed releases, when one is absent: these names are
    not a stable API, and a silently unpatched one would send a test's requests elsewhere (the `test` extra of
    pyproject.toml pins the releases this was tested with).
    """
    targets, missing = {}, []
    for dotted, values in patches.items():
        try:
            target = importlib.import_module(dotted)
        except ModuleNotFoundError:
            module_name, _, attribute = dotted.rpartition(".")
            target = getattr(importlib.import_module(module_name), attribute, None)
        if target is None:
            missing.append(dotted)
            continue
        targets[dotted] = target
        missing += [f"{dotted}.{name}" for name in values if not hasattr(target, name)]
    if missing:
        releases = ", ".join(
            f"{name} {importlib.metadata.version(name)}" for name in ("huggingface_hub", "transformers", "datasets")
        )
        pytest.skip(f"the loopback hub cannot point {releases} at itself: they lack {', '.join(missing)}")
    return targets


def hub_env(monkeypatch: pytest.MonkeyPatch, hub: LoopbackHub, home: str | Path | None = None) -> Path:
    """Point `huggingface_hub`, `transformers` and `datasets` at `hub`.

    Sets `HF_ENDPOINT`, `HF_HUB_DISABLE_XET=1`, `HF_TOKEN` (the hub's fake token) and fresh `HF_HOME` / `HF_HUB_CACHE`
    / `HF_DATASETS_CACHE` under `home` (a new folder inside the hub's storage when omitted), and clears the offline
    switches. The libraries copy some of these into module-level constants when they are imported, so those constants
    and the API clients built from them are patched too (`_client_patches`); `monkeypatch` undoes everything after the
    test. Skips the test, naming what is missing, if an installed release lacks one of those names.

    Call it again with another `home` to get a fresh client cache against the same hub (to prove that a download
    really came from the server). Returns the `HF_HOME` folder.

    `HF_MODULES_CACHE` (remote code) is left alone: transformers puts it on `sys.path` once per process, so it must be
    chosen before transformers is imported (tests/conftest.py does).
    """
    home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="client-home-", dir=hub.root))
    hub_cache, datasets_cache = home / "hub", home / "datasets"
    patches = _client_patches(hub.endpoint, hub_cache, datasets_cache)
    # Imported before the environment changes, so that the patched constants are the ones these modules keep using
    # and monkeypatch restores them (a first import under our environment would leak the loopback URL).
    targets = _resolve_or_skip(patches)
    for folder in (hub_cache, datasets_cache):
        folder.mkdir(parents=True, exist_ok=True)

    environment = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": hub.token,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_DATASETS_CACHE": str(datasets_cache),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    for key in (*_OFFLINE_VARIABLES, "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for dotted, values in patches.items():
        for name, value in values.items():
            monkeypatch.setattr(targets[dotted], name, value)

    # HfFileSystem instances (datasets reads Hub files through them) are cached per endpoint and token.
    importlib.import_module("huggingface_hub").HfFileSystem.clear_instance_cache()
    return home


@pytest.fixture
def loopback_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LoopbackHub]:
    """A started `LoopbackHub` with the client libraries pointed at it (`hub_env`).

    Fails the test at teardown if a client called a route or an option the server does not implement, or if a handler
    crashed, so that such gaps are reported by name.
    """
    with LoopbackHub(tmp_path / "loopback-hub") as hub:
        hub_env(monkeypatch, hub, tmp_path / "hf-home")
        yield hub
        problems = [f"not implemented: {method} {path} ({why})" for method, path, why in hub.unhandled] + hub.errors
        if problems:
            pytest.fail("loopback hub:\n" + "\n".join(problems), pytrace=False)
