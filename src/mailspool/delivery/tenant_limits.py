"""Each SES tenant's part of one worker's sending (``MAILSPOOL_SES_TENANTS``): its rate
(recipients per second, a limiter of its own beside the worker's) and its daily cap (a
24-hour window of its recipients, ``delivery.quota``).

A tenant's e-mail past its cap waits for the tenant's window (the attempt is not spent,
the other tenants' e-mails go on); with a deadline (Lambda) a batch whose e-mails all
wait past it ends ``paused``. The counts are the worker's own: several workers each
keep the cap (give each its part, as for the rate).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from mailspool.delivery.quota import DailyQuota
from mailspool.ratelimit import RateLimiter
from mailspool.tenant_options import TenantOptions
from mailspool.transports.base import SendQuota

__all__ = ["TenantLimits"]


class TenantLimits:
    """The rate limiters and daily windows of the tenants that have them."""

    def __init__(
        self,
        options: Mapping[str, TenantOptions],
        *,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self.limiters = {
            name: RateLimiter(o.max_rate, stop=stop) for name, o in options.items() if o.max_rate
        }
        self.windows = {
            name: DailyQuota(SendQuota(0.0, float(o.daily_cap)), clock=clock)
            for name, o in options.items()
            if o.daily_cap
        }

    def take(self, tenant: str | None, units: int) -> float:
        """Count ``units`` in the tenant's window: 0, or the seconds to wait (nothing
        counted) when its daily cap is reached."""
        window = self.windows.get(tenant) if tenant is not None else None
        return 0.0 if window is None else window.take(units)

    def give_back(self, tenant: str | None, units: int) -> None:
        window = self.windows.get(tenant) if tenant is not None else None
        if window is not None:
            window.give_back(units)

    def acquire(self, tenant: str | None, units: int) -> bool:
        """Wait for the tenant's rate; False if the worker stops meanwhile."""
        limiter = self.limiters.get(tenant) if tenant is not None else None
        return True if limiter is None else limiter.acquire(units)

    def reason(self, tenant: str | None) -> str:
        figures = self.windows[str(tenant)].figures()
        return (
            f"tenant {tenant}'s daily cap (MAILSPOOL_SES_TENANTS daily_cap {figures.limit:.0f}): "
            f"{figures.used:.0f} recipients in 24 hours, waiting for its window"
        )
