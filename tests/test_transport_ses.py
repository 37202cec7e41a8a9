"""The SES transport against moto in server mode: real HTTP, plain boto3.

moto records what SES accepted at ``/moto-api/data.json``. A raw send keeps its bytes,
so it is parsed as it would arrive. A simple send keeps only sender, destinations,
subject and one body without its type (the HTML one when there are two); ``delivered``
rebuilds a text message from that, and the contract tests that need more (the charset,
the HTML body) check the request that went over the wire as well. Simple records come
before raw ones: moto keeps the two kinds apart.

SES replaces the Message-ID header of every message with its own and answers with its
own message id, so the contract's Message-ID tests are replaced by SES's promise: the
receipt carries the id SES gave to that message.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from mailspool.errors import (
    ConfigurationError,
    PermanentError,
    QuotaExhausted,
    SendingPaused,
    TransientError,
    TransportUnavailable,
)
from mailspool.message import Message
from mailspool.transports import Receipt, Transport, open_transport
from mailspool.transports.base import SendQuota
from mailspool.transports.ses import SESTransport, translate_error
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.moto_ses_quota import SESQuota
from tests.transport_contract import Arrived, Delivered, TransportContract, simple_message

SENDER = "Mailspool Tests <sender@example.com>"


@pytest.fixture
def sesv2(aws: MotoServer) -> Any:
    """SES in moto with the senders' domains verified (the contract sends from both)."""
    client = boto3.client("sesv2")
    for domain in ("example.com", "example.de"):
        client.create_email_identity(EmailIdentity=domain)
    return client


@pytest.fixture
def transport(sesv2: Any) -> Iterator[SESTransport]:
    with closing(SESTransport(region="us-east-1")) as ses:
        yield ses


class SESDelivered:
    """``delivered`` for the contract, plus what only SES tests need: moto's records and
    the SendEmail requests as they went over the wire (decoded from their JSON body)."""

    def __init__(self, moto: MotoServer, transport: SESTransport) -> None:
        self.moto = moto
        self.requests: list[dict[str, Any]] = []
        transport._client.meta.events.register("before-send.sesv2.SendEmail", self._record)

    def __call__(self) -> list[Arrived]:
        return [arrived(record) for record in self.records()]

    def records(self) -> list[dict[str, Any]]:
        return self.moto.ses_messages()

    def _record(self, request: Any, **_: Any) -> None:
        self.requests.append(json.loads(request.body))


@pytest.fixture
def delivered(aws: MotoServer, transport: SESTransport) -> SESDelivered:
    return SESDelivered(aws, transport)


def ses_view(delivered: Delivered) -> SESDelivered:
    assert isinstance(delivered, SESDelivered)
    return delivered


def arrived(record: dict[str, Any]) -> Arrived:
    """One moto record as ``(envelope sender, envelope recipients, message)``."""
    if "raw_data" in record:
        message = parse(record["raw_data"])
        destinations = list(record["destinations"])  # the Destination, then the headers
    else:
        message = EmailMessage()
        message["From"] = record["source"]
        for header, field in (("To", "ToAddresses"), ("Cc", "CcAddresses")):
            if record["destinations"].get(field):
                message[header] = ", ".join(record["destinations"][field])
        message["Subject"] = record["subject"]
        message.set_content(record["body"])
        destinations = [a for field in record["destinations"].values() for a in field]
    recipients = tuple(dict.fromkeys(parseaddr(address)[1] for address in destinations))
    return parseaddr(record["source"])[1], recipients, message


