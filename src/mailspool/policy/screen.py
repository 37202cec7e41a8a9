"""Take suppressed recipients off an e-mail before it is sent (worker and priority path).

An e-mail keeps its other recipients; with none left there is nothing to send, and the
caller fails it with a reason that says "suppressed". Each removed recipient is named
with the entry that suppressed it, so ``failed list`` and ``trace`` can say why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from mailspool.errors import PermanentError, StoreError
from mailspool.feedback.suppression import Suppression, SuppressionList, shared_suppressions
from mailspool.message import Message
from mailspool.stores.base import Store

__all__ = ["Screened", "describe", "screen", "screen_priority"]

log = logging.getLogger("mailspool.suppression")


@dataclass(frozen=True, slots=True)
class Screened:
    """The e-mail to send (None: every recipient was suppressed) and who was taken off."""

    message: Message | None
    suppressed: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """One line naming every suppressed recipient and why."""
        return "; ".join(f"{address}: {why}" for address, why in self.suppressed.items())


def describe(entry: Suppression) -> str:
    note = f": {entry.diagnostic}" if entry.diagnostic else ""
    scope = "" if entry.tenant is None else f" for tenant {entry.tenant}"
    return f"suppressed{scope} ({entry.reason} since {entry.since}{note})"


def screen(message: Message, suppressions: SuppressionList) -> Screened:
    """``message`` without its suppressed recipients (To, Cc and Bcc alike): those
    suppressed for the account, and for the e-mail's own tenant."""
    kept: dict[str, tuple[str, ...]] = {}
    suppressed: dict[str, str] = {}
    for name in ("to", "cc", "bcc"):
        allowed, gone = suppressions.split(getattr(message, name), message.tenant)
        kept[name] = tuple(allowed)
        suppressed.update((address, describe(entry)) for address, entry in gone.items())
    if not suppressed:
        return Screened(message)
    if not any(kept.values()):
        return Screened(None, suppressed)
    kept_message = replace(message, to=kept["to"], cc=kept["cc"], bcc=kept["bcc"])
    return Screened(kept_message, suppressed)


def screen_priority(message: Message, store: Store) -> tuple[Message, dict[str, str]]:
    """The priority path's check: the e-mail to send now and the recipients taken off.

    Raises ``PermanentError`` when every recipient is suppressed. A store that cannot be
    read does not hold up priority mail (a password reset must still go): it is logged
    and the e-mail goes out unchecked."""
    try:
        screened = screen(message, shared_suppressions(store))
    except StoreError as err:
        log.warning("suppression list unreadable, priority e-mail sent unchecked: %s", err)
        return message, {}
    if screened.message is None:
        raise PermanentError(f"not sent, every recipient is suppressed: {screened.reason}")
    return screened.message, screened.suppressed
