"""Priority mail's part of the account's rate: ``MAILSPOOL_PRIORITY_SHARE`` of it.

The worker takes at most ``(1 - share)`` of the rate (``delivery.factory.effective_rate``);
priority e-mails sent at once take theirs from a budget of the same kind
(``mailspool.ratelimit``), one per open priority transport (``transports.open_transports``: one per URL in a process), so that worker and
priority sends together stay under the provider's limit (SES: ``MaxSendRate``). The
budget lets ``share x rate`` recipients go at once (a password reset never waits behind
an idle budget) and paces only a burst beyond that. A transport without a limit of its
own (SMTP), or a share of 0, leaves priority mail unpaced.
"""

from __future__ import annotations

import threading
import weakref

from mailspool.config import Settings
from mailspool.ratelimit import RateLimiter
from mailspool.transports.base import Transport

__all__ = ["priority_budget"]

_budgets: weakref.WeakKeyDictionary[Transport, RateLimiter] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def priority_budget(settings: Settings, transport: Transport) -> RateLimiter:
    """The process's budget for priority sends through ``transport`` (made on first use:
    ``MAILSPOOL_MAX_RATE``, else the transport's own limit, times the priority share)."""
    with _lock:
        budget = _budgets.get(transport)
        if budget is None:
            rate = settings.max_rate if settings.max_rate is not None else transport.send_rate()
            share = None if rate is None else rate * settings.priority_share
            budget = RateLimiter(share or None, burst=max(share or 1.0, 1.0))
            _budgets[transport] = budget
        return budget