def parse(raw: str) -> EmailMessage:
    parsed = message_from_string(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def message(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "to": "Ann <ann@example.org>",
        "subject": "Hello",
        "text": "Hi Ann",
        "sender": SENDER,
    }
    values.update(fields)
    return Message.build(**values)


def simple_records(moto: MotoServer) -> list[dict[str, Any]]:
    return list(moto.data()["ses"]["Message"])


def raw_records(moto: MotoServer) -> list[dict[str, Any]]:
    return list(moto.data()["ses"]["RawMessage"])


class TestSESTransport(TransportContract):
    """The transport contract through SES; see the module docstring for what differs."""

    def test_charset_is_kept(self, transport: Transport, delivered: Delivered) -> None:
        """A simple send: moto keeps no charset, so the request shows the one SES got."""
        transport.send(simple_message("Café", text="Café crème à la carte\n", charset="iso-8859-1"))
        [(_, _, got)] = delivered()
        assert got["Subject"] == "Café"
        assert got.get_content() == "Café crème à la carte\n"
        [request] = ses_view(delivered).requests
        assert request["Content"]["Simple"] == {
            "Subject": {"Data": "Café", "Charset": "ISO-8859-1"},
            "Body": {"Text": {"Data": "Café crème à la carte\n", "Charset": "ISO-8859-1"}},
        }

    def test_html_only_message(self, transport: Transport, delivered: Delivered) -> None:
        """A simple send: moto keeps the body without its type; the request has it."""
        transport.send(simple_message(text=None, html="<h1>Only HTML</h1>\n"))
        [record] = ses_view(delivered).records()
        assert record["body"] == "<h1>Only HTML</h1>\n"
        [request] = ses_view(delivered).requests
        assert request["Content"]["Simple"]["Body"] == {
            "Html": {"Data": "<h1>Only HTML</h1>\n", "Charset": "UTF-8"}
        }

    def test_given_message_id_is_used(self, transport: Transport, delivered: Delivered) -> None:
        """SES sets its own Message-ID; the receipt is SES's id for the message."""
        receipt = transport.send(simple_message(), message_id="<fixed-1@mailspool.test>")
        [record] = ses_view(delivered).records()
        assert receipt == Receipt(record["id"])

    def test_generated_message_id_is_the_one_sent(
        self, transport: Transport, delivered: Delivered
    ) -> None:
        """The receipts are SES's ids, one per message, in the order sent."""
        first = transport.send(simple_message("one"))
        second = transport.send(simple_message("two"))
        ids = [record["id"] for record in ses_view(delivered).records()]
        assert ids == [first.message_id, second.message_id]
        assert first.message_id != second.message_id

    def test_the_message_own_id_wins(self, transport: Transport, delivered: Delivered) -> None:
        """The message's own Message-ID is the one that leaves (SES then replaces it)."""
        message = simple_message(headers={"Message-ID": "<own@mailspool.test>"})
        receipt = transport.send(message, message_id="<other@mailspool.test>")
        [(_, _, got)] = delivered()
        [record] = ses_view(delivered).records()
        assert receipt == Receipt(record["id"])
        assert got.get_all("Message-ID") == ["<own@mailspool.test>"]

    def test_many_threads_each_message_arrives_once(
        self, transport: Transport, delivered: Delivered
    ) -> None:
        """As the contract's, with SES's ids for Message-IDs."""
        subjects = [f"message {number}" for number in range(40)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            receipts = list(pool.map(lambda s: transport.send(simple_message(s)), subjects))
        assert Counter(str(got["Subject"]) for _, _, got in delivered()) == Counter(subjects)
        ids = {receipt.message_id for receipt in receipts}
        assert len(ids) == len(subjects)
        assert {record["id"] for record in ses_view(delivered).records()} == ids


# -- configuration ---------------------------------------------------------------------


def test_from_url_reads_region_and_options(aws: MotoServer) -> None:
    transport = SESTransport.from_url("ses://eu-west-1?configuration_set=tracking&max_attempts=4")
    assert transport.region == "eu-west-1"
    assert transport.configuration_set == "tracking"
    retries = transport._client.meta.config.retries  # type: ignore[attr-defined]
    assert retries == {"mode": "standard", "total_max_attempts": 4}
    assert SESTransport.from_url("ses://").region == "us-east-1"  # AWS_DEFAULT_REGION


def test_open_transport_opens_ses_urls(sesv2: Any) -> None:
    with open_transport("ses://us-east-1", default_sender=SENDER) as transport:
        assert isinstance(transport, SESTransport)
        assert transport.send(message(sender=None)).message_id
    with pytest.raises(ConfigurationError, match="colour"):
        open_transport("ses://", colour="blue")


@pytest.mark.parametrize(
    "url", ["ses://us-east-1?colour=blue", "ses://us-east-1?max_attempts=many", "smtp://x"]
)
def test_bad_urls_are_configuration_errors(aws: MotoServer, url: str) -> None:
    with pytest.raises(ConfigurationError):
        SESTransport.from_url(url)


# -- simple or raw -----------------------------------------------------------------------


def test_a_plain_message_goes_as_simple_content(transport: SESTransport, aws: MotoServer) -> None:
    receipt = transport.send(
        message(cc="Bob <bob@example.org>", bcc="hidden@example.org", reply_to="r@example.com")
    )
    [record] = simple_records(aws)
    assert raw_records(aws) == []
    assert record["id"] == receipt.message_id
    assert record["subject"] == "Hello"
    assert record["body"] == "Hi Ann"
    assert record["destinations"] == {
        "ToAddresses": ["Ann <ann@example.org>"],
        "CcAddresses": ["Bob <bob@example.org>"],
        "BccAddresses": ["hidden@example.org"],
    }
    request = transport.request(message(reply_to="r@example.com"))
    assert request["ReplyToAddresses"] == ["r@example.com"]
    assert request["Content"]["Simple"]["Body"]["Text"] == {"Data": "Hi Ann", "Charset": "UTF-8"}


@pytest.mark.parametrize(
    "extra",
    [
        {"attachments": [("report.csv", b"a,b\n1,2\n", "text/csv")]},
        {"headers": {"List-Unsubscribe": "<mailto:stop@example.com>"}},
    ],
    ids=["attachment", "extra header"],
)
def test_attachments_or_extra_headers_go_as_raw_mime(
    transport: SESTransport, aws: MotoServer, extra: dict[str, Any]
) -> None:
    receipt = transport.send(message(bcc="hidden@example.org", **extra))
    assert simple_records(aws) == []
    [record] = raw_records(aws)
    assert record["id"] == receipt.message_id
    parsed = parse(record["raw_data"])
    assert parsed["To"] == "Ann <ann@example.org>"
    assert parsed["Bcc"] is None  # in the envelope (Destination) only
    assert "hidden@example.org" in record["destinations"]
    assert record["raw_data"].isascii()
    assert "\r\n" in record["raw_data"]
    if "attachments" in extra:
        [part] = list(parsed.iter_attachments())
        assert part.get_filename() == "report.csv"
        assert part.get_content() == "a,b\n1,2\n"
    else:
        assert parsed["List-Unsubscribe"] == "<mailto:stop@example.com>"


def test_international_names_and_domains_are_encoded_for_ses(transport: SESTransport) -> None:
    request = transport.request(
        message(to="Jürgen Groß <j@bücher.example>", sender="Zoë <zoe@example.com>")
    )
    assert request["FromEmailAddress"] == "=?utf-8?q?Zo=C3=AB?= <zoe@example.com>"
    [to] = request["Destination"]["ToAddresses"]
    assert to.isascii()
    assert to.endswith("<j@xn--bcher-kva.example>")


def test_configuration_set_is_passed_on(sesv2: Any) -> None:
    sesv2.create_configuration_set(ConfigurationSetName="tracking")
    with closing(SESTransport(configuration_set="tracking")) as transport:
        seen: list[str | None] = []
        transport._client.meta.events.register(
            "provide-client-params.sesv2.SendEmail",
            lambda params, **_: seen.append(params.get("ConfigurationSetName")),
        )
        transport.send(message())
    assert seen == ["tracking"]


# -- refusals ----------------------------------------------------------------------------


def test_an_unverified_sender_is_a_permanent_error_with_the_ses_code(
    transport: SESTransport,
) -> None:
    with pytest.raises(PermanentError, match=r"MessageRejected.*not verified") as caught:
        transport.send(message(sender="someone@unverified.example"))
    assert "MessageRejected" in caught.value.response


def test_more_than_fifty_recipients_are_refused_before_calling_ses(transport: SESTransport) -> None:
    calls: list[str] = []
    transport._client.meta.events.register(
        "before-call.*", lambda model, **_: calls.append(model.name)
    )
    recipients = [f"user{i}@example.org" for i in range(30)]
    with pytest.raises(PermanentError, match="at most 50 recipients"):
        transport.send(message(to=recipients, bcc=[f"b{i}@example.org" for i in range(21)]))
    assert calls == []


def test_a_message_without_sender_is_refused(transport: SESTransport) -> None:
    with pytest.raises(PermanentError, match="From address"):
        transport.send(message(sender=None))
    with closing(SESTransport(default_sender=SENDER)) as transport:
        assert transport.send(message(sender=None)).message_id


def test_an_unreachable_endpoint_is_a_transient_error(aws: MotoServer) -> None:
    transport = SESTransport(client=unreachable_client())
    with pytest.raises(TransientError, match="EndpointConnectionError"):
        transport.send(message())


def unreachable_client() -> Any:
    """An SES v2 client for a port where nothing listens; one attempt, short timeouts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return boto3.client(
        "sesv2",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"total_max_attempts": 1}),
    )


# -- the account's rate ------------------------------------------------------------------


def test_send_rate_comes_from_get_account_and_is_asked_once(transport: SESTransport) -> None:
    """SES v2 GetAccount answers (the server's, ``tests/fixtures/moto_ses_quota.py``)."""
    calls: list[str] = []
    transport._client.meta.events.register(
        "before-call.*", lambda model, **_: calls.append(model.name)
    )
    assert transport.send_rate() == 14.0
    assert transport.send_rate() == 14.0
    assert calls == ["GetAccount"]


def test_send_rate_falls_back_to_v1(transport: SESTransport, ses_quota: SESQuota) -> None:
    """Without SES v2 GetAccount the v1 GetSendQuota answers (moto: 1 per second)."""
    ses_quota.account_api = False
    assert transport.send_rate() == 1.0
    assert transport.send_quota() == SendQuota(0.0, 200.0)  # moto v1's fixed figures


def test_send_rate_is_none_and_asked_again_when_ses_cannot_be_reached(
    aws: MotoServer,
) -> None:
    transport = SESTransport(client=unreachable_client())
    calls: list[str] = []
    transport._client.meta.events.register(
        "before-call.*", lambda model, **_: calls.append(model.name)
    )
    assert transport.send_rate() is None
    assert transport.send_rate() is None
    assert calls == ["GetAccount", "GetAccount"]


# -- error mapping -----------------------------------------------------------------------


def client_error(code: str, status: int, text: str = "it said no") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": text},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "SendEmail")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("Throttling", 400, TransportUnavailable),
        ("ThrottlingException", 400, TransportUnavailable),
        ("TooManyRequestsException", 429, TransportUnavailable),
        ("LimitExceededException", 400, TransportUnavailable),
        ("InternalFailure", 500, TransportUnavailable),
        ("ServiceUnavailable", 503, TransportUnavailable),
        ("SomethingNew", 502, TransportUnavailable),
        ("AccountSuspendedException", 400, SendingPaused),
        ("SendingPausedException", 400, SendingPaused),
        ("AccessDeniedException", 403, SendingPaused),
        ("MessageRejected", 400, PermanentError),
        ("MailFromDomainNotVerifiedException", 400, PermanentError),
        ("BadRequestException", 400, PermanentError),
        ("NotFoundException", 404, PermanentError),
        ("SomethingNew", 400, PermanentError),
    ],
)
def test_ses_error_codes_map_to_delivery_errors(
    code: str, status: int, expected: type[Exception]
) -> None:
    """A stub for faults no server here can produce (moto never throttles, pauses an
    account or fails with a 5xx): the mapping is checked on constructed ClientErrors."""
    error = translate_error(client_error(code, status, "details from AWS"))
    assert type(error) is expected
    assert code in str(error)
    assert "details from AWS" in str(error)


def test_connection_and_credential_errors_map_to_delivery_errors() -> None:
    """Also a stub: botocore errors built by hand, as a dropped network would raise them."""
    dropped = translate_error(EndpointConnectionError(endpoint_url="https://email.example"))
    assert type(dropped) is TransportUnavailable  # SES as a whole: the worker pauses
    assert type(translate_error(NoCredentialsError())) is SendingPaused


@pytest.mark.parametrize("code", ["Throttling", "LimitExceededException", "SendingPausedException"])
def test_daily_message_quota_exceeded_is_the_quota_whatever_the_code(code: str) -> None:
    """A stub as above: SES v1 answers ``Throttling``, v2 a limit; the message decides."""
    error = translate_error(client_error(code, 400, "Daily message quota exceeded."))
    assert type(error) is QuotaExhausted
