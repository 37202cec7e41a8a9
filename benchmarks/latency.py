"""A distant server, made on loopback: a TCP proxy that holds each command for a while.

Whatever a client sends reaches the server ``delay`` seconds later (in order); answers
come back at once. So every round trip costs ``delay``, whether it carries one command
or a pipelined group, as it does with a server that far away. The proxy counts round
trips: a connection's next round trip begins when the client sends after an answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from benchmarks.sinks import free_port


@dataclass(slots=True)
class Turns:
    """Round trips seen by the proxy, over every connection."""

    count: int = 0


class _Link:
    """One client connection: forwards both ways, holding client bytes ``delay`` s."""

    def __init__(self, delay: float, turns: Turns) -> None:
        self.delay = delay
        self.turns = turns
        self.answered = True  # the greeting counts as an answer

    async def run(
        self, client: tuple[asyncio.StreamReader, asyncio.StreamWriter], port: int
    ) -> None:
        server = await asyncio.open_connection("127.0.0.1", port)
        upstream = asyncio.create_task(self._client_to_server(client[0], server[1]))
        with suppress(ConnectionError):
            await self._server_to_client(server[0], client[1])
        upstream.cancel()
        for writer in (client[1], server[1]):
            writer.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        while data := await reader.read(65536):
            if self.answered:
                self.turns.count += 1
                self.answered = False
            loop.call_later(self.delay, _forward, writer, data)

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(65536):
            self.answered = True
            writer.write(data)
            await writer.drain()


def _forward(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


@contextmanager
def distant(url: str, delay: float) -> Iterator[tuple[str, Turns]]:
    """``(url, turns)`` of a proxy that puts the SMTP server at ``url`` ``delay`` s away."""
    target = int(url.rpartition(":")[2])
    port = free_port()
    turns = Turns()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve() -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _Link(delay, turns).run((reader, writer), target)

        server = await asyncio.start_server(accept, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    thread = threading.Thread(target=lambda: _run(loop, serve()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"smtp://127.0.0.1:{port}", turns
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _run(loop: asyncio.AbstractEventLoop, main: object) -> None:
    asyncio.set_event_loop(loop)
    with suppress(RuntimeError):  # stopped from the benchmark's thread
        loop.run_until_complete(main)  # type: ignore[arg-type]
