"""A small Hugging Face Hub look-alike on 127.0.0.1, for tests.

Why it exists: textinv talks to the Hub through the real `huggingface_hub` client, and no machine
that runs the tests can reach the Hub. So the tests point that client at this server, which stores
repos on disk and answers the part of the Hub's HTTP API that huggingface_hub 2.4 uses for whoami,
create_repo, uploads (inline "regular" files and, optionally, the LFS batch protocol), downloads,
list_models, model_info, tree listings and commit history.

It is a test double, not a Hub: one process, a handful of tokens, branches other than `main`
cannot be created, pull requests are refused. It is strict where the client depends on exact
answers (status codes, `X-Error-Code`, `X-Repo-Commit`, `ETag`, `Content-Length`), because a
sloppy answer makes the client fall back to its cache and raise misleading errors.

On disk, under `root`:

    blobs/<sha256>                              file contents, shared by all repos (content-addressed)
    repos/<models|datasets|spaces>/<ns>/<name>/
        repo.json                               visibility, creation date
        refs/main                               the branch head: a 40-hex commit id
        commits/<id>.json                       one full snapshot per commit: parents, message,
                                                author, date, {path: file entry}

Usage:

    with HubServer(tmp_path / "hub", default_users()) as server:
        api = HfApi(endpoint=server.endpoint, token=ALICE_WRITE)

or the `hub` fixture at the bottom of this module (conftest.py makes it available to every test).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, unquote, urlencode

import pytest

# --------------------------------------------------------------------------------------------
# Users and tokens
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """The account a token belongs to.

    `HubServer` takes a dict *token -> User*: one account can have several tokens, e.g. a write
    token and a read-only one (`write=False`, reported as `role: "read"` by whoami). Members of an
    org may create, commit to and see private repos in that org's namespace.
    """

    name: str
    orgs: tuple[str, ...] = ()
    write: bool = True
    fullname: str = ""
    email: str = ""

    def is_member(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs


ORG = "textinv-org"
ALICE_WRITE = "hf_alice_write"
ALICE_READ = "hf_alice_read"
BOB_WRITE = "hf_bob_write"


def default_users() -> dict[str, User]:
    """The accounts the `hub` fixture starts with (token -> user)."""
    return {
        ALICE_WRITE: User("alice", orgs=(ORG,), write=True, fullname="Alice", email="alice@example.test"),
        ALICE_READ: User("alice", orgs=(ORG,), write=False, fullname="Alice", email="alice@example.test"),
        BOB_WRITE: User("bob", write=True, fullname="Bob", email="bob@example.test"),
    }


# --------------------------------------------------------------------------------------------
# Small helpers: hashes, dates, names
# --------------------------------------------------------------------------------------------

TYPE_BY_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")

# What a new repo's first commit holds, as on the Hub (shortened list of patterns).
INITIAL_GITATTRIBUTES = b"".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n".encode()
    for ext in ("bin", "ckpt", "h5", "msgpack", "onnx", "pt", "pth", "safetensors", "tar.gz", "zip")
)


def git_blob_oid(data: bytes) -> str:
    """The git object id of a file: what the Hub reports as `oid` for regular files, and what the
    client compares against (`sha.git_hash`) to skip uploading unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that stands for an LFS file in git (its sha1 is the tree oid)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now_iso() -> str:
    """Dates as the Hub writes them; the client's `parse_datetime` accepts this exact shape."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so concurrent readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check_repo_path(path: str) -> str:
    """Reject paths that could not exist in a git tree (absolute, `..`, empty segments)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or ".git" in parts:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


# --------------------------------------------------------------------------------------------
# README front matter: a tiny YAML subset
# --------------------------------------------------------------------------------------------


