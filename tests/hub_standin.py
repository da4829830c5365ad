"""A local stand-in for the Hugging Face hub, so the first-run download is tested with the real client.

It serves model folders (``save_pretrained`` layout) under the hub's URL layout on 127.0.0.1:
``/api/models/<repo>[/revision/<rev>]`` (what ``HfApi.model_info`` reads), ``HEAD``/``GET``
``/<repo>/resolve/<rev>/<file>`` with the metadata headers ``huggingface_hub`` needs (``X-Repo-Commit``,
``ETag``), ``Range`` requests, and 404s with the hub's ``X-Error-Code``. Each repo holds commits: a folder is
served under its commit id, ``main`` names the newest, and ``push`` adds a newer commit (the hub repo changing
under a pinned revision); any other revision is a 404 ``RevisionNotFound``. Large files are answered as the
hub answers them: a redirect to a CDN on another host (127.0.0.2; a name only the proxy resolves when asked
through the proxy) with ``X-Linked-Etag``/``X-Linked-Size`` and the Xet headers (``X-Xet-Hash``, a refresh
route this server does not serve: a client that took the Xet path instead of HTTP would fail). It also
answers as a forward proxy (absolute URLs in the request line), so a test can give ``huggingface_hub`` a
hub host that only the proxy can resolve.

Faults a test can switch on: ``throttle`` (seconds per 16 KiB sent, so a download is still running when
the test cancels it), ``cut_after`` (close the connection when a file's body reaches that byte offset,
``cuts`` times: a resumed request starting past it gets nothing).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LARGE = 10_000  # files above this are served as LFS files (sha256 ETag, X-Linked-* headers), like the hub
CHUNK = 16 * 1024


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    proxied: bool


@dataclass
class HubStandIn:
    """Serves ``repos`` (repo id -> folder) until ``stop()``; ``url`` is its HF_ENDPOINT. A folder is served
    under the commit ``commits`` gives its repo (default ``COMMIT``), which is also ``main``."""

    repos: dict[str, Path]
    commits: dict[str, str] = field(default_factory=dict)
    throttle: float = 0.0
    cut_after: int | None = None
    cuts: int = 0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.history: dict[str, dict[str, Path]] = {
            repo: {self.commits.get(repo, COMMIT): folder} for repo, folder in self.repos.items()}
        self.main = {repo: self.commits.get(repo, COMMIT) for repo in self.repos}
        # the hub, and its "CDN" on another loopback address: a redirect to another host is not followed by
        # huggingface_hub's HEAD, so the hub's own headers (X-Linked-*, X-Xet-*) are the ones it reads
        self._servers = [ThreadingHTTPServer((host, 0), _handler(self)) for host in ("127.0.0.1", "127.0.0.2")]
        for server in self._servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True, name="hub-standin").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.2:{self._servers[1].server_address[1]}"

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def take_cut(self, body_size: int) -> bool:
        """True if this response is to be cut (and counts it); files shorter than the cut are whole."""
        with self._lock:
            if self.cut_after is None or self.cuts <= 0 or body_size <= self.cut_after:
                return False
            self.cuts -= 1
            return True

    def push(self, repo: str, folder: Path, commit: str) -> None:
        """A new commit of ``repo`` holding ``folder``, now its ``main`` (the earlier commits stay served)."""
        with self._lock:
            self.history.setdefault(repo, {})[commit] = folder
            self.main[repo] = commit
            self.repos[repo] = folder

    def commit_of(self, repo: str, revision: str | None) -> str | None:
        """The commit ``revision`` (``main``, a commit id, or None for main) names in ``repo``, else None."""
        commits = self.history.get(repo, {})
        rev = revision or "main"
        return self.main.get(repo) if rev == "main" else rev if rev in commits else None

    def gets(self, filename: str) -> list[Request]:
        """The GETs that fetched ``filename``'s bytes (for a large file: from the CDN, not the redirect)."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + filename)
                and (r.path.startswith("/cdn/") or "/resolve/" in r.path and not self._large(filename))]

    def _large(self, filename: str) -> bool:
        return any(path.name == filename and path.stat().st_size > LARGE for commits in self.history.values()
                   for folder in commits.values() for path in folder.iterdir())

    # ------------------------------------------------------------------ repo contents
    def files(self, repo: str, commit: str | None = None) -> dict[str, Path]:
        folder = self.history.get(repo, {}).get(commit or self.main.get(repo, ""))
        return {} if folder is None else {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}

    def model_info(self, repo: str, commit: str) -> dict:
        siblings = []
        for name, path in self.files(repo, commit).items():
            data = path.read_bytes()
            entry = {"rfilename": name, "size": len(data), "blobId": _git_sha1(data)}
            if len(data) > LARGE:
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        return {"_id": "standin", "id": repo, "modelId": repo, "sha": commit, "private": False, "disabled": False,
                "gated": False, "tags": [], "siblings": siblings}


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id


_CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+|[^/]+)/(?P<commit>[0-9a-f]{40})/(?P<file>[^/]+)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+|[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+|[^/]+?)(?:/revision/(?P<rev>[^/]+))?$")


def _handler(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _route(self) -> tuple[str, bool]:
            parts = urlsplit(self.path)
            return parts.path, bool(parts.scheme)  # an absolute URL: we were asked as a proxy

        def do_HEAD(self) -> None:  # noqa: N802 - http.server API
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path, proxied = self._route()
            hub.log(Request(self.command, path, self.headers.get("Range"), proxied))
            if path.rstrip("/") == "/api/models":
                return self._json({"models": []}, body)
            cdn = _CDN.match(path)
            if cdn:
                files = hub.files(cdn["repo"], cdn["commit"])
                if cdn["file"] not in files:
                    return self._error(404, "EntryNotFound", body)
                return self._file(files[cdn["file"]].read_bytes(), body, cdn["commit"])
            info = _INFO.match(path)
            if info:
                if info["repo"] not in hub.repos:
                    return self._error(404, "RepositoryNotFound", body)
                commit = hub.commit_of(info["repo"], unquote(info["rev"] or "main"))
                if commit is None:
                    return self._error(404, "RevisionNotFound", body)
                return self._json(hub.model_info(info["repo"], commit), body)
            resolve = _RESOLVE.match(path)
            if not resolve:
                return self._error(404, "RepositoryNotFound", body)
            if resolve["repo"] not in hub.repos:
                return self._error(404, "RepositoryNotFound", body)
            commit = hub.commit_of(resolve["repo"], unquote(resolve["rev"]))
            if commit is None:
                return self._error(404, "RevisionNotFound", body)
            files = hub.files(resolve["repo"], commit)
            if resolve["file"] not in files:
                return self._error(404, "EntryNotFound", body)
            data = files[resolve["file"]].read_bytes()
            if len(data) > LARGE:
                host = "http://cdn.geoclip-test.invalid" if proxied else hub.cdn_url
                location = f"{host}/cdn/{resolve['repo']}/{commit}/{resolve['file']}"
                return self._redirect(data, location, resolve["repo"], commit)
            self._file(data, body, commit)

        def _redirect(self, data: bytes, location: str, repo: str, commit: str) -> None:
            digest = hashlib.sha256(data).hexdigest()
            self.send_response(302)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{_git_sha1(data)}"')
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("X-Xet-Hash", digest)
            self.send_header("X-Xet-Refresh-Route", f"/api/models/{repo}/xet-read-token/{commit}")
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _file(self, data: bytes, body: bool, commit: str) -> None:
            start, status = 0, 200
            wanted = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
            if wanted and int(wanted[1]) < len(data):
                start, status = int(wanted[1]), 206
            self.send_response(status)
            self.send_header("X-Repo-Commit", commit)
            large = len(data) > LARGE  # served by the "CDN": its ETag is the content's sha256
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest() if large else _git_sha1(data)}"')
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if not body:
                return
            cut = hub.take_cut(len(data))
            for offset in range(start, len(data), CHUNK):
                piece = data[offset:offset + CHUNK]
                if cut and offset + len(piece) > hub.cut_after:
                    self.wfile.write(data[offset:max(offset, hub.cut_after)])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the peer sees the body end early
                    return
                try:
                    self.wfile.write(piece)
                    self.wfile.flush()
                except OSError:  # the client went away (a cancelled download)
                    self.close_connection = True
                    return
                if hub.throttle:
                    threading.Event().wait(hub.throttle)

        def _json(self, payload: dict, body: bool) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _error(self, status: int, code: str, body: bool) -> None:
            data = json.dumps({"error": code}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler
