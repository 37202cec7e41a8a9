"""Drop-in for Django: lazy strings, bare local parts, tags and metadata (django-anymail's).

Each e-mail goes the deferred way (a batch file in a spool, a worker's drain) to a real
SMTP server (aiosmtpd) or to SES (moto in server mode), unless a test says otherwise.
"""

from __future__ import annotations

import json
from contextlib import closing
from email import message_from_string, policy
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import django_settings

django_settings.configure()

from django.core import mail  # noqa: E402
from django.core.mail import EmailMessage, EmailMultiAlternatives  # noqa: E402
from django.utils.translation import gettext_lazy as _  # noqa: E402

import mailspool  # noqa: E402
from mailspool import Attachment, InvalidBatch, InvalidMessage, Message, PermanentError  # noqa: E402
from mailspool.address import has_line_break  # noqa: E402
from mailspool.cli import cli  # noqa: E402
from mailspool.delivery.factory import build_worker  # noqa: E402
from mailspool.feedback.suppression import Reason, SuppressionList  # noqa: E402
from mailspool.integrations.django import load_settings, to_message  # noqa: E402
from mailspool.message import bare_local_part, split_addresses  # noqa: E402
from mailspool.spool import batch, layout  # noqa: E402
from mailspool.spool.ledger import read_entries  # noqa: E402
from mailspool.stores import open_store  # noqa: E402
from mailspool.transports import open_transport  # noqa: E402
from mailspool.transports.ses import SESTransport  # noqa: E402
from mailspool.triggers.local import drain  # noqa: E402
from tests import framework_common as common  # noqa: E402
from tests.fixtures.moto_server import MotoServer  # noqa: E402
from tests.fixtures.smtp_server import SMTPSink  # noqa: E402
from tests.strategies import labelled_messages  # noqa: E402
from tests.test_batch_format import V1  # noqa: E402

SENDER = "Blog <blog@example.com>"
TAGS = ["welcome", "two words", "naïve"]  # SES can take only the first as a message tag
METADATA = {"user_id": 42, "plan": _("pro"), "note": "a b"}  # values as text: "42"
SENT_METADATA = {"user_id": "42", "plan": "pro", "note": "a b"}


@pytest.fixture
def spooled(spool: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Deferred mail (the default) to a tmp spool."""
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    return spool


def labelled(to: list[Any], **fields: Any) -> EmailMessage:
    email = EmailMessage("Welcome", "Hello", SENDER, to, **fields)
    email.tags = TAGS  # type: ignore[attr-defined]
    email.metadata = METADATA  # type: ignore[attr-defined]
    return email


# -- lazy strings -------------------------------------------------------------------------


def lazy_email() -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=_("New post"),
        body=_("Read it"),
        from_email=_("Blog <blog@example.com>"),
        to=[_("ana@example.com")],
        cc=[_("cc@example.com")],
        bcc=[_("bcc@example.com")],
        reply_to=[_("replies@example.com")],
        headers={_("X-Campaign"): _("posts")},
    )
    email.attach_alternative(_("<p>Read it</p>"), "text/html")
    email.attach(_("notes.txt"), _("the notes"), _("text/plain"))
    email.tags = [_("posts")]  # type: ignore[attr-defined]
    email.metadata = {_("post"): _("7")}  # type: ignore[attr-defined]
    return email


def test_lazy_strings_are_resolved_wherever_django_takes_them() -> None:
    message, _marker = to_message(lazy_email())

    assert message == Message(
        to=("ana@example.com",),
        cc=("cc@example.com",),
        bcc=("bcc@example.com",),
        reply_to=("replies@example.com",),
        sender="Blog <blog@example.com>",
        subject="New post",
        text="Read it",
        html="<p>Read it</p>",
        headers=(("X-Campaign", "posts"),),
        attachments=(Attachment("notes.txt", b"the notes", "text/plain"),),
        tags=("posts",),
        metadata=(("post", "7"),),
    )
    texts = [*message.to, message.sender, message.subject, message.text, message.html]
    assert {type(value) for value in texts} == {str}
    assert {type(part) for pair in (*message.headers, *message.metadata) for part in pair} == {str}


def test_a_lazy_e_mail_is_delivered(spooled: Path, smtp_server: SMTPSink) -> None:
    assert mail.get_connection().send_messages([lazy_email()]) == 1

    common.drain(spooled, smtp_server)
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ("ana@example.com", "cc@example.com", "bcc@example.com")
    parsed = envelope.parsed()
    assert (str(parsed["Subject"]), str(parsed["X-Campaign"])) == ("New post", "posts")
    assert parsed.get_body(("plain",)).get_content() == "Read it"  # type: ignore[union-attr]


# -- bare local parts -----------------------------------------------------------------------


def test_a_bare_local_part_goes_to_the_smtp_relay(spooled: Path, smtp_server: SMTPSink) -> None:
    assert mail.send_mail("Subject", "Content", "tester", ["django", "ana@example.com"]) == 1

    [queued] = common.queued_files(spooled)
    assert orjson.loads(queued.read_bytes())["meta"]["bareLocalParts"] is True
    common.drain(spooled, smtp_server)
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "tester"
    assert envelope.rcpt_tos == ("django", "ana@example.com")
    parsed = envelope.parsed()
    assert (parsed["From"], parsed["To"]) == ("tester", "django, ana@example.com")


def test_a_bare_local_part_is_sent_at_once_over_smtp(
    smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_PRIORITY_TRANSPORT", smtp_server.url)
    email = EmailMessage("Reset", "Content", "Ops <ops>", ["root"])
    email.mailspool_priority = True  # type: ignore[attr-defined]

    assert email.send() == 1
    [envelope] = smtp_server.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("ops", ("root",))
    assert envelope.parsed()["From"] == "Ops <ops>"


def test_e_mail_without_a_bare_local_part_is_not_marked(spooled: Path) -> None:
    mail.send_mail("Subject", "Content", SENDER, ["ana@example.com"])

    [queued] = common.queued_files(spooled)
    assert "bareLocalParts" not in orjson.loads(queued.read_bytes())["meta"]


@pytest.mark.parametrize(
    "address",
    ["django\r\nBcc: x@evil.example", "dj\x00ngo", "not an address", "dj ango", "ö", "a..b"],
)
def test_only_an_ascii_dot_atom_passes_as_a_bare_local_part(address: str) -> None:
    with pytest.raises(InvalidMessage):
        to_message(EmailMessage("s", "b", SENDER, [address]))


def test_send_mail_and_unmarked_messages_still_refuse_a_bare_local_part() -> None:
    with pytest.raises(InvalidMessage, match="not an e-mail address"):
        mailspool.send_mail("nobody", "Hi", "body", priority=False)
    with pytest.raises(InvalidMessage, match="not an e-mail address"):
        Message(to=("nobody",), subject="s", text="b")
    assert Message(to=("nobody",), subject="s", text="b", bare=True).envelope_recipients == (
        "nobody",
    )


@pytest.fixture
def sesv2(aws: MotoServer) -> Any:
    client = boto3.client("sesv2")
    client.create_email_identity(EmailIdentity="example.com")
    return client


class WireTags:
    """The ``EmailTags`` of every SendEmail a transport's client sends (over HTTP, to moto)."""

    def __init__(self, transport: SESTransport) -> None:
        self.sent: list[list[dict[str, str]]] = []
        transport._client.meta.events.register("before-send.sesv2.SendEmail", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        self.sent.append(json.loads(request.body).get("EmailTags", []))


def parse_raw(raw: str) -> Any:
    """A raw message as moto recorded it."""
    return message_from_string(raw, policy=policy.default)


def drain_to(transport: SESTransport, spool: Path) -> Any:
    """Drain the spool through this transport, as ``mailspool worker --drain`` would."""
    settings = load_settings(store=f"file://{spool}", transport="ses://us-east-1")
    with open_store(settings.store) as store:
        worker = build_worker(settings, store, transport)
        try:
            return drain(worker), read_entries(store, layout.batch_id_from_key(_only_batch(spool)))
        finally:
            worker.close()


def _only_batch(spool: Path) -> str:
    [key] = [p.name for p in (spool / "done").glob("*.json")]
    return key


def test_ses_refuses_a_bare_local_part_with_a_clear_error(
    sesv2: Any, aws: MotoServer, spooled: Path
) -> None:
    with closing(SESTransport(region="us-east-1")) as transport:
        bare = Message(to=("django",), subject="s", text="b", sender=SENDER, bare=True)
        with pytest.raises(PermanentError, match="'django' has no domain"):
            transport.send(bare)
        assert transport.bulk_key(bare) is None  # refused alone, never in a bulk call

        mail.send_mail("Subject", "Content", SENDER, ["django"])
        report, entries = drain_to(transport, spooled)
    assert report.failed == 1
    assert "'django' has no domain (a bare local part" in str(entries[0].reason)
    assert aws.ses_messages() == []


# -- tags and metadata ------------------------------------------------------------------------


def test_tags_and_metadata_go_through_a_batch_to_smtp_and_trace(
    spooled: Path, smtp_server: SMTPSink
) -> None:
    assert labelled(["ana@example.com"]).send() == 1

    [queued] = common.queued_files(spooled)
    document = orjson.loads(queued.read_bytes())
    V1.validate(document)
    [email] = document["emails"]
    assert (email["tags"], email["metadata"]) == (TAGS, SENT_METADATA)
    common.drain(spooled, smtp_server)
    parsed = smtp_server.envelopes[0].parsed()
    assert [str(v) for v in parsed.get_all("X-Tag") or []] == TAGS
    assert json.loads(str(parsed["X-Metadata"])) == SENT_METADATA

    shown = CliRunner().invoke(cli, ["trace", "ana@example.com", "--store", f"file://{spooled}"])
    assert shown.exit_code == 0, shown.output
    assert "  tags: welcome, two words, naïve; metadata: user_id=42, plan=pro, note=a b\n" in (
        shown.output
    )
    listed = CliRunner().invoke(
        cli, ["trace", "ana@example.com", "--json", "--store", f"file://{spooled}"]
    )
    [traced] = json.loads(listed.output)
    assert (traced["tags"], traced["metadata"]) == (TAGS, SENT_METADATA)


def test_tags_and_metadata_go_through_a_batch_to_ses(
    sesv2: Any, aws: MotoServer, spooled: Path
) -> None:
    labelled(["ana@example.com"]).send()

    with closing(SESTransport(region="us-east-1")) as transport:
        assert transport.bulk_key(to_message(labelled(["ana@example.com"]))[0]) is None
        wire = WireTags(transport)
        report, _entries = drain_to(transport, spooled)
    assert report.sent == 1
    [tags] = wire.sent
    batch_id = layout.batch_id_from_key(_only_batch(spooled))
    assert {t["Name"]: t["Value"] for t in tags} == {
        "mailspool-batch": batch_id,
        "mailspool-index": "0",
        "user_id": "42",
        "plan": "pro",
        "welcome": "true",
    }  # "a b", "two words" and "naïve" have characters SES refuses in a tag
    [record] = aws.ses_messages()
    parsed = parse_raw(record["raw_data"])
    assert [str(v) for v in parsed.get_all("X-Tag") or []] == TAGS
    assert json.loads(str(parsed["X-Metadata"])) == SENT_METADATA


def test_smtp_and_ses_get_the_same_body_bytes(
    sesv2: Any, aws: MotoServer, smtp_server: SMTPSink
) -> None:
    message = Message(
        to=("ana@example.com",),
        subject="Grüße",
        text="Schöne Grüße aus München, und ein langer Satz. " * 40,
        html="<p>" + "В южных морях<br>\n" * 60 + "</p>",  # noqa: RUF001 - Russian, short lines
        sender=SENDER,
        tags=("welcome",),
    )
    with closing(open_transport(smtp_server.url)) as smtp:
        smtp.send(message)
    with closing(SESTransport(region="us-east-1")) as ses:
        ses.send(message)

    [record] = aws.ses_messages()
    by_ses = parse_raw(record["raw_data"])
    by_smtp = smtp_server.envelopes[0].parsed()
    encodings = [p["Content-Transfer-Encoding"] for p in by_smtp.walk() if not p.is_multipart()]
    assert encodings == ["quoted-printable", "base64"]
    for kind in ("plain", "html"):
        ses_part, smtp_part = by_ses.get_body((kind,)), by_smtp.get_body((kind,))
        assert ses_part is not None
        assert smtp_part is not None
        assert ses_part.as_bytes() == smtp_part.as_bytes()


def test_a_tag_or_metadata_with_a_line_break_is_refused() -> None:
    email = labelled(["ana@example.com"])
    email.tags = ["a\nBcc: x@evil.example"]  # type: ignore[attr-defined]
    with pytest.raises(InvalidMessage, match="tag"):
        to_message(email)
    email.tags, email.metadata = [], {"k": "v\r\nBcc: x"}  # type: ignore[attr-defined]
    with pytest.raises(InvalidMessage, match="line break"):
        to_message(email)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(labelled_messages())
def test_tags_and_metadata_round_trip_through_a_batch_file(message: Message) -> None:
    data = batch.encode([message], batch_id=layout.new_batch_id(), default_sender=SENDER)

    V1.validate(json.loads(data))
    decoded = batch.decode(data).message(0)
    assert (decoded.tags, decoded.metadata) == (message.tags, message.metadata)


def test_a_file_written_before_tags_and_metadata_reads_as_having_none() -> None:
    old = {
        "version": 1,
        "id": layout.new_batch_id(),
        "createdAt": "2026-11-29T07:00:00.000000Z",
        "meta": {"from": SENDER, "contentType": "text/plain", "charset": "utf-8"},
        "emails": [{"to": ["ana@example.com"], "subject": "s", "message": "m", "attachments": []}],
    }
    decoded = batch.decode(orjson.dumps(old)).message(0)
    assert (decoded.tags, decoded.metadata, decoded.bare) == ((), (), False)


def test_a_bare_local_part_passes_the_suppression_screen(
    spooled: Path, smtp_server: SMTPSink
) -> None:
    """No provider reports a bare local part, so none is ever in the list; the screen lets
    it through and still takes the suppressed addresses off."""
    with open_store(f"file://{spooled}") as store:
        SuppressionList(store).add("gone@example.com", Reason.BOUNCE)
    mail.send_mail("Subject", "Content", SENDER, ["django", "gone@example.com"])

    common.drain(spooled, smtp_server)
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ("django",)


def test_a_bare_local_part_gets_no_unsubscribe_link(spooled: Path, smtp_server: SMTPSink) -> None:
    mail.send_mail("Subject", "Content", SENDER, ["django"])
    mail.send_mail("Subject", "Content", SENDER, ["ana@example.com"])

    common.drain(
        spooled,
        smtp_server,
        MAILSPOOL_UNSUBSCRIBE_URL="https://blog.example.com/unsubscribe",
        MAILSPOOL_UNSUBSCRIBE_SECRET="s" * 32,
    )
    by_recipient = {e.rcpt_tos: e.parsed() for e in smtp_server.envelopes}
    assert by_recipient[("django",)]["List-Unsubscribe"] is None
    assert by_recipient[("ana@example.com",)]["List-Unsubscribe"] is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_a_bare_local_part_is_an_ascii_dot_atom_and_nothing_else(text: str) -> None:
    """What ``bare=True`` lets through is a local part without a domain, in printable ASCII
    atext: every address check of ``mailspool.address`` holds for everything else."""
    try:
        accepted = split_addresses([text], "to", bare=True)
    except InvalidMessage:
        accepted = ()
    for address in accepted:
        bare = bare_local_part(address)
        if bare is None:  # an address with its domain: as without bare=True
            assert split_addresses([address], "to") == (address,)
            continue
        assert "@" not in address
        assert address.isascii()
        assert address.isprintable()
        assert not has_line_break(address)
        assert Message(to=(address,), subject="s", text="b", bare=True).envelope_recipients == (
            bare,
        )


def test_a_batch_with_a_bare_local_part_validates_against_the_schema() -> None:
    bare = Message(to=("django",), subject="s", text="b", sender="tester", bare=True)
    document = json.loads(batch.encode([bare], batch_id=layout.new_batch_id(), default_sender=""))

    V1.validate(document)
    assert document["meta"]["bareLocalParts"] is True
    document["meta"]["bareLocalParts"] = "yes"
    assert not V1.is_valid(document)
    with pytest.raises(InvalidBatch, match="bareLocalParts"):
        batch.decode(orjson.dumps(document))
