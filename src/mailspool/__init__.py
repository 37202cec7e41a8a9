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

from mailspool._version import __version__
from mailspool.config import Settings
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
from mailspool.message import Attachment, Message
from mailspool.ops.cancel import cancel
from mailspool.ops.erase import erase
from mailspool.producer.api import send_mail, send_message, send_now
from mailspool.producer.scope import RequestScope, current_scope, request

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
