"""A fault-injecting HTTP proxy between boto3 and moto: S3 as a bad network shows it.

Pointed at by ``AWS_ENDPOINT_URL`` (or a client's ``endpoint_url``), it forwards each
request to moto and, by a seeded random draw per request, misbehaves the way S3 and the
networks in front of it do:

- ``error``: answer ``503 SlowDown`` without forwarding (the request was not applied);
- ``reset_before``: drop the connection without forwarding (not applied);
- ``reset_after``: forward, then drop the connection instead of answering: the request
  *was* applied and its answer is lost (the case that makes retries dangerous);
- ``hang``: wait ``hang_seconds`` before going on (a client's read timeout fires first
  when it is shorter).

Rates apply per HTTP method (``Faults`` for PUT, another for GET...). With the same seed
and the same order of requests the same faults happen; threads make the order vary, so
tests assert bounds, never exact counts. ``drop_answer(predicate)`` loses the answer of
the next request the predicate picks, whatever the rates (one targeted fault).
``stats`` counts each fault made.

Run alone (``python -m tests.fault_proxy TARGET [--seed N] [--put-error 0.3]...``) it
serves until interrupted, to try a worker against a faulty S3 by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "Faults"]

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})


@dataclass(frozen=True, slots=True)
class Faults:
    """Chances (0-1) of each fault for one request; they add up to at most 1."""

    error: float = 0.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    hang: float = 0.0

    def draw(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for name in ("error", "reset_before", "reset_after", "hang"):
            chance: float = getattr(self, name)
            if roll < chance:
                return name
            roll -= chance
        return None


Picker = Callable[[str, str], bool]  # (method, path) -> drop this request's answer


class FaultProxy:
    """The proxy, on 127.0.0.1 and a free port, in a thread; see the module docstring."""

    def __init__(
        self,
        target: str,
        *,
        seed: int = 0,
        faults: dict[str, Faults] | None = None,
        hang_seconds: float = 2.0,
    ) -> None:
        self.target = urlsplit(target)
        self.faults = dict(faults or {})
        self.hang_seconds = hang_seconds
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pickers: list[Picker] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_faults(self, faults: dict[str, Faults]) -> None:
        """Change the rates from now on (``{}``: a perfect network)."""
        with self._lock:
            self.faults = dict(faults)

    def drop_answer(self, picker: Picker) -> None:
        """Forward the next request ``picker`` accepts, then lose its answer."""
        with self._lock:
            self._pickers.append(picker)

    def decide(self, method: str, path: str) -> str | None:
        """The fault for this request, counted; None to forward it faithfully."""
        with self._lock:
            for picker in self._pickers:
                if picker(method, path):
                    self._pickers.remove(picker)
                    self.stats["reset_after"] += 1
                    return "reset_after"
            fault = self.faults.get(method, Faults()).draw(self._rng)
            if fault is not None:
                self.stats[fault] += 1
            return fault


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        owner = proxy

    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    """One client connection: keep-alive, one upstream connection per thread."""

    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def do_GET(self) -> None:
        self._relay()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would drown a test's output."""

    def _relay(self) -> None:
        body = self._read_body()
        fault = self.owner.decide(self.command, self.path)
        if fault == "error":
            self._answer(503, b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
            return
        if fault == "reset_before":
            self._reset()
            return
        if fault == "hang":
            time.sleep(self.owner.hang_seconds)
        status, headers, answer = self._forward(body)
        if fault == "reset_after":
            self._reset()
            return
        self._answer(status, answer, headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunks()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(
            self.owner.target.hostname or "127.0.0.1", self.owner.target.port, timeout=60
        )
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            answer = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, answer
        finally:
            upstream.close()

    def _answer(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        try:
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up (its timeout)

    def _reset(self) -> None:
        """Close with RST, as a dropped connection looks to the client."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the connection was reset on purpose
            super().finish()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fault-injecting proxy in front of S3/moto.")
    parser.add_argument("target", help="where to forward, e.g. http://127.0.0.1:5000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-seconds", type=float, default=10.0)
    for fault in ("error", "reset-before", "reset-after", "hang"):
        parser.add_argument(f"--put-{fault}", type=float, default=0.0)
    args = parser.parse_args()
    put = Faults(args.put_error, args.put_reset_before, args.put_reset_after, args.put_hang)
    proxy = FaultProxy(
        args.target, seed=args.seed, faults={"PUT": put}, hang_seconds=args.hang_seconds
    )
    with proxy:
        print(f"forwarding {proxy.endpoint} -> {args.target}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
