"""More than one core: N delivery processes on one store (``mailspool worker --processes N``).

One process runs its sender threads under one interpreter lock, so on a fast link it is
bound by one core. ``--processes N`` (default: the usable CPUs) starts N processes, each a
whole worker of its own, and shares the work and the limits among them:

- **batches**: each process claims batches for itself (the store's claim: a ``flock``, an
  S3 lease), so no batch is delivered by two of them;
- **a large batch**: a process that claims a batch of more than ``SHARE_SPLIT`` e-mails
  cuts it into equal parts, as many as a multiple of the processes and none over
  ``delivery.parts.LARGEST_PART`` (500), keeps the first and hands the others on as
  continuation batches at once, so the other processes deliver parts of it and all
  end together. A batch of ``SHARE_SPLIT`` or fewer is sent by one process, over the
  whole concurrency (below): a part must pay for the connections the process that
  takes it opens (over TLS 50 ms away, five round trips each), and a batch of 1000 sent
  by two processes at 50 ms took longer than by one (3.1-3.7 s against 3.0-3.3 s,
  three runs side by side);
- **the rate limit**: one limit for all, split evenly: each process sends at most
  ``max_rate / N``. Together they never exceed ``max_rate``; a process with nothing to
  send leaves its share unused (no coordination between processes is needed);
- **connections**: the concurrency is one for all too, and it goes where the e-mails
  are. Over SMTP each process has ``concurrency`` sender threads, but its transport
  sends on at most ``ceil(concurrency / B)`` connections, B the processes busy at that
  moment (``Lending``: a send in flight, or one started or ended within ``IDLE_AFTER``).
  A process with no batch of its own lends its part: a lone batch is sent over the whole
  concurrency, and when a second process gets work the first gives back the connections
  above its new part as their sends end. The server sees at most about ``concurrency``
  connections, as with one process. Other transports split it
  (``ceil(concurrency / N)`` sender threads and pooled connections each);
- **cores**: when there are no more processes than CPUs this process may use, process
  ``i`` is pinned to the ``i``-th of them (``sched_setaffinity``): its threads then pass
  the interpreter lock on one core instead of waking each other across cores, which
  cost a third more CPU per e-mail in a loopback drain;
- **signals**: SIGTERM and Ctrl-C reach every process; each finishes the e-mails in
  flight, records them and exits. A child dies with its parent (Linux), so a SIGKILLed
  worker leaves no process behind.

Draining with several processes ends when no batch is left in ``queue/`` that this
process has not tried, and none is held by another process (it may still hand out parts).
A process waiting for a held batch looks again when the process holding it rings the
``Doorbell`` (its batch ended), and at each poll otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import connection
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from types import FrameType
from typing import Any

from mailspool.delivery.factory import STOP_SIGNALS
from mailspool.delivery.report import BatchStatus
from mailspool.delivery.worker import Worker
from mailspool.errors import MailspoolError
from mailspool.triggers.local import DrainReport, drain

__all__ = [
    "IDLE_AFTER",
    "SHARE_SPLIT",
    "Doorbell",
    "Lending",
    "Share",
    "default_processes",
    "drain_shared",
    "run_processes",
]

log = logging.getLogger("mailspool.worker")

#: A batch with more e-mails than this is cut into parts when others share the work.
SHARE_SPLIT = 1000
#: Seconds after its last send started or ended that a process with none in flight
#: lends its part of the connections to the busy ones.
IDLE_AFTER = 0.25
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

#: What one process does with its share: deliver, and return the drain's report (or
#: None when it ran until stopped).
Work = Callable[["Share"], DrainReport | None]


def default_processes() -> int:
    """The CPUs this process may use (at least 1)."""
    return len(_usable_cpus()) or os.cpu_count() or 1


def _usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


@dataclass(frozen=True, slots=True)
class Share:
    """Process ``index`` of ``count``: its part of the concurrency and of the rate."""

    index: int
    count: int
    #: what every process says of its sends (``Lending``), shared by the processes;
    #: None: this process cannot see the others (it keeps its part)
    board: Any = field(default=None, compare=False)
    #: rung when a process's batches end (``drain_shared``); None: waits poll alone
    doorbell: Doorbell | None = field(default=None, compare=False)

    def concurrency(self, total: int) -> int:
        """The part of ``total`` each process has when every process is busy."""
        return max(1, math.ceil(total / self.count))

    def rate(self, total: float | None) -> float | None:
        return None if total is None else total / self.count

    @property
    def split_above(self) -> int | None:
        """Split batches above this size so the others share them (None when alone)."""
        return SHARE_SPLIT if self.count > 1 else None


@dataclass(frozen=True, slots=True)
class Board:
    """What the processes share to lend each other connections: per process, the tokens
    it holds (its sends in flight), when it last started, waited or ended a send
    (``time.monotonic``, one clock for every process on Linux) and its pid; one token
    per send of the whole concurrency; a lock for giving back a dead process's tokens."""

    sends: Any  # RawArray of 3 x count doubles: held tokens, last moment, pid
    tokens: Any  # a multiprocessing semaphore of ``total`` tokens
    lock: Any  # a multiprocessing lock