def parse_front_matter(text: str) -> dict[str, Any]:
    """Read the metadata block of a README (between the first two `---` lines).

    Why a hand-written subset: the standard library has no YAML, and cards written by textinv
    (and most cards) only use `key: scalar`, `key: [a, b]`, block lists (`- item`) and one level of
    nested `key: value`. Deeper structures are read loosely (best effort), never rejected; only a
    block that is opened and never closed is an error, which validate-yaml reports.
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].rstrip() == "---")
    except StopIteration:
        raise ValueError("The metadata block starts with '---' but is never closed by another '---' line.")

    data: dict[str, Any] = {}
    key: str | None = None  # top-level key whose value continues on indented lines
    item_indent = 0
    for line in lines[1:end]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0 and not stripped.startswith("- "):
            k, sep, value = stripped.partition(":")
            key = k.strip().strip("'\"") if sep else None
            if key is not None:
                data[key] = _yaml_value(value.strip()) if value.strip() else None
                if value.strip():
                    key = None
            continue
        if key is None:
            continue
        current = data[key]
        if stripped == "-" or stripped.startswith("- "):
            if current is None:
                current = data[key] = []
            if isinstance(current, list):
                item = stripped[1:].strip()
                current.append(_yaml_pair(item) if _looks_like_pair(item) else _yaml_value(item))
                item_indent = indent
        elif _looks_like_pair(stripped):
            if current is None:
                current = data[key] = {}
            if isinstance(current, dict):
                current.update(_yaml_pair(stripped))
            elif isinstance(current, list) and current and isinstance(current[-1], dict) and indent > item_indent:
                current[-1].update(_yaml_pair(stripped))
    return data


def _looks_like_pair(item: str) -> bool:
    return bool(re.match(r"""[^'"\[{][^:]*:(\s|$)""", item))


def _yaml_pair(item: str) -> dict[str, Any]:
    k, _, value = item.partition(":")
    return {k.strip(): _yaml_value(value.strip()) if value.strip() else None}


def _yaml_value(value: str) -> Any:
    """A YAML scalar or flow list (`[a, b]`)."""
    if value[:1] not in ("'", '"'):
        value = re.sub(r"\s+#.*$", "", value)  # trailing comment
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1].strip()
        return [_yaml_value(v.strip()) for v in inner.split(",")] if inner else []
    if value == "{}":
        return {}
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return value[1:-1]
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~"):
        return None
    if re.fullmatch(r"[-+]?\d+", value):
        return int(value)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", value):
        return float(value)
    return value


def card_tags(card: dict[str, Any]) -> list[str]:
    """`tags:` from the card (a list, or one string). The Hub adds computed tags (library,
    license, ...); this server keeps exactly the card's, which keeps filters predictable."""
    tags = card.get("tags")
    if isinstance(tags, str):
        return [tags]
    if isinstance(tags, list):
        return [str(t) for t in tags if t is not None]
    return []


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


