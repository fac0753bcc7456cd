"""A Hugging Face Hub stand-in on 127.0.0.1: the real download code talks to it over real HTTP.

It serves `/{org}/{repo}/resolve/{revision}/{file}` for HEAD and GET the way the hub does for LFS
files (X-Repo-Commit, ETag = sha256, Content-Length, byte ranges) and answers 404 with the hub's
X-Error-Code for unknown repositories, revisions and files. Every request is logged, so tests can
assert that a run made none.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class Repo:
    commits: dict = field(default_factory=dict)  # commit -> {filename: bytes}
    refs: dict = field(default_factory=dict)  # branch -> commit


class FakeHub:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.truncate: set[str] = set()  # file names whose GET stops halfway (every time)
        self.truncate_once: set[str] = set()  # ... only on the first GET
        self.etags: dict[str, str] = {}  # file name -> ETag to send instead of its sha256
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self):
                hub.answer(self, body=False)

            def do_GET(self):
                hub.answer(self, body=True)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo_id: str, filename: str, data: bytes, commit: str, branch: str | None = "main") -> None:
        repo = self.repos.setdefault(repo_id, Repo())
        repo.commits.setdefault(commit, {})[filename] = data
        if branch:
            repo.refs[branch] = commit

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append((handler.command, handler.path))
        match = RESOLVE.match(handler.path.split("?")[0])
        if not match:
            return self._error(handler, "RepoNotFound")
        repo = self.repos.get(unquote(match["repo"]))
        if repo is None:
            return self._error(handler, "RepoNotFound")
        rev = unquote(match["rev"])
        commit = repo.refs.get(rev, rev)
        if commit not in repo.commits:
            return self._error(handler, "RevisionNotFound")
        filename = unquote(match["file"])
        data = repo.commits[commit].get(filename)
        if data is None:
            return self._error(handler, "EntryNotFound", commit)
        start = self._range_start(handler)
        status = 206 if start else 200
        handler.send_response(status)
        handler.send_header("X-Repo-Commit", commit)
        handler.send_header("ETag", f'"{self.etags.get(filename, hashlib.sha256(data).hexdigest())}"')
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        payload = data[start:]
        if filename in self.truncate or filename in self.truncate_once:
            self.truncate_once.discard(filename)
            # Half the promised bytes, then hang up: what a dropped connection looks like.
            handler.wfile.write(payload[: len(payload) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(payload)

    @staticmethod
    def _range_start(handler) -> int:
        match = re.match(r"bytes=(\d+)-$", handler.headers.get("Range", ""))
        return int(match[1]) if match else 0

    @staticmethod
    def _error(handler, code: str, commit: str | None = None) -> None:
        handler.send_response(404)
        handler.send_header("X-Error-Code", code)
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def unused_port() -> int:
    """A port nobody listens on: how a server that is down looks (shutdown() leaves keep-alives up)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