class Doorbell:
    """Rung by a process when batches it claimed have ended (released, finished, split
    into parts): the processes waiting for a held batch look again at once instead of
    at their next poll (50 ms on a folder, 5 s on a bucket), so a drain ends when its
    last batch does."""

    def __init__(self, context: ForkContext | SpawnContext | None = None) -> None:
        maker = context or multiprocessing.get_context()
        self._rings = maker.RawValue("Q", 0)
        self._changed = maker.Condition()

    def rung(self) -> int:
        """How many times it has rung: what ``wait`` compares with."""
        return int(self._rings.value)

    def ring(self) -> None:
        with self._changed:
            self._rings.value += 1
            self._changed.notify_all()

    def wait(self, since: int, timeout: float) -> bool:
        """Until it has rung ``since`` times no more (True), or ``timeout`` seconds."""
        with self._changed:
            return bool(self._changed.wait_for(lambda: self._rings.value != since, timeout))


def _await_look(bell: Doorbell, since: int, poll: float, stopping: threading.Event) -> None:
    """Until the bell rings, ``poll`` seconds pass or the worker stops. A stop signal
    sets ``stopping`` and cannot ring the bell, so it is looked at every ``STOP_LOOK``
    seconds: a process waiting on a bucket's 5 s poll still stops at once."""
    deadline = time.monotonic() + poll
    while not stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or bell.wait(since, min(left, STOP_LOOK)):
            return


def board(count: int, total: int, context: ForkContext | SpawnContext | None = None) -> Board:
    """A ``Board`` for ``count`` processes sharing a concurrency of ``total``."""
    maker = context or multiprocessing.get_context()
    return Board(maker.RawArray("d", 3 * count), maker.BoundedSemaphore(total), maker.Lock())


#: Seconds between two looks at a stop signal while waiting for the ``Doorbell``.
STOP_LOOK = 0.1
#: Seconds between two looks, while waiting for a token, at whether a process that
#: holds some has died (killed alone: its tokens are given back for it).
TOKEN_WAIT = 0.1


class Lending:
    """Process ``share.index``'s part of the connections now: ``ceil(total / B)``, B the
    processes busy (this one counted), so the connections follow the e-mails.

    Each process writes only its own numbers; a reader may see one a moment old, which
    moves a limit one send later: a process above its new part gives connections back
    as their sends end (``SMTPTransport``). The sends in flight never pass ``total``
    across the processes, even for that moment: each takes one of the board's ``total``
    tokens (``started``, which waits for one) and gives it back (``ended``). A process
    killed alone (the others live on) leaves tokens taken: a waiting process gives them
    back for it once its pid is gone, so no drain waits for a dead process.
    """

    def __init__(self, share: Share, total: int, *, clock: Callable[[], float] = time.monotonic):
        if share.board is None:
            raise ValueError("Lending needs a Share with a board")
        self._share = share
        self._total = total
        self._shared = share.board
        self._board = share.board.sends
        self._tokens = share.board.tokens
        self._clock = clock
        self._lock = threading.Lock()
        self._mine = 3 * share.index
        self._board[self._mine + 2] = os.getpid()

    def limit(self) -> int:
        now = self._clock()
        busy = 1 + sum(
            1
            for other in range(self._share.count)
            if other != self._share.index
            and (self._board[3 * other] > 0 or now - self._board[3 * other + 1] < IDLE_AFTER)
        )
        return max(1, math.ceil(self._total / busy))

    def started(self) -> None:
        self._note(0)  # busy at once: the others shrink while this one waits
        while not self._tokens.acquire(timeout=TOKEN_WAIT):
            self._note(0)
            self._reclaim()
        self._note(+1)

    def ended(self) -> None:
        self._note(-1)
        self._tokens.release()

    def _note(self, change: int) -> None:
        with self._lock:
            self._board[self._mine] += change
            self._board[self._mine + 1] = self._clock()

    def _reclaim(self) -> None:
        """Give back the tokens of processes that died holding them."""
        with self._shared.lock:
            for other in range(self._share.count):
                held, pid = int(self._board[3 * other]), int(self._board[3 * other + 2])
                if other == self._share.index or held <= 0 or not pid or _alive(pid):
                    continue
                log.warning("delivery process %d died holding %d send(s): freed", pid, held)
                self._board[3 * other] = 0
                for _ in range(held):
                    with contextlib.suppress(ValueError):  # never past the total
                        self._tokens.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drain_shared(
    worker: Worker, share: Share, *, poll: float = 0.05, **options: object
) -> DrainReport:
    """``drain`` for one of several processes: each look at the queue takes its part of
    the batches, and it also waits for batches that another process holds, since they
    may still be split into parts for this one. ``poll``: seconds between looks while
    waiting (a bucket listing is a paid request)."""
    total = DrainReport()
    bell = share.doorbell
    while True:
        since = bell.rung() if bell is not None else 0
        report = drain(worker, part=(share.index, share.count), **options)  # type: ignore[arg-type]
        ended = [b for b in report.batches if b.status != BatchStatus.HELD]
        total.batches.extend(ended)
        if ended and bell is not None:  # the others may look again (never for a mere look)
            bell.ring()
            since += 1
        held = [b for b in report.batches if b.status == BatchStatus.HELD]
        if not held or report.paused or worker.stopping.is_set():
            return total
        if bell is None:
            worker.stopping.wait(poll)
        else:
            _await_look(bell, since, poll, worker.stopping)