class BlobStore:
    """File contents keyed by sha256 (which is also the LFS oid), shared by every repo."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def has(self, sha256: str) -> bool:
        return bool(SHA256_RE.fullmatch(sha256)) and (self.root / sha256).is_file()

    def size(self, sha256: str) -> int:
        return (self.root / sha256).stat().st_size

    def read(self, sha256: str) -> bytes:
        return (self.root / sha256).read_bytes()

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not (self.root / sha256).is_file():
            atomic_write(self.root / sha256, data)
        return sha256


class Repo:
    """One repo on disk: metadata, branch refs and immutable commit snapshots.

    A file entry is `{"sha256", "size", "lfs", "oid"}`: `sha256` keys the blob store, `oid` is the
    git oid the tree listing shows (of the content, or of the LFS pointer for LFS files).
    """

    def __init__(self, path: Path, repo_type: str, repo_id: str):
        self.path = path
        self.repo_type = repo_type
        self.repo_id = repo_id

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "repo.json").read_text())

    @property
    def private(self) -> bool:
        return bool(self.meta["private"])

    def branches(self) -> dict[str, str]:
        """Branch name -> head commit id. Read from the directory listing, so a revision from a
        URL is only ever compared with names, never joined into a path."""
        return {p.name: p.read_text().strip() for p in (self.path / "refs").iterdir() if not p.name.startswith(".")}

    def resolve(self, revision: str) -> str | None:
        """A branch name or a full commit id -> commit id, or None."""
        branches = self.branches()
        if revision in branches:
            return branches[revision]
        if re.fullmatch(r"[0-9a-f]{40}", revision) and (self.path / "commits" / f"{revision}.json").is_file():
            return revision
        return None

    def commit(self, commit_id: str) -> dict[str, Any]:
        return json.loads((self.path / "commits" / f"{commit_id}.json").read_text())

    def files(self, commit_id: str) -> dict[str, dict[str, Any]]:
        return self.commit(commit_id)["files"]

    def history(self, commit_id: str) -> list[dict[str, Any]]:
        """Commits reachable from `commit_id`, newest first (history is linear here)."""
        out = []
        current: str | None = commit_id
        while current:
            commit = self.commit(current)
            out.append(commit)
            current = commit["parents"][0] if commit["parents"] else None
        return out

    def add_commit(
        self, branch: str, parent: str | None, files: dict[str, dict], title: str, message: str, author: str
    ) -> str:
        """Write a snapshot and move the branch to it. Callers hold the server lock."""
        commit = {
            "parents": [parent] if parent else [],
            "title": title,
            "message": message,
            "authors": [author],
            "date": now_iso(),
            "files": dict(sorted(files.items())),
        }
        seed = json.dumps({**commit, "nonce": time.time_ns()}, sort_keys=True).encode()
        commit_id = hashlib.sha1(seed).hexdigest()
        commit["id"] = commit_id
        atomic_write(self.path / "commits" / f"{commit_id}.json", json.dumps(commit, indent=1).encode())
        atomic_write(self.path / "refs" / branch, commit_id.encode())
        return commit_id


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class HubServer:
    """The Hub look-alike: storage, accounts, and an HTTP server on 127.0.0.1 (free port).

    Args:
        root: directory for repos and blobs (created if missing).
        users: token -> `User`. Any other token is answered 401.
        lfs_suffixes: file name endings that preupload answers "lfs" for (e.g. `(".bin",)`); the
            client then uses the LFS batch endpoint and PUTs the bytes here. Every other file is
            "regular" (inlined in the commit), so by default neither LFS nor xet is involved.
            LFS mode needs xet off in the client (see `disable_xet`).
        page_size: entries per page of list_models / tree / commits; more pages are announced
            with a `Link: <...>; rel="next"` header, as the Hub does.

    Attributes for tests: `endpoint`, `requests` (every `(method, raw path without query)` in
    arrival order), `errors` (exceptions raised inside routes; they are answered 500, which the
    client retries for ~23 s, so assert `server.errors == []` when something hangs).
    """

    def __init__(
        self,
        root: Path,
        users: dict[str, User],
        *,
        lfs_suffixes: tuple[str, ...] = (),
        page_size: int = 1000,
    ):
        self.root = Path(root)
        self.users = dict(users)
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.page_size = page_size
        self.blobs = BlobStore(self.root / "blobs")
        self.requests: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []
        self.lock = threading.RLock()
        self.pending_lfs: dict[str, int] = {}  # oid -> size announced to the batch endpoint
        self._endpoint: str | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "HubServer":
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.hub = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting (the short poll interval keeps this fast) and close kept-alive
        connections too: otherwise the client's pooled connection would still be served by a
        lingering handler thread, and a "stopped" server would keep answering."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:PORT`; stays set after `stop()`, to point a client at a dead server."""
        if self._endpoint is None:
            raise RuntimeError("HubServer was never started")
        return self._endpoint

    def api(self, token: str | None = None):
        """An `HfApi` pointed at this server (explicit endpoint, nothing read from the env)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=token)

    # -- repos -------------------------------------------------------------------------------

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def get_repo(self, repo_type: str, repo_id: str) -> Repo | None:
        ns, _, name = repo_id.partition("/")
        if not (NAME_RE.fullmatch(ns) and NAME_RE.fullmatch(name)):
            return None
        path = self._repo_dir(repo_type, repo_id)
        return Repo(path, repo_type, repo_id) if (path / "repo.json").is_file() else None

    def iter_repos(self, repo_type: str) -> Iterator[Repo]:
        base = self.root / "repos" / f"{repo_type}s"
        for meta in sorted(base.glob("*/*/repo.json")):
            yield Repo(meta.parent, repo_type, f"{meta.parent.parent.name}/{meta.parent.name}")

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool, creator: str) -> Repo:
        """Create the repo with a first commit holding `.gitattributes`, as the Hub does, so
        `main` always exists and a new repo can be downloaded/listed right away."""
        path = self._repo_dir(repo_type, repo_id)
        (path / "refs").mkdir(parents=True, exist_ok=True)
        meta = {"id": repo_id, "type": repo_type, "private": private, "createdAt": now_iso(), "creator": creator}
        atomic_write(path / "repo.json", json.dumps(meta, indent=1).encode())
        repo = Repo(path, repo_type, repo_id)
        files = {".gitattributes": self.file_entry(self.blobs.put(INITIAL_GITATTRIBUTES), lfs=False)}
        repo.add_commit("main", None, files, "initial commit", "", creator)
        return repo

    def file_entry(self, sha256: str, *, lfs: bool) -> dict[str, Any]:
        size = self.blobs.size(sha256)
        oid = git_blob_oid(lfs_pointer(sha256, size) if lfs else self.blobs.read(sha256))
        return {"sha256": sha256, "size": size, "lfs": lfs, "oid": oid}

    def card(self, files: dict[str, dict]) -> dict[str, Any]:
        """The README's metadata at a commit ({} when absent or unreadable)."""
        entry = files.get("README.md")
        if entry is None:
            return {}
        try:
            return parse_front_matter(self.blobs.read(entry["sha256"]).decode("utf-8", "replace"))
        except ValueError:
            return {}


