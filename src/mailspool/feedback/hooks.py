"""Callbacks run once per SES event, so an application can act (flag a user's address).

``register(callback)`` adds a callable taking a ``FeedbackEvent``; the ``on_event``
setting (``MAILSPOOL_ON_EVENT=package.module:function``) names one to import. Django
gets signals (``mailspool.integrations.django_signals``). A hook runs once per event
id, after the event is recorded; a hook that raises is logged and the others still run
(the event is not retried for it: its effects on the store are already made).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailspool.errors import ConfigurationError

if TYPE_CHECKING:
    from mailspool.feedback.events import FeedbackEvent

__all__ = ["Hook", "fire", "load_hook", "register", "unregister"]

log = logging.getLogger("mailspool.feedback")

Hook = Callable[["FeedbackEvent"], object]
_hooks: list[Hook] = []
_lock = threading.Lock()


def register(hook: Hook) -> Hook:
    """Run ``hook(event)`` for every new event; returns it (usable as a decorator)."""
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)
    return hook


def unregister(hook: Hook) -> None:
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


def load_hook(path: str, setting: str = "MAILSPOOL_ON_EVENT") -> Hook:
    """The callable named ``package.module:function``; ConfigurationError names the setting."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigurationError(f"{setting} must be 'package.module:function', not {path!r}")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ConfigurationError(f"{setting}: cannot import {path!r}: {err}") from err
    if not callable(found):
        raise ConfigurationError(f"{setting}: {path!r} is not callable")
    hook: Hook = found
    return hook


def fire(event: FeedbackEvent, configured: Hook | None = None) -> None:
    """Run every registered hook (then ``configured``) on ``event``; failures are
    logged, never raised."""
    with _lock:
        hooks = list(_hooks)
    if configured is not None and configured not in hooks:
        hooks.append(configured)
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            log.exception("feedback hook %r failed on event %s", hook, event.id)
