"""Decide whether an e-mail goes out now (priority mail) or later in a batch, behind
the one send function the application calls for both.

In order, the first that speaks decides:

1. the ``priority=`` argument of the call;
2. the header ``X-Mailspool-Priority: now`` or ``deferred``;
3. the marker recipient (``MAILSPOOL_MARKER_RECIPIENT``) among the recipients: deferred;
4. the subject marker prefix (``MAILSPOOL_SUBJECT_MARKER``, ``[Non-priority!]`` by
   default): deferred;
5. ``MAILSPOOL_DEFAULT_PRIORITY`` (``deferred`` unless set to ``now``).

Every marker is removed, whoever decided, so none reaches a recipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

from mailspool.address import canonical_address
from mailspool.errors import InvalidMessage
from mailspool.headers import Priority

__all__ = ["Decision", "classify"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict and the e-mail's fields with the markers removed."""

    priority: bool
    to: tuple[str, ...]
    subject: str


def classify(
    *,
    to: tuple[str, ...],
    subject: str,
    priority: bool | None,
    header: str | None,
    subject_marker: str,
    marker_recipient: str,
    default: str,
) -> Decision:
    votes: list[bool] = []
    if priority is not None:
        votes.append(bool(priority))
    if header is not None:
        votes.append(header == Priority.NOW)
    if marker_recipient:
        marker = _comparable(marker_recipient)
        kept = tuple(a for a in to if _comparable(a) != marker)
        if len(kept) != len(to):
            votes.append(False)
            to = kept
    if subject_marker and subject.startswith(subject_marker):
        votes.append(False)
        subject = subject[len(subject_marker) :].lstrip()
    votes.append(default == Priority.NOW)
    return Decision(priority=votes[0], to=to, subject=subject)


def _comparable(address: str) -> str:
    """The canonical form (``ana@example.com`` for ``"Ana" <ANA@Example.COM>``), or the
    bare address lower-cased when it does not parse: the address check that refuses it
    comes later, with its own reason."""
    try:
        return canonical_address(address)
    except InvalidMessage:
        return parseaddr(address)[1].lower()