# --------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------


class HubError(Exception):
    """An error answer. `code` becomes `X-Error-Code`, which the client maps to its exception
    types (RepoNotFound, RevisionNotFound, EntryNotFound); `extra` is merged into the JSON body."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., None]]] = []


def route(method: str, pattern: str) -> Callable:
    """Register a handler method for `method` and a regex on the *raw* (still quoted) path.

    Why raw: the client quotes revisions with `safe=""` (`refs%2Fpr%2F1`) and tree paths the
    same way, so unquoting first would turn one segment into several. Groups are unquoted after
    matching. "GET" routes also answer HEAD (without a body)."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        _ROUTES.append((method, re.compile(pattern), fn))
        return fn

    return register


TYPE = r"(?P<plural>models|datasets|spaces)"
REPO = r"(?P<ns>[^/]+)/(?P<name>[^/]+)"
REV = r"(?P<rev>[^/]+)"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: connections reset by the client or by `stop()` are normal. Anything else is a
        bug in this module, kept in `HubServer.errors` rather than printed."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.hub.errors.append(error)  # type: ignore[attr-defined]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    disable_nagle_algorithm = True  # else every keep-alive request stalls ~40 ms
    server_version = "textinv-test-hub/1.0"
    timeout = 60  # idle keep-alive handler threads give up eventually

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        self.hub._connections.add(self.connection)

    def finish(self) -> None:
        self.hub._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests assert on `HubServer.requests` instead of reading stderr."""

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

    def _dispatch(self, method: str) -> None:
        raw_path, _, query = self.path.partition("?")
        self.hub.requests.append((method, raw_path))
        self.query = parse_qs(query, keep_blank_values=True)
        try:
            # Read the body first, always: an unread body would corrupt the kept-alive connection.
            self.body = self._read_body()
            for route_method, pattern, handler in _ROUTES:
                match = pattern.fullmatch(raw_path)
                if match and (route_method == method or (route_method == "GET" and method == "HEAD")):
                    args = {k: unquote(v) if v is not None else None for k, v in match.groupdict().items()}
                    handler(self, **args)
                    return
            raise HubError(404, f"No such endpoint on this test hub: {method} {raw_path}")
        except HubError as error:
            self._send_error(error)
        except Exception as error:  # a bug in this server: record it, answer 500
            self.hub.errors.append(error)
            self._send_error(HubError(500, f"test hub crashed: {type(error).__name__}: {error}"))

    def _read_body(self) -> bytes:
        """The request body, with Content-Length or chunked transfer encoding (streamed uploads)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            raise HubError(400, "Request body must be a JSON object")
        return body

    def _arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def _flag(self, name: str) -> bool:
        return (self._arg(name) or "").lower() in ("1", "true", "yes")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Every answer has an exact Content-Length (keep-alive, and the client reads file sizes
        from it); HEAD gets the same headers and no body."""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self._send(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def _send_error(self, error: HubError) -> None:
        header_message = error.message.replace("\n", " ").encode("latin-1", "replace").decode("latin-1")
        headers = {"X-Error-Message": header_message, **error.headers}
        if error.code:
            headers["X-Error-Code"] = error.code
        self._send_json(error.status, {"error": error.message, **error.extra}, headers)

    def _send_page(self, items: list[Any]) -> None:
        """One page of `items` from `?cursor=N`, with a `Link: rel="next"` header if more remain."""
        start = int(self._arg("cursor") or 0)
        end = start + self.hub.page_size
        headers = {}
        if end < len(items):
            query = {k: v for k, v in self.query.items() if k != "cursor"}
            query["cursor"] = [str(end)]
            raw_path = self.path.partition("?")[0]
            headers["Link"] = f'<{self.hub.endpoint}{raw_path}?{urlencode(query, doseq=True)}>; rel="next"'
        self._send_json(200, items[start:end], headers)

    # -- who is calling, and what may they do ------------------------------------------------

    def _caller(self) -> User | None:
        """The token's user; None without a token. An unknown token is 401 with the Hub's exact
        message, which the client needs to raise a plain HfHubHTTPError (not RepositoryNotFound)."""
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        user = self.hub.users.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _require_user(self) -> User:
        user = self._caller()
        if user is None:
            raise HubError(401, "You must be authenticated (Authorization: Bearer <token>) to do this")
        return user

    def _require_write(self, user: User, namespace: str, action: str) -> None:
        if not user.write:
            raise HubError(403, f"Your token for {user.name} is read-only (role: read): it cannot {action}")
        if not user.is_member(namespace):
            raise HubError(403, f'You don\'t have the rights to {action} under the namespace "{namespace}"')

    def _can_see(self, repo: Repo, user: User | None) -> bool:
        return not repo.private or (user is not None and user.is_member(repo.namespace))

    def _visible_repo(self, repo_type: str, ns: str, name: str, user: User | None) -> Repo:
        """The repo, or 404 RepoNotFound: missing and private-to-others look the same."""
        repo = self.hub.get_repo(repo_type, f"{ns}/{name}")
        if repo is None or not self._can_see(repo, user):
            raise HubError(404, "Repository not found", code="RepoNotFound")
        return repo

    def _writable_repo(self, repo_type: str, ns: str, name: str, action: str) -> tuple[Repo, User]:
        user = self._require_user()
        repo = self._visible_repo(repo_type, ns, name, user)
        self._require_write(user, repo.namespace, action)
        return repo, user

    def _resolve(self, repo: Repo, revision: str) -> str:
        commit_id = repo.resolve(revision)
        if commit_id is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit_id

    # -- account -----------------------------------------------------------------------------

    @route("GET", r"/api/whoami-v2")
    def route_whoami(self) -> None:
        user = self._require_user()
        role = "write" if user.write else "read"
        self._send_json(
            200,
            {
                "type": "user",
                "id": hashlib.sha1(user.name.encode()).hexdigest()[:24],
                "name": user.name,
                "fullname": user.fullname or user.name,
                "email": user.email or f"{user.name}@example.test",
                "emailVerified": True,
                "isPro": False,
                "orgs": [{"type": "org", "name": org, "fullname": org, "roleInOrg": "write"} for org in user.orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": f"{user.name}-{role}", "role": role}},
            },
        )

    # -- creating repos, uploading, committing -----------------------------------------------

    @route("POST", r"/api/repos/create")
    def route_create_repo(self) -> None:
        """409 (with `url`, which `exist_ok=True` reads) when the repo exists and the caller can
        see it; 403 for a namespace the caller is not in or a read-only token."""
        user = self._require_user()
        body = self._json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type!r}")
        name = body.get("name") or ""
        namespace = body.get("organization") or user.name
        if not (NAME_RE.fullmatch(str(name)) and NAME_RE.fullmatch(str(namespace))):
            raise HubError(400, f"Invalid repo name: {namespace}/{name}")
        repo_id = f"{namespace}/{name}"
        private = body.get("visibility") == "private" or body.get("private") is True
        url = self.hub.repo_url(repo_type, repo_id)
        with self.hub.lock:
            existing = self.hub.get_repo(repo_type, repo_id)
            if existing is not None and self._can_see(existing, user):
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}", extra={"url": url})
            self._require_write(user, namespace, f"create a {repo_type} repo")
            self.hub.create_repo(repo_type, repo_id, private=private, creator=user.name)
        self._send_json(200, {"url": url, "name": repo_id, "id": repo_id})

    @route("POST", r"/api/validate-yaml")
    def route_validate_yaml(self) -> None:
        """Sent by `create_commit` whenever README.md is uploaded; errors make the client raise
        ValueError before uploading anything."""
        content = self._json_body().get("content") or ""
        try:
            parse_front_matter(content)
        except ValueError as error:
            self._send_json(400, {"errors": [{"message": str(error)}], "warnings": []})
            return
        self._send_json(200, {"errors": [], "warnings": []})

    @route("POST", rf"/api/{TYPE}/{REPO}/preupload/{REV}")
    def route_preupload(self, plural: str, ns: str, name: str, rev: str) -> None:
        """Tell the client how to send each file. `oid` is the current file's id in the mode
        answered (git sha1 for regular, sha256 for LFS): equal to the local one = unchanged, skip."""
        repo, _ = self._writable_repo(TYPE_BY_PLURAL[plural], ns, name, "upload files")
        files = repo.files(self._resolve(repo, rev))
        answers = []
        for item in self._json_body().get("files", []):
            path = item["path"]
            mode = "lfs" if path.endswith(self.hub.lfs_suffixes) and item.get("size", 0) > 0 else "regular"
            current = files.get(path)
            oid = None
            if current is not None:
                oid = current["sha256"] if mode == "lfs" else git_blob_oid(self.hub.blobs.read(current["sha256"]))
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send_json(200, {"files": answers})

    @route("POST", rf"/(?:(?P<prefix>datasets|spaces)/)?{REPO}\.git/info/lfs/objects/batch")
    def route_lfs_batch(self, prefix: str | None, ns: str, name: str) -> None:
        """git-lfs batch API (uploads only): objects already stored get no `actions` (the client
        skips them), others get a PUT href on this server."""
        repo_type = TYPE_BY_PLURAL[prefix] if prefix else "model"
        self._writable_repo(repo_type, ns, name, "upload files")
        body = self._json_body()
        if body.get("operation") != "upload":
            raise HubError(400, "This test hub only implements LFS uploads")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid")), int(obj.get("size", -1))
            if not SHA256_RE.fullmatch(oid) or size < 0:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
            elif self.hub.blobs.has(oid) and self.hub.blobs.size(oid) == size:
                objects.append({"oid": oid, "size": size})
            else:
                with self.hub.lock:
                    self.hub.pending_lfs[oid] = size
                href = f"{self.hub.endpoint}/_lfs/{oid}"
                objects.append({"oid": oid, "size": size, "actions": {"upload": {"href": href, "expires_in": 3600}}})
        lfs_json = {"Content-Type": "application/vnd.git-lfs+json"}
        self._send_json(200, {"transfer": "basic", "objects": objects}, lfs_json)

    @route("PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})")
    def route_lfs_put(self, oid: str) -> None:
        """The upload href. The client sends no Authorization here (it stands for a signed
        storage URL); the oid must have been announced to the batch endpoint, and the bytes
        must hash to it."""
        with self.hub.lock:
            expected_size = self.hub.pending_lfs.get(oid)
        if expected_size is None:
            raise HubError(404, f"No pending LFS upload for {oid}: ask the batch endpoint first")
        if len(self.body) != expected_size or hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded bytes do not match oid {oid} and size {expected_size}")
        self.hub.blobs.put(self.body)
        with self.hub.lock:
            self.hub.pending_lfs.pop(oid, None)
        self._send(200, b"", {"ETag": f'"{oid}"'})

    @route("POST", rf"/api/{TYPE}/{REPO}/commit/{REV}")
    def route_commit(self, plural: str, ns: str, name: str, rev: str) -> None:
        """Apply an ndjson commit (header, file, lfsFile, deletedFile, deletedFolder) to a branch.

        `parentCommit` is honoured loosely: it may be a prefix of the head; anything else means
        the branch moved, answered 412 as on the Hub."""
        repo, user = self._writable_repo(TYPE_BY_PLURAL[plural], ns, name, "commit")
        if self._flag("create_pr"):
            raise HubError(400, "This test hub does not implement pull requests (create_pr)")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "A commit payload starts with a header line")
        header = lines[0]["value"]
        with self.hub.lock:
            head = repo.branches().get(rev)
            if head is None:
                raise HubError(404, f"Invalid rev id: {rev} (commits go to a branch)", code="RevisionNotFound")
            parent = header.get("parentCommit")
            if parent and not head.startswith(str(parent).lower()):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.files(head))
            for line in lines[1:]:
                self._apply_operation(files, line.get("key"), line.get("value") or {})
            commit_id = repo.add_commit(
                rev, head, files, header.get("summary") or "", header.get("description") or "", user.name
            )
        url = f"{self.hub.repo_url(repo.repo_type, repo.repo_id)}/commit/{commit_id}"
        self._send_json(
            200,
            {"success": True, "commitOid": commit_id, "commitUrl": url, "hookOutput": "", "pullRequestUrl": None},
        )

    def _apply_operation(self, files: dict[str, dict], key: str | None, value: dict[str, Any]) -> None:
        path = str(value.get("path", ""))
        path = check_repo_path(path.rstrip("/") if key == "deletedFolder" else path)
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding for {path}: {value.get('encoding')}")
            sha256 = self.hub.blobs.put(base64.b64decode(value.get("content", "")))
            files[path] = self.hub.file_entry(sha256, lfs=False)
        elif key == "lfsFile":
            oid = str(value.get("oid", ""))
            if not self.hub.blobs.has(oid):
                raise HubError(400, f"LFS object {oid} for {path} was never uploaded")
            if value.get("size") is not None and int(value["size"]) != self.hub.blobs.size(oid):
                raise HubError(400, f"LFS object {oid} has size {self.hub.blobs.size(oid)}, not {value['size']}")
            files[path] = self.hub.file_entry(oid, lfs=True)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            inside = [p for p in files if p.startswith(path + "/")]
            if not inside:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound")
            for p in inside:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation: {key!r}")

    # -- reading: info, listings, history ----------------------------------------------------

    def _info(self, repo: Repo, commit_id: str, *, siblings: bool, card_data: bool) -> dict[str, Any]:
        """The repo's JSON as model_info / list_models see it."""
        commit = repo.commit(commit_id)
        card = self.hub.card(commit["files"])
        meta = repo.meta
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.namespace,
            "sha": commit_id,
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": card_tags(card),
            "createdAt": meta["createdAt"],
            "lastModified": commit["date"],
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
            for key in ("library_name", "pipeline_tag"):
                if isinstance(card.get(key), str):
                    info[key] = card[key]
        if card_data:
            info["cardData"] = card
        if siblings:
            info["siblings"] = [self._sibling(path, entry) for path, entry in commit["files"].items()]
        return info

    def _sibling(self, path: str, entry: dict[str, Any]) -> dict[str, Any]:
        sibling: dict[str, Any] = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
        if entry["lfs"]:
            pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
            sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
        return sibling

    @route("GET", rf"/api/{TYPE}/{REPO}(?:/revision/{REV})?")
    def route_repo_info(self, plural: str, ns: str, name: str, rev: str | None) -> None:
        repo = self._visible_repo(TYPE_BY_PLURAL[plural], ns, name, self._caller())
        commit_id = self._resolve(repo, rev or "main")
        self._send_json(200, self._info(repo, commit_id, siblings=True, card_data=True))

    @route("GET", rf"/api/{TYPE}")
    def route_list_repos(self, plural: str) -> None:
        """list_models & co: `author` (namespace), `search` (case-insensitive substring of the
        id), `filter` (tags, all must match), `sort` (descending, as the Hub), `limit`, `full`
        (adds sha and siblings), `cardData`. Private repos only for their namespace's members."""
        user = self._caller()
        author = (self._arg("author") or "").lower()
        search = (self._arg("search") or "").lower()
        wanted_tags = [t for t in self.query.get("filter", []) if t]
        full = self._flag("full")
        items = []
        for repo in self.hub.iter_repos(TYPE_BY_PLURAL[plural]):
            if not self._can_see(repo, user):
                continue
            if author and repo.namespace.lower() != author:
                continue
            if search and search not in repo.repo_id.lower():
                continue
            head = repo.resolve("main")
            if head is None:
                continue
            info = self._info(repo, head, siblings=full, card_data=full or self._flag("cardData"))
            if all(tag in info["tags"] for tag in wanted_tags):
                if not full:
                    info.pop("sha")
                items.append(info)
        sort = self._arg("sort")
        if sort in ("lastModified", "createdAt", "downloads", "likes", "id"):
            items.sort(key=lambda item: item[sort], reverse=sort != "id")
        limit = self._arg("limit")
        if limit:
            items = items[: int(limit)]
        self._send_page(items)

    @route("GET", rf"/api/{TYPE}/{REPO}/tree/{REV}(?:/(?P<path>.*))?")
    def route_tree(self, plural: str, ns: str, name: str, rev: str, path: str | None) -> None:
        """Files and folders under `path` (the root by default): direct children, or everything
        with `recursive=true` (what snapshot_download asks for)."""
        repo = self._visible_repo(TYPE_BY_PLURAL[plural], ns, name, self._caller())
        files = repo.files(self._resolve(repo, rev))
        base = (path or "").strip("/")
        prefix = base + "/" if base else ""
        folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        if base and base not in folders:
            raise HubError(404, f"{base} is not a folder at {rev}", code="EntryNotFound")
        recursive = self._flag("recursive")

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        entries: list[dict[str, Any]] = []
        for folder in sorted(f for f in folders if wanted(f)):
            inside = sorted((p, files[p]["oid"]) for p in files if p.startswith(folder + "/"))
            oid = hashlib.sha1(json.dumps(inside).encode()).hexdigest()
            entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
        for file_path in sorted(p for p in files if wanted(p)):
            entry = files[file_path]
            item: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": file_path}
            if entry["lfs"]:
                pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
            entries.append(item)
        self._send_page(entries)

    @route("GET", rf"/api/{TYPE}/{REPO}/commits/{REV}")
    def route_commits(self, plural: str, ns: str, name: str, rev: str) -> None:
        """list_repo_commits: newest first."""
        repo = self._visible_repo(TYPE_BY_PLURAL[plural], ns, name, self._caller())
        history = repo.history(self._resolve(repo, rev))
        self._send_page(
            [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "authors": [{"user": a, "avatar": None} for a in c["authors"]],
                    "date": c["date"],
                }
                for c in history
            ]
        )

    # -- downloads ---------------------------------------------------------------------------

    @route("GET", rf"/(?:(?P<prefix>datasets|spaces)/)?{REPO}/resolve/{REV}/(?P<path>.+)")
    def route_resolve(self, prefix: str | None, ns: str, name: str, rev: str, path: str) -> None:
        """HEAD/GET a file. The client needs X-Repo-Commit, ETag and the exact Content-Length;
        LFS files also get X-Linked-Etag/-Size (sha256, as the Hub). Never X-Xet-Hash: it would
        switch the client to xet. Byte ranges are served (the client resumes with them)."""
        repo_type = TYPE_BY_PLURAL[prefix] if prefix else "model"
        repo = self._visible_repo(repo_type, ns, name, self._caller())
        commit_id = self._resolve(repo, rev)
        entry = repo.files(commit_id).get(path)
        if entry is None:
            raise HubError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": commit_id})
        data = self.hub.blobs.read(entry["sha256"])
        etag = entry["sha256"] if entry["lfs"] else entry["oid"]
        headers = {
            "X-Repo-Commit": commit_id,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        status, data = self._apply_range(data, headers)
        self._send(status, data, headers)

    def _apply_range(self, data: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """`Range: bytes=A-B` / `bytes=A-` -> 206 with Content-Range; no Range -> 200."""
        requested = self.headers.get("Range")
        if not requested:
            return 200, data
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", requested.strip())
        size = len(data)
        if not match or (not match.group(1) and not match.group(2)):
            raise HubError(416, f"Unsupported range {requested}", headers={"Content-Range": f"bytes */{size}"})
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(size - int(match.group(2)), 0), size - 1
        if start >= size or start > end:
            raise HubError(416, f"Range {requested} not satisfiable", headers={"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return 206, data[start : end + 1]


# --------------------------------------------------------------------------------------------
# pytest glue
# --------------------------------------------------------------------------------------------


def isolate_hf_client(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Give huggingface_hub a private home and turn off what could print or reach the network.

    Why module attributes and not only env vars: huggingface_hub reads HF_HOME, HF_HUB_CACHE,
    HF_HUB_OFFLINE, HF_HUB_DISABLE_TELEMETRY, HF_HUB_DISABLE_PROGRESS_BARS, ... once, when
    `huggingface_hub.constants` is first imported (gradio and diffusers import it early), so
    setting the env later changes nothing. Telemetry matters beyond privacy: with it on, the
    first request's User-Agent triggers a fetch of `<HF_ENDPOINT>/api/agent-harnesses` (the
    import-time endpoint, i.e. huggingface.co, not ours). The env vars are set too, for
    subprocesses and code that imports the client later.
    """
    from huggingface_hub import constants

    # `huggingface_hub.utils.tqdm` as an attribute is the tqdm *class*; the flag lives in the module.
    hf_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")
    home.mkdir(parents=True, exist_ok=True)
    settings = {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_XET_CACHE": str(home / "xet"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
        monkeypatch.setattr(constants, name, value, raising=False)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"), raising=False)
    for name in ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def disable_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the client use the LFS protocol instead of xet for files answered "lfs".

    `HF_HUB_DISABLE_XET` is read at import into `constants.HF_HUB_DISABLE_XET`, but
    `is_xet_available()` looks at that attribute on every call, so patching it is enough."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A started HubServer with `default_users()` (alice write/read, bob write), and the client
    isolated in `tmp_path / "hf_home"` (see `isolate_hf_client`). Point the client at it
    explicitly: `HfApi(endpoint=hub.endpoint, token=...)` or `hub.api(token)`."""
    isolate_hf_client(monkeypatch, tmp_path / "hf_home")
    with HubServer(tmp_path / "hub", default_users()) as server:
        yield server
