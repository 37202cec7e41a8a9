"""The worker's rate limiter: ``mailspool.ratelimit`` (below every layer, so that priority
sends in a web process take from a budget of the same kind)."""

from mailspool.ratelimit import RateLimiter

__all__ = ["RateLimiter"]
