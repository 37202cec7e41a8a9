"""A store that fails never hangs a request and never loses its e-mails.

A request hands its batches to the store through ``write_durably``: each attempt runs in
a thread of its own and the request waits at most ``MAILSPOOL_WRITE_TIMEOUT`` seconds
for all of them together (``MAILSPOOL_WRITE_ATTEMPTS`` attempts, a short pause between
errors). When the store refused or did not answer in time, the same batch files (same
batch ids) go to a local fallback store (``MAILSPOOL_FALLBACK_STORE``) and an error is
logged. So a request pays at most the timeout plus one local write.

The fallback store keeps one folder per primary store (``<fallback>/<hash of the
store URL>``); ``recover_fallback`` moves its batches into the primary store, and
``mailspool worker`` calls it before each drain and about once a second while it runs.
A write that timed out may still land in the primary store later: recovery creates a
batch only if the primary holds no ``queue/<id>.json`` and no ``done/<id>.json`` (and
uses a create-only write), so one batch is never queued twice. The window left is a
late write landing after the worker finished that same batch; the batch's ledger then
keeps its e-mails from being sent again for as long as the ledger is kept.

At most ``MAX_STUCK_WRITES`` writes may hang at once per process; beyond that a request
goes straight to the fallback instead of starting yet another thread.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from mailspool.config import Settings
from mailspool.errors import KeyNotFound, StoreError
from mailspool.message import Message
from mailspool.producer.handoff import EncodedBatches, encode_batches, write_encoded
from mailspool.spool import layout
from mailspool.spool.records import BatchOutline
from mailspool.spool.schedule import SCHEDULED
from mailspool.spool.sealed_store import sealed_like
from mailspool.stores.base import Store
from mailspool.stores.open_stores import shared_store
from mailspool.stores.retry import retry_write
from mailspool.tracing import stamped, write_span
from mailspool.webhooks.setup import outbox_for

__all__ = [
    "MAX_STUCK_WRITES",
    "Written",
    "fallback_url_for",
    "recover_fallback",
    "recover_fallback_for",
    "watch_writes",
    "write_durably",
    "write_durably_to",
    "write_messages",
    "write_messages_to",
]

log = logging.getLogger("mailspool")

MAX_STUCK_WRITES = 16
_RETRY_PAUSE = 0.1
_writers = threading.BoundedSemaphore(MAX_STUCK_WRITES)


def fallback_url_for(store_url: str, fallback_base: str) -> str:
    """The fallback folder for one primary store: ``<base>/<16 hex digits of its URL>``.

    When the primary store is itself a file store at or under the fallback base, a
    sibling (``<base>-2``) is used instead, so the two never share files.
    """
    digest = hashlib.sha256(store_url.encode()).hexdigest()[:16]
    base = fallback_base.rstrip("/")
    if _inside(store_url, base):
        base = f"{base}-2"
    return f"{base}/{digest}"


def _inside(store_url: str, base_url: str) -> bool:
    if not (store_url.startswith("file:") and base_url.startswith("file:")):
        return False
    store_path = Path(store_url.removeprefix("file://").removeprefix("file:")).expanduser()
    base_path = Path(base_url.removeprefix("file://").removeprefix("file:")).expanduser()
    store_path, base_path = store_path.absolute(), base_path.absolute()
    return store_path == base_path or base_path in store_path.parents


@dataclass(frozen=True, slots=True)
class Written:
    """Where a write went: ``store`` is the URL of the store that holds the batches now;
    ``refused`` says why the configured store did not take them (None: it did)."""

    keys: list[str]
    store: str
    refused: str | None = None

    @property
    def fell_back(self) -> bool:
        return self.refused is not None


_watching: ContextVar[list[Written] | None] = ContextVar("mailspool_writes", default=None)


@contextmanager
def watch_writes() -> Iterator[list[Written]]:
    """Collect where every ``write_durably`` in this context went (a command that
    enqueues tells the truth about a write that went to the fallback)."""
    writes: list[Written] = []
    token = _watching.set(writes)
    try:
        yield writes
    finally:
        _watching.reset(token)


def _seen(written: Written) -> Written:
    writes = _watching.get()
    if writes is not None:
        writes.append(written)
    return written


def write_messages(store: Store, messages: Sequence[Message], settings: Settings) -> list[str]:
    """Deferred e-mails as batch files, written by ``write_durably`` as ``settings`` say:
    the one write of every enqueue path (a scope's end, ``send_mail`` outside a scope,
    the framework glue). Returns the keys written."""
    return write_messages_to(store, messages, settings).keys


def write_messages_to(
    store: Store, messages: Sequence[Message], settings: Settings, *, front: bool = False
) -> Written:
    """``write_messages``, saying where the batches went (``Written``); ``front``: as
    priority batches, delivered before the others."""
    if not messages:
        return Written([], store.url)
    messages = stamped(messages)
    with write_span(messages) as span:
        encoded = encode_batches(
            messages,
            default_sender=settings.sender,
            emails_per_file=settings.emails_per_file,
            front=front,
            outbox=outbox_for(settings, store),
        )
        written = write_durably_to(
            store,
            encoded,
            timeout=settings.write_timeout,
            attempts=settings.write_attempts,
            fallback_base=settings.fallback_store,
        )
        if span is not None:
            ids = [layout.batch_id_from_key(key) for key in written.keys]
            span.set_attributes(
                {"mailspool.batch.ids": ids, "mailspool.fallback": written.fell_back}
            )
    return written


def write_durably(
    store: Store,
    encoded: EncodedBatches,
    *,
    timeout: float,
    attempts: int,
    fallback_base: str,
) -> list[str]:
    """Write to ``store`` within ``timeout`` seconds, else to its fallback; return the keys.

    Raises ``StoreError`` only when the fallback store fails too (the e-mails are then
    in neither store, and the caller must know).
    """
    return write_durably_to(
        store, encoded, timeout=timeout, attempts=attempts, fallback_base=fallback_base
    ).keys


def write_durably_to(
    store: Store,
    encoded: EncodedBatches,
    *,
    timeout: float,
    attempts: int,
    fallback_base: str,
) -> Written:
    """``write_durably``, saying where the batches went (``Written``)."""
    if not encoded.batches:
        return Written([], store.url)
    error = _try_primary(store, encoded, timeout=timeout, attempts=attempts)
    if error is None:
        return _seen(Written(encoded.keys, store.url))
    fallback_url = fallback_url_for(store.url, fallback_base)
    try:
        write_encoded(sealed_like(store, shared_store(fallback_url)), encoded)
    except Exception as err:
        log.error(
            "store %s failed (%s) and fallback %s failed too: %s",
            store.url,
            error,
            fallback_url,
            err,
        )
        raise StoreError(
            f"cannot write batches to {store.url} ({error}) nor to {fallback_url}"
        ) from err
    log.error(
        "store %s failed (%s): %d batch(es) written to the fallback %s; "
        "`mailspool worker` moves them back",
        store.url,
        error,
        len(encoded.batches),
        fallback_url,
    )
    return _seen(Written(encoded.keys, fallback_url, error))


def _try_primary(
    store: Store, encoded: EncodedBatches, *, timeout: float, attempts: int
) -> str | None:
    """None when written; otherwise why not (for the log)."""
    deadline = time.monotonic() + timeout
    error = "no attempt made"
    for attempt in range(1, attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if not _writers.acquire(blocking=False):
            return f"{MAX_STUCK_WRITES} earlier writes are still stuck"
        future = _start(lambda: write_encoded(store, encoded))
        try:
            future.result(timeout=remaining)
            return None
        except FutureTimeout:
            return f"no answer within {timeout:g} s"
        except Exception as err:
            error = f"attempt {attempt}: {type(err).__name__}: {err}"
        time.sleep(min(_RETRY_PAUSE * attempt, max(0.0, deadline - time.monotonic())))
    return error


def _start(work: Callable[[], None]) -> Future[None]:
    """Run ``work`` in a daemon thread (a stuck write must not keep the process alive)."""
    future: Future[None] = Future()

    def run() -> None:
        try:
            work()
        except BaseException as err:
            future.set_exception(err)
        else:
            future.set_result(None)
        finally:
            _writers.release()

    threading.Thread(target=run, name="mailspool-write", daemon=True).start()
    return future


def recover_fallback(fallback: Store, store: Store) -> int:
    """Move every batch of ``fallback`` (queued or scheduled) into ``store``; return how
    many were moved.

    Blobs a batch refers to are copied first (create-only); a batch already queued or
    done in ``store`` (a late write of a timed-out attempt) is only removed from the
    fallback. Blobs stay in the fallback, content-addressed, for batches still to come.
    """
    moved = 0
    for key in [*fallback.keys(layout.QUEUE), *fallback.keys(SCHEDULED)]:
        if not key.endswith(".json"):
            continue
        try:
            data = fallback.get(key)
        except KeyNotFound:  # another worker moved it
            continue
        batch_id = layout.batch_id_from_key(key)
        if not store.exists(layout.done_key(batch_id)):
            for blob in _blob_keys(data):
                content = fallback.get(blob)
                retry_write(lambda: store.put_new(blob, content), blob)  # noqa: B023 - called at once
            if retry_write(lambda: store.put_new(key, data), key):  # noqa: B023 - called at once
                moved += 1
        fallback.delete(key)
    if moved:
        log.warning("moved %d batch(es) from the fallback %s to %s", moved, fallback.url, store.url)
    return moved


def recover_fallback_for(store: Store, fallback_base: str) -> int:
    """``recover_fallback`` from the fallback folder of ``store``, if there is one."""
    url = fallback_url_for(store.url, fallback_base)
    if (
        url.startswith("file:")
        and not Path(url.removeprefix("file://").removeprefix("file:")).expanduser().is_dir()
    ):
        return 0
    return recover_fallback(sealed_like(store, shared_store(url)), store)


def _blob_keys(data: bytes) -> list[str]:
    """The blob keys a batch file refers to (an unreadable batch moves as it is; the
    worker quarantines it)."""
    outline = BatchOutline.read(data)
    return [] if outline is None else [layout.blob_key(digest) for digest in outline.blobs]
