"""Amazon SES (API v2): ``ses://REGION`` or ``ses://`` for the default region.

Query options: ``configuration_set=NAME`` (event publishing, dedicated IPs) and
``max_attempts=N`` (botocore's attempts per call, the first included; 2 by default) and
``max_connections=N`` (the HTTP pool: 32, or ``MAILSPOOL_CONCURRENCY`` for a worker) and
``bulk=false`` (never ``SendBulkEmail``; by default a worker sends e-mails of a batch
that share their content 50 to a call, see ``mailspool.transports.ses_bulk``).

A message without attachments or extra headers goes as SES "Simple" content (SES builds
the MIME); anything else is rendered here (``mailspool.mime.render``: 7-bit, CRLF) and
sent as "Raw" content. Either way SES replaces the Message-ID and Date headers with its
own, so the ``message_id`` a worker passes cannot survive on SES: the receipt carries
SES's id, which is what bounces and complaints refer to. The worker's id
(``<batch.index@domain>``) goes along as two message tags, ``mailspool-batch`` and
``mailspool-index``, which SES echoes in the events it publishes.

The e-mail's own ``tags`` and ``metadata`` (django-anymail's) are in its headers
(``X-Tag``, ``X-Metadata``: such an e-mail goes as Raw content, byte for byte what SMTP
gets) and become message tags too (``message_tags``), so that event destinations and
the events SES publishes show them: each metadata pair as ``Name: key, Value: value``,
each tag as ``Name: tag, Value: true``. SES takes only ASCII letters, digits, ``_`` and
``-`` in a tag's name and value (at most 256 of them), at most 50 tags per e-mail, and
its names once: a pair or tag that cannot be written so, or whose name is mailspool's
own (``mailspool-...``) or already taken (metadata first), stays in the headers only.
Such e-mails are not grouped into ``SendBulkEmail`` calls.

An e-mail with a tenant (``Message.tenant``: ``send_mail(..., tenant=...)``) goes with
``TenantName`` (``SendEmail`` and ``SendBulkEmail``: one tenant a call); a botocore whose
SES v2 model lacks it is named with the version needed (``SendingPaused``: the batch
stops, nothing fails).

An e-mail with a bare local part (``"django"``, no domain: see ``mailspool.message``) is
refused with ``PermanentError``: SES needs a domain for every address.

Retries: botocore retries a dropped connection or a throttled call only briefly (a
small ``max_attempts``). Throttling is the worker's business: it rate-limits every
sender thread from one shared budget (see ``send_rate``), and retries transient
errors with backoff and jitter. One client is shared by every thread.

SES takes at most 50 recipients (To + Cc + Bcc) per message; a larger message is refused
here with ``PermanentError`` rather than half-sent (splitting it belongs to the worker).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailspool._backends import boto3_client
from mailspool.errors import (
    ConfigurationError,
    DeliveryError,
    InvalidMessage,
    MissingDependency,
    PermanentError,
    QuotaExhausted,
    SendingPaused,
    TransientError,
    TransportUnavailable,
)
from mailspool.message import Message
from mailspool.mime import render
from mailspool.tenant_options import TenantOptions
from mailspool.transports._common import check_options, parse_bool, query_parameters
from mailspool.transports.base import BulkEntry, BulkResult, Receipt, SendQuota, Transport
from mailspool.transports.deliverable import (
    MAX_RECIPIENTS,
    check_deliverable,
    without_utf8_recipients,
)
from mailspool.transports.ses_bulk import bulk_key, bulk_request, entry_results
from mailspool.transports.ses_fields import (
    BULK_ENTRIES,
    check_tenants,
    email_tags,
    ses_address,
    ses_destination,
)

try:
    from botocore import exceptions as boto_errors
    from botocore.config import Config
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise MissingDependency("the SES transport (ses://)", "aws") from err

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sesv2.type_defs import SendEmailRequestTypeDef

__all__ = [
    "BULK_ENTRIES",
    "MAX_RECIPIENTS",
    "MAX_TAGS",
    "SESTransport",
    "email_tags",
    "message_tags",
    "ses_address",
    "ses_destination",
    "translate_error",
]

#: SES: at most 50 message tags per e-mail.
MAX_TAGS = 50
_SES_TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")
_URL_OPTIONS = frozenset({"bulk", "configuration_set", "max_attempts", "max_connections"})

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "InternalFailure",
    }
)
#: The account cannot send at all: every e-mail would fail the same way, so the worker
#: stops the batch and fails nothing. Credentials and permissions are in this group too:
#: a broken IAM policy must not mark a whole batch as failed for good.
PAUSED_CODES = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
    }
)


#: SES's answer once ``Max24HourSend`` is reached (v1 code ``Throttling``).
QUOTA_MESSAGE = "daily message quota exceeded"


def translate_error(err: Exception) -> DeliveryError:
    """The ``DeliveryError`` for a botocore error, with SES's code and message.

    Throttling, limits, 5xx and connection failures are transient, and SES's as a whole
    (``TransportUnavailable``: the worker pauses, no e-mail spends an attempt), "Daily
    message quota exceeded" too (``QuotaExhausted``: the pause lasts until the 24-hour
    window frees, ``delivery.quota``); a suspended or paused
    account, or credentials that do not work, pause sending; every other 4xx
    (``MessageRejected``, ``MailFromDomainNotVerifiedException``, ``BadRequestException``,
    ``NotFoundException``...) is permanent.
    """
    if isinstance(err, boto_errors.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        text = f"SES {code or status}: {error.get('Message') or ''}".rstrip(": ")
        if QUOTA_MESSAGE in text.lower():
            return QuotaExhausted(text)  # whatever its code: the window, not the e-mail
        if code in PAUSED_CODES:
            return SendingPaused(text)
        if code in TRANSIENT_CODES or status >= 500:
            return TransportUnavailable(text)  # SES as a whole: throttled, or failing
        return PermanentError(text)
    text = f"SES: {type(err).__name__}: {err}"
    if isinstance(err, boto_errors.ConnectionError | boto_errors.HTTPClientError):
        return TransportUnavailable(text)
    if isinstance(err, boto_errors.ValidationError):
        return PermanentError(text)
    credentials = (
        boto_errors.NoCredentialsError,
        boto_errors.PartialCredentialsError,
        boto_errors.CredentialRetrievalError,
        boto_errors.TokenRetrievalError,
        boto_errors.SSOError,
        boto_errors.NoRegionError,
    )
    if isinstance(err, credentials):
        return SendingPaused(text)
    return TransientError(text)


class SESTransport(Transport):
    """Sends through SES v2 ``SendEmail``; see the module docstring for the choices."""

    def __init__(
        self,
        *,
        region: str | None = None,
        configuration_set: str | None = None,
        max_attempts: int = 2,
        max_connections: int = 32,
        client: SESV2Client | None = None,
        default_sender: str | None = None,
        bulk: bool = True,
        tenants: Mapping[str, TenantOptions] | None = None,
    ) -> None:
        """``max_connections``: the HTTP pool, one per thread that sends at once;
        ``bulk``: e-mails that share their content may go 50 to a ``SendBulkEmail``;
        ``tenants``: each SES tenant's configuration set (``MAILSPOOL_SES_TENANTS``)."""
        if max_attempts < 1 or max_connections < 1:
            raise ConfigurationError(
                "SES transport: max_attempts and max_connections must be >= 1, not "
                f"{max_attempts} and {max_connections}"
            )
        self.configuration_set = configuration_set or None
        self.default_sender = default_sender
        self.tenants: Mapping[str, TenantOptions] = tenants or {}
        self.bulk = bulk
        self.max_bulk = BULK_ENTRIES if bulk else 1
        self._owns_client = client is None
        self._client: SESV2Client = (
            client if client is not None else _make_client(region, max_attempts, max_connections)
        )
        self.region = self._client.meta.region_name
        self.url = f"ses://{region or ''}"
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._rate_known = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SESTransport:
        """``ses://REGION?configuration_set=NAME&max_attempts=N``; ``options`` (e.g.
        ``client=``, ``default_sender=``) go to the constructor and win over the URL."""
        check_options(cls.__init__, options, url)
        parts = urlsplit(url)
        if parts.scheme != "ses" or parts.path not in ("", "/"):
            raise ConfigurationError(f"not an SES transport URL (ses://REGION): {url!r}")
        query = query_parameters(url, parts.query, _URL_OPTIONS)
        arguments: dict[str, Any] = {"region": parts.netloc or None}
        if "configuration_set" in query:
            arguments["configuration_set"] = query["configuration_set"]
        if "bulk" in query:
            arguments["bulk"] = parse_bool(f"SES transport URL {url!r}: bulk", query["bulk"])
        for name in ("max_attempts", "max_connections"):
            if name in query:
                try:
                    arguments[name] = int(query[name])
                except ValueError as err:
                    raise ConfigurationError(
                        f"SES transport URL {url!r}: {name} must be a whole number"
                    ) from err
        arguments.update(options)
        return cls(**arguments)

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Send through SES. A recipient whose local part is not ASCII is refused (SES
        takes no SMTPUTF8) and the others get the e-mail; with none left, PermanentError."""
        sendable, refused = without_utf8_recipients(message)
        if sendable is None:
            listed = "; ".join(f"{a}: {r}" for a, r in refused.items())
            raise PermanentError(f"SES can take no recipient of this e-mail: {listed}")
        request = self.request(sendable, message_id=message_id)
        try:
            response = self._client.send_email(**request)
        except (boto_errors.ClientError, boto_errors.BotoCoreError) as err:
            raise translate_error(err) from err
        return Receipt(message_id=response["MessageId"], refused=refused)

    def request(
        self, message: Message, *, message_id: str | None = None
    ) -> SendEmailRequestTypeDef:
        """The ``SendEmail`` arguments for a message: Simple content when it fits, else Raw."""
        sender = message.sender or self.default_sender
        if not sender:
            raise PermanentError("SES needs a From address: the message has no sender")
        if message.bare_addresses:
            raise PermanentError(
                f"SES cannot send this message: {', '.join(map(repr, message.bare_addresses))} "
                "has no domain (a bare local part, which only an SMTP relay can take)"
            )
        try:
            check_deliverable(message, self.url)
            request: SendEmailRequestTypeDef = {
                "FromEmailAddress": ses_address(sender),
                "Destination": ses_destination(message),
                "Content": {},
            }
            if message.attachments or message.headers or message.tags or message.metadata:
                data = render(message, message_id=message_id, default_sender=sender)
                request["Content"] = {"Raw": {"Data": data}}
            else:
                request["Content"] = {"Simple": _simple(message)}
                if message.reply_to:
                    request["ReplyToAddresses"] = [ses_address(a) for a in message.reply_to]
        except InvalidMessage as err:
            raise PermanentError(f"SES cannot send this message: {err}") from err
        configuration_set = self.configuration_set_for(message)
        if configuration_set:
            request["ConfigurationSetName"] = configuration_set
        if message.tenant is not None:
            check_tenants(self._client)
            request["TenantName"] = message.tenant
        tags = email_tags(message_id)
        tags += message_tags(message, taken={tag["Name"] for tag in tags})
        if tags:
            request["EmailTags"] = tags
        return request

    def configuration_set_for(self, message: Message) -> str | None:
        """The e-mail's tenant's configuration set if it has one, else the transport's."""
        options = self.tenants.get(message.tenant) if message.tenant is not None else None
        if options is not None and options.configuration_set:
            return options.configuration_set
        return self.configuration_set

    def bulk_key(self, message: Message) -> Hashable | None:
        """Equal for e-mails that can share a ``SendBulkEmail`` call (``ses_bulk``)."""
        if not self.bulk or message.tags or message.metadata or message.bare:
            return None  # tags of their own, or a refusal: one SendEmail each
        return bulk_key(message, self.default_sender)

    def send_bulk(self, entries: Sequence[BulkEntry]) -> list[BulkResult]:
        """One ``SendBulkEmail`` call for entries of one ``bulk_key``; a result each."""
        sender = entries[0].message.sender or self.default_sender
        if not sender:
            raise PermanentError("SES needs a From address: the message has no sender")
        if entries[0].message.tenant is not None:
            check_tenants(self._client)
        try:
            configuration_set = self.configuration_set_for(entries[0].message)
            request = bulk_request(entries, sender, configuration_set)
        except InvalidMessage as err:
            raise PermanentError(f"SES cannot send these messages: {err}") from err
        try:
            response = self._client.send_bulk_email(**request)
        except (boto_errors.ClientError, boto_errors.BotoCoreError) as err:
            raise translate_error(err) from err
        return entry_results(response, len(entries))

    def send_rate(self) -> float | None:
        """The account's maximum sends per second (asked once, then remembered), or None
        if SES will not say. SES v2 ``GetAccount`` first, then SES v1 ``GetSendQuota``."""
        with self._lock:
            if not self._rate_known:
                self._rate, self._rate_known = self._fetch_rate()
            return self._rate

    def close(self) -> None:
        """Close the client's pooled connections (a later send opens new ones)."""
        if self._owns_client:
            self._client.close()

    def send_quota(self) -> SendQuota | None:
        """SES's 24-hour quota now (``GetAccount``, else v1 ``GetSendQuota``), or None
        if SES will not say or its answer is not two finite counts (-1: unlimited)."""
        quota, _ = self._ask_quota()
        if quota is None:
            return None
        try:
            sent, most = float(quota["SentLast24Hours"]), float(quota["Max24HourSend"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (math.isfinite(sent) and math.isfinite(most)) or sent < 0 or most < 0:
            return None
        return SendQuota(sent, most)

    def _fetch_rate(self) -> tuple[float | None, bool]:
        """The rate and whether that answer is final (a network failure is not)."""
        quota, final = self._ask_quota()
        try:
            return float(quota["MaxSendRate"]) if quota else None, final
        except (KeyError, TypeError, ValueError):
            return None, final

    def _ask_quota(self) -> tuple[Mapping[str, Any] | None, bool]:
        """SES's ``SendQuota`` and whether that answer is final (a network failure is not)."""
        final = True
        try:
            return dict(self._client.get_account()["SendQuota"]), True
        except (boto_errors.ClientError, KeyError):
            pass  # not implemented (emulators), not allowed, or no quota: ask SES v1
        except boto_errors.BotoCoreError:
            final = False
        meta = self._client.meta
        v1 = boto3_client(  # SES v1 at v2's endpoint: email.REGION.amazonaws.com
            "ses", meta.region_name, meta.config, user=_USER, endpoint_url=meta.endpoint_url
        )
        try:
            return dict(v1.get_send_quota()), True
        except boto_errors.ClientError:
            return None, final
        except boto_errors.BotoCoreError:
            return None, False
        finally:
            v1.close()


_USER = "the SES transport (ses://)"


def _make_client(region: str | None, max_attempts: int, max_connections: int) -> SESV2Client:
    """A client from boto3's default session, whose loaded models are reused."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_connections,
        connect_timeout=5,
        read_timeout=30,
    )
    client: SESV2Client = boto3_client("sesv2", region, config, user=_USER)
    return client


def message_tags(message: Message, taken: set[str] | frozenset[str] = frozenset()) -> list[Any]:
    """The e-mail's metadata, then its tags, as SES message tags (see the module doc):
    those SES can take, under names not ``taken`` and not mailspool's, 50 in all."""
    pairs = [*message.metadata, *((tag, "true") for tag in message.tags)]
    result: list[Any] = []
    names = set(taken)
    for name, value in pairs:
        if len(names) >= MAX_TAGS:
            break
        if name in names or name.lower().startswith("mailspool-"):
            continue
        if _SES_TAG_TEXT.fullmatch(name) and _SES_TAG_TEXT.fullmatch(value):
            result.append({"Name": name, "Value": value})
            names.add(name)
    return result


def _simple(message: Message) -> Any:
    charset = message.charset.upper()
    body: dict[str, Any] = {}
    if message.text is not None:
        body["Text"] = {"Data": message.text, "Charset": charset}
    if message.html is not None:
        body["Html"] = {"Data": message.html, "Charset": charset}
    return {"Subject": {"Data": message.subject, "Charset": charset}, "Body": body}
