"""The Standard Webhooks signer for a ``whsec_`` secret, from the specification's own
library (``standardwebhooks``, the ``webhooks`` extra): what signs each POST
(``webhooks.http``) and checks a signed one (``webhooks.verify``). Kept apart from the
HTTP client so that verifying, which every worker's import reaches, does not load it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailspool.errors import ConfigurationError, MissingDependency
from mailspool.webhook_rules import secret_bytes

if TYPE_CHECKING:
    from standardwebhooks.webhooks import Webhook

__all__ = ["signer"]


def signer(secret: str) -> Webhook:
    """The library's signer for a ``whsec_`` secret (checked strictly first)."""
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError as err:
        raise MissingDependency("signed webhooks", "webhooks") from err
    try:
        secret_bytes(secret)
    except ValueError:
        raise ConfigurationError(
            "MAILSPOOL_WEBHOOK_SECRET must be a Standard Webhooks secret: whsec_ then base64"
        ) from None
    return Webhook(secret)
