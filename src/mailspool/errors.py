"""Every error mailspool raises, under one root.

```
MailspoolError
├─ ConfigurationError (also ValueError)     a setting or URL is wrong
│  └─ MissingDependency                      an optional extra is not installed
├─ InvalidMessage (also ValueError)         one e-mail is wrong: names source, index, field
│  ├─ InvalidBatch                          a batch file cannot be read
│  └─ InvalidRecord                         a failed or quarantine record cannot be read
├─ WebhookRefused                           a webhook delivery that does not verify
├─ StoreError                               the store failed or cannot be reached
│  ├─ KeyNotFound (also KeyError)
│  ├─ LeaseLost                             another worker took over a claim
│  ├─ UnsafeKey (also ValueError)           a key or id with '/', '..', NUL or a control char
│  └─ ObjectRefused                         not read: a symlink, a special file...
│     ├─ ObjectTooLarge                     ...or larger than the limit
│     └─ Undecryptable                      ...or sealed and cannot be opened (key, tampering)
└─ DeliveryError                            a send failed
   ├─ TransientError                        retry later: 4xx, throttling, dropped connection
   │  ├─ TransportUnavailable               the provider is down or busy: pause, spend no attempt
   │  └─ SendingPaused                      the provider stopped sending: stop, fail nothing
   └─ PermanentError                        never retry: 5xx, refused recipient, bad address
      └─ SenderNotAllowed                   From or Sender not in MAILSPOOL_ALLOWED_SENDERS
```

Third-party errors are translated where they enter (``raise ... from err``), so callers
only ever catch these.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ContentUnanswered",
    "DeliveryError",
    "InvalidBatch",
    "InvalidMessage",
    "InvalidRecord",
    "KeyNotFound",
    "LeaseLost",
    "MailspoolError",
    "MissingDependency",
    "ObjectRefused",
    "ObjectTooLarge",
    "PermanentError",
    "QuotaExhausted",
    "SenderNotAllowed",
    "SendingPaused",
    "StoreError",
    "TransientError",
    "TransportUnavailable",
    "Undecryptable",
    "UnsafeKey",
    "WebhookRefused",
]


class MailspoolError(Exception):
    """The root of every error mailspool raises."""


class ConfigurationError(MailspoolError, ValueError):
    """A setting, URL or argument is wrong; the message names it."""


class MissingDependency(ConfigurationError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs an optional dependency: pip install 'mailspool[{extra}]'"
        )
        self.extra = extra


class InvalidMessage(MailspoolError, ValueError):
    """An e-mail is invalid. Says where: the source (file or call), the e-mail, the field."""

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        index: int | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = reason
        self.field = field
        self.index = index
        self.source = source
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source)
        if self.index is not None:
            where.append(f"e-mail #{self.index}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, *, source: str | None = None, index: int | None = None) -> InvalidMessage:
        """The same error with the source and e-mail index filled in where unknown."""
        error = type(self).__new__(type(self))
        InvalidMessage.__init__(
            error,
            self.reason,
            field=self.field,
            index=self.index if self.index is not None else index,
            source=self.source if self.source is not None else source,
        )
        return error


class InvalidBatch(InvalidMessage):
    """A batch file cannot be read: not JSON, wrong types, missing fields, unknown version."""


class InvalidRecord(InvalidMessage):
    """A record of the store (``failed/``, ``quarantine/``) cannot be read; names the key
    and the field."""


class StoreError(MailspoolError):
    """The store failed or cannot be reached."""


class KeyNotFound(StoreError, KeyError):
    """No object at that key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "key not found"


class LeaseLost(StoreError):
    """A claim expired and another worker took it over; stop working on that batch."""


class UnsafeKey(StoreError, ValueError):
    """A key or id read from the store or an event that could leave its folder or
    confuse a log: empty, with ``/``, ``\\``, ``..``, NUL or a control character."""


class ObjectRefused(StoreError):
    """The store will not read this object: a symbolic link, a device, a FIFO..."""


class ObjectTooLarge(ObjectRefused):
    """The object is larger than the caller's limit; nothing of it was read."""

    def __init__(self, key: str, size: int, limit: int, setting: str) -> None:
        super().__init__(
            f"{key}: {size} bytes, more than the limit {setting}={limit}; nothing was read"
        )
        self.key, self.size, self.limit, self.setting = key, size, limit, setting


class Undecryptable(ObjectRefused):
    """A sealed object (``spool.envelope``) that cannot be opened: not a valid envelope,
    a key id no configured key has, a data key that does not unwrap, or a ciphertext
    that fails authentication (a changed byte, or a file moved to another name). The
    message names the key and the reason; nothing of its content was used."""


class DeliveryError(MailspoolError):
    """A send failed. ``response`` is the provider's answer, as it gave it; ``refused``
    each recipient's answer when the server refused them all."""

    def __init__(
        self, message: str, *, response: str | None = None, refused: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.response = response if response is not None else message
        #: When the server refused every recipient: each one's answer, as in
        #: ``Receipt.refused`` (``{"x@example.com": "550 5.1.1 no such user"}``).
        self.refused: dict[str, str] = dict(refused or {})


class TransientError(DeliveryError):
    """The send may succeed later: SMTP 4xx, throttling, timeout, dropped connection."""


class ContentUnanswered(TransientError):
    """The connection dropped or timed out after the content left, before any answer:
    the e-mail may have arrived (retried as a counted attempt), and the server said
    nothing, so it is no sign that the transport is back (``delivery.outage``)."""


class TransportUnavailable(TransientError):
    """The provider took nothing, whatever the e-mail: connection refused, a timeout or
    a dropped connection before the content, a TLS failure, a 421, throttling. The
    worker pauses delivery through it and spends no e-mail's attempt
    (``delivery.outage``)."""


class QuotaExhausted(TransportUnavailable):
    """The provider's 24-hour quota is used up (SES: "Daily message quota exceeded"):
    deferred mail waits for the window, no e-mail spends an attempt (``delivery.quota``)."""


class SendingPaused(TransientError):
    """The provider stopped all sending (account paused); stop the batch, fail nothing."""


class PermanentError(DeliveryError):
    """The send will never succeed as it is: SMTP 5xx, refused recipient, invalid address."""


class SenderNotAllowed(PermanentError):
    """The From or Sender address is not in ``MAILSPOOL_ALLOWED_SENDERS``: never sent."""


class WebhookRefused(MailspoolError):
    """A webhook delivery that does not verify (tampered, replayed, unsigned, malformed);
    the message says which check it failed."""