def run_processes(count: int, work: Work, *, concurrency: int | None = None) -> DrainReport | None:
    """Run ``work`` in ``count`` processes at once; the drain reports joined (None when
    they ran until stopped). Raises ``MailspoolError`` if a process failed.
    ``concurrency``: the total the processes lend each other (``Share.board``)."""
    context = _context()
    results: SimpleQueue[tuple[DrainReport | None, str | None]] = context.SimpleQueue()
    shared = board(count, concurrency, context) if concurrency else None
    bell = Doorbell(context)
    children = [
        context.Process(
            target=_child,
            args=(work, Share(i, count, shared, bell), results, os.getpid()),
            name=f"mailspool-{i}",
        )
        for i in range(count)
    ]
    for child in children:
        child.start()
    previous = _forward_signals(children)
    try:
        outcomes = _collect(children, results)
        for child in children:
            child.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # each process meets a wrong setting the same way: say each error once
    errors = dict.fromkeys(error for _, error in outcomes if error is not None)
    if errors:
        raise MailspoolError("; ".join(errors))
    reports = [report for report, _ in outcomes if report is not None]
    if not reports:
        return None
    return DrainReport(batches=[b for report in reports for b in report.batches])


def _collect(
    children: Sequence[BaseProcess], results: SimpleQueue[tuple[DrainReport | None, str | None]]
) -> list[tuple[DrainReport | None, str | None]]:
    """Each child's outcome; a child that died without one (killed) counts as an error."""
    outcomes: list[tuple[DrainReport | None, str | None]] = []
    while len(outcomes) < len(children):
        alive = [child.sentinel for child in children if child.is_alive()]
        if not results.empty():
            outcomes.append(results.get())
        elif alive:
            connection.wait(alive, timeout=0.05)  # a child's report comes before its exit
        elif results.empty():
            codes = ", ".join(str(child.exitcode) for child in children)
            missing = len(children) - len(outcomes)
            error = f"{missing} delivery process(es) ended without a report (exit codes {codes})"
            outcomes.extend([(None, error)] * missing)
    return outcomes


def _child(
    work: Work,
    share: Share,
    results: SimpleQueue[tuple[DrainReport | None, str | None]],
    parent: int,
) -> None:
    _die_with(parent)
    _pin(share)
    # A stop signal that comes while the worker is still being opened waits for its
    # handler (``factory.stop_on_signals`` unblocks it) instead of killing the process
    # without a report.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        report = work(share)
    except Exception as err:  # the parent reports it; nothing else is lost
        results.put((None, str(err) or type(err).__name__))
        return
    results.put((report, None))


def _pin(share: Share) -> None:
    """Process ``i`` runs on the ``i``-th CPU it may use, when there is one per process.

    A process's sender threads take turns holding the interpreter lock; spread over
    every core, each hand-over wakes a thread on another core, and the lock's cache
    lines travel with it. On one core the same hand-over is a context switch.
    """
    cpus = _usable_cpus()
    if share.count <= len(cpus):
        os.sched_setaffinity(0, {cpus[share.index]})


def _die_with(parent: int) -> None:
    """A child dies with its parent (Linux): a SIGKILLed worker leaves no sender behind,
    so a crash repeats at most the e-mails in flight, as with one process."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _context() -> ForkContext | SpawnContext:
    # fork starts at once and shares the imports; the parent has no threads yet.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _forward_signals(children: Sequence[BaseProcess]) -> dict[int, Any]:
    """SIGTERM or SIGINT to the parent stops every child (each finishes its e-mails in
    flight; a Ctrl-C that reached them too changes nothing). Returns the replaced handlers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("signal %d: stopping %d delivery processes", signum, len(children))
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
