"""A local HTTP server standing in for a provider: canned replies, errors, delays and trickles.

Runs ``http.server`` in a thread on 127.0.0.1 (port chosen by the OS); tests point a provider's
``base_url`` at it. Every request is recorded (path, query, headers) so a test can check what was
sent, e.g. that the token travelled only in its header.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server answers: ``body`` as bytes, str, or anything else as JSON."""

    body: Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line
    trickle_s: float = 0.0  # between body bytes (a slow server that keeps the connection alive)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


Route = Reply | Callable[[str, dict[str, str]], Reply]


class FakeProvider:
    """``route(prefix, reply)``; the longest matching prefix answers; unknown paths get 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                return

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                parsed = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                with fake._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    fake.requests.append(Seen(parsed.path, query, headers))
                reply = fake._reply(parsed.path, query)
                try:
                    time.sleep(reply.delay_s)
                    data = reply.payload()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if reply.trickle_s:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle_s)
                    else:
                        self.wfile.write(data)
                except OSError:  # the client gave up (timeouts are what these tests provoke)
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, prefix: str, reply: Route) -> None:
        self.routes[prefix] = reply

    def _reply(self, path: str, query: dict[str, str]) -> Reply:
        matches = [p for p in self.routes if path.startswith(p)]
        if not matches:
            return Reply({"error": f"no route for {path}"}, status=404)
        route = self.routes[max(matches, key=len)]
        return route(path, query) if callable(route) else route

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def __enter__(self) -> "FakeProvider":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A URL nothing listens on (bound, then closed), for 'unreachable'."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
