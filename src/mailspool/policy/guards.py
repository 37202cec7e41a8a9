"""What the worker checks in every e-mail it reads from the store, in one place.

The store is written by someone with less privilege than the worker (on AWS, the web
application), so an e-mail is read through these guards: its counts against the
limits before anything it refers to is read, its path attachments only from beneath
``MAILSPOOL_ATTACHMENT_ROOT``, its blobs within the attachment size, and its sender
against ``MAILSPOOL_ALLOWED_SENDERS``. Each refusal fails that e-mail for good with a
reason naming the setting; the rest of the batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mailspool.errors import InvalidMessage
from mailspool.message import Attachment, Message
from mailspool.policy.allowed_senders import AllowedSenders
from mailspool.policy.attachment_root import PathAttachments
from mailspool.policy.limits import LIMIT_SETTINGS, Limits
from mailspool.spool.batch import Batch, BlobReader

if TYPE_CHECKING:
    from mailspool.config import Settings

__all__ = ["Guards"]


@dataclass(frozen=True, slots=True)
class Guards:
    """Limits, the attachment root and the allowed senders of one worker. The defaults
    are the safe ones: no path attachment is read, any sender is allowed."""

    limits: Limits = field(default_factory=Limits)
    attachment_root: str | None = None
    senders: AllowedSenders = field(default_factory=AllowedSenders)
    files: PathAttachments = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        files = PathAttachments(
            self.attachment_root,
            max_bytes=self.limits.attachment_bytes,
            size_setting=LIMIT_SETTINGS["attachment_bytes"],
        )
        object.__setattr__(self, "files", files)  # frozen: set once, here

    @classmethod
    def from_settings(cls, settings: Settings) -> Guards:
        limits = Limits(**{name: getattr(settings, f"max_{name}") for name in LIMIT_SETTINGS})
        return cls(
            limits=limits,
            attachment_root=settings.attachment_root,
            senders=AllowedSenders.parse(settings.allowed_senders),
        )

    def read(self, batch: Batch, index: int, blobs: BlobReader, default_sender: str) -> Message:
        """E-mail ``index`` of ``batch``, checked, its From defaulted; ``InvalidMessage``
        or ``SenderNotAllowed`` (a ``PermanentError``) if it may not be sent."""
        try:
            self.limits.check_raw(batch.meta, batch.raw_email(index))
        except InvalidMessage as err:
            raise err.located(source=batch.source, index=index) from None
        budget = _Budget(self.limits, self.limits.footprint(batch.raw_email(index)).reads)
        message = batch.message(
            index,
            lambda digest: budget.spend(blobs(digest)),
            lambda path: budget.spend_file(self.files.read(path)),
        )
        try:
            self.limits.check_message(message)
        except InvalidMessage as err:
            raise err.located(source=batch.source, index=index) from None
        if message.sender is None:
            message = replace(message, sender=default_sender)
        self.senders.check(message)
        return message


class _Budget:
    """The bytes one e-mail's blobs and files may bring into memory: its footprint's
    ``reads`` (declared sizes, at most ``message_bytes``). Reading stops past it, so the
    footprint the worker reserved for the e-mail holds."""

    def __init__(self, limits: Limits, allowed: int) -> None:
        self.left = allowed
        self.setting = limits.setting("message_bytes")

    def spend(self, content: bytes) -> bytes:
        self.left -= len(content)
        if self.left < 0:
            raise InvalidMessage(
                "its attachments are larger than their declared sizes or add up to more "
                f"than {self.setting}; the rest was not read",
                field="attachments",
            )
        return content

    def spend_file(self, attachment: Attachment) -> Attachment:
        self.spend(attachment.content)
        return attachment
