"""What one run of one batch came to: its status and its counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["BatchReport", "BatchStatus"]


class BatchStatus(StrEnum):
    """How one run of one batch ended."""

    #: every e-mail sent, failed or handed to a continuation; the batch is in ``done/``
    FINISHED = "finished"
    #: another worker has the batch
    HELD = "held"
    #: already gone (finished by another worker just before the claim)
    MISSING = "missing"
    #: the file could not be read; it is in ``quarantine/``
    QUARANTINED = "quarantined"
    #: the key is not ``queue/<safe id>.json`` (``spool.keys``): left untouched, unread
    REFUSED = "refused"
    #: shutdown before the end; the rest waits in ``queue/``
    STOPPED = "stopped"
    #: the provider paused sending; nothing failed, the rest waits in ``queue/``
    PAUSED = "paused"
    #: the claim was taken over by another worker
    LOST = "lost"
    #: the run raised (the store failed beyond its retries); the batch waits in ``queue/``
    ERROR = "error"


@dataclass(slots=True)
class BatchReport:
    """What happened to one batch in one run (``status``: see ``BatchStatus``)."""

    key: str
    batch_id: str
    status: BatchStatus = BatchStatus.FINISHED
    sent: int = 0
    failed: int = 0
    continued: int = 0
    pending: int = 0
    continuations: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ran_here(self) -> bool:
        """False when another worker held the batch or had finished it: its line is
        that worker's to print."""
        return self.status not in (BatchStatus.HELD, BatchStatus.MISSING)

    def line(self) -> str:
        """The one line a worker prints for this batch (the trigger prints it, once)."""
        line = (
            f"{self.batch_id}: {self.status}, {self.sent} sent, {self.failed} failed, "
            f"{self.continued} continued, {self.pending} pending"
        )
        return f"{line} ({self.error})" if self.error else line
