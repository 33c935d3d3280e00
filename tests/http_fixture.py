"""A tiny HTTP file server on 127.0.0.1 for download tests (no internet needed).

It serves in-memory files, honours ``Range: bytes=N-`` (unless told to ignore it
for a path) and ``If-Range`` (a changed ETag gets the whole new file), answers 416
past the end, and can drop the connection after a given
number of body bytes, once per queued entry, to simulate an interrupted transfer.
Every request is logged as (path, Range header) so tests can assert resumption.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    drops: dict[str, list[int]] = field(default_factory=dict)  # path -> bytes before each drop
    ignore_range: set[str] = field(default_factory=set)
    etags: dict[str, str] = field(default_factory=dict)  # path -> ETag (default "v1")
    log: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        state: ServerState = self.server.state
        path = self.path.lstrip("/")
        rng = self.headers.get("Range")
        with state.lock:
            state.log.append((path, rng))
            data = state.files.get(path)
            queue = state.drops.get(path)
            drop = queue.pop(0) if queue else None
        if data is None:
            self.send_error(404)
            return
        start = 0
        etag = state.etags.get(path, '"v1"')
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if_range = self.headers.get("If-Range")
        if m and path not in state.ignore_range and if_range in (None, etag):
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        if drop is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:drop])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FileServer:
    """``with FileServer() as srv: srv.files["a.bin"] = b"..."; srv.url("a.bin")``."""

    def __init__(self) -> None:
        self.state = ServerState()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.state = self.state  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def files(self) -> dict[str, bytes]:
        return self.state.files

    @property
    def log(self) -> list[tuple[str, str | None]]:
        return self.state.log

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{path}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def closed_port_url(path: str = "x") -> str:
    """A URL on 127.0.0.1 where nothing listens: connection refused, like no network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"
