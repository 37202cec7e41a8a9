"""mailspool: take e-mail sending out of the web request.

Priority e-mail is sent at once over a reused connection; the rest is buffered during
the request, written to a store as JSON batch files when it ends, and delivered by a
worker (``mailspool worker``, or AWS Lambda on the S3 event).

    import mailspool

    with mailspool.request():
        for follower in followers:
            mailspool.send_mail(follower.email, "New post", html)   # queued
        mailspool.send_mail(user.email, "Reset your password", html, priority=True)
"""

import typing
from importlib import import_module

from mailspool._version import __version__
from mailspool.errors import (
    ConfigurationError,
    DeliveryError,
    InvalidBatch,
    InvalidMessage,
    MailspoolError,
    MissingDependency,
    PermanentError,
    SendingPaused,
    StoreError,
    TransientError,
)

if typing.TYPE_CHECKING:
    from mailspool.config import Settings
    from mailspool.message import Attachment, Message
    from mailspool.ops.cancel import cancel
    from mailspool.ops.erase import erase
    from mailspool.producer.api import send_mail, send_message, send_now
    from mailspool.producer.scope import RequestScope, current_scope, request

# The rest of the API is imported on first use: ``import mailspool.<module>`` (the CLI,
# the worker, a Lambda cold start) then loads only what that module needs.
_LAZY = {
    "Settings": "mailspool.config",
    "Attachment": "mailspool.message",
    "Message": "mailspool.message",
    "cancel": "mailspool.ops.cancel",
    "erase": "mailspool.ops.erase",
    "send_mail": "mailspool.producer.api",
    "send_message": "mailspool.producer.api",
    "send_now": "mailspool.producer.api",
    "RequestScope": "mailspool.producer.scope",
    "current_scope": "mailspool.producer.scope",
    "request": "mailspool.producer.scope",
}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mailspool' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Attachment",
    "ConfigurationError",
    "DeliveryError",
    "InvalidBatch",
    "InvalidMessage",
    "MailspoolError",
    "Message",
    "MissingDependency",
    "PermanentError",
    "RequestScope",
    "SendingPaused",
    "Settings",
    "StoreError",
    "TransientError",
    "__version__",
    "cancel",
    "current_scope",
    "erase",
    "request",
    "send_mail",
    "send_message",
    "send_now",
]
