"""Addresses that 7-bit mail cannot carry: sent with SMTPUTF8 when the server offers it,
otherwise refused for that recipient alone; a domain IDNA cannot encode fails its e-mail
alone. Against aiosmtpd with and without SMTPUTF8, and SES in moto."""

from __future__ import annotations

from contextlib import closing
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import InvalidMessage
from mailspool.ops import admin
from mailspool.ops.status import collect_status
from mailspool.stores.memory import MemoryStore
from mailspool.transports.deliverable import NO_SMTPUTF8
from mailspool.transports.ses import SESTransport
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import DrainReport, drain
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink, running_smtp_server

FAST = WorkerOptions(concurrency=2, retry_base=0.001, retry_cap=0.01, max_attempts=2)
META = {"from": "Blog <blog@example.com>", "contentType": "text/plain", "charset": "utf-8"}
BAD_DOMAIN = "x@" + "ü" * 64 + ".com"  # a label longer than IDNA allows


def queue_raw(store: MemoryStore, recipients: list[list[str]]) -> None:
    """A batch as an older or foreign producer may have written it: nothing checked."""
    emails = [{"to": to, "subject": "s", "message": "m", "attachments": []} for to in recipients]
    store.put("queue/b.json", orjson.dumps({"version": 1, "meta": META, "emails": emails}))


def deliver(store: MemoryStore, url: str) -> DrainReport:
    with closing(SMTPTransport.from_url(url)) as transport:
        worker = Worker(store, transport, options=FAST)
        try:
            return drain(worker)
        finally:
            worker.close()


def test_without_smtputf8_only_that_recipient_is_refused(smtp_server: SMTPSink) -> None:
    store = MemoryStore()
    queue_raw(
        store, [["ok@example.com", "josé@example.com"], ["josé@example.com"], ["a@exämple.de"]]
    )
    [report] = deliver(store, smtp_server.url).batches
    assert (report.status, report.sent, report.failed) == ("finished", 2, 1)
    assert store.exists("done/b.json")
    arrived = sorted(e.rcpt_tos for e in smtp_server.envelopes)
    assert arrived == [("a@xn--exmple-cua.de",), ("ok@example.com",)]
    status = collect_status(store)
    assert (status.pending, status.sent, status.failed, status.refused_recipients) == (0, 2, 1, 1)
    failed = {item.record.index: item.record for item in admin.list_failed(store)}
    assert failed[0].recipients == ["josé@example.com"]
    assert "does not offer SMTPUTF8" in failed[1].reason
    to_ok = next(e for e in smtp_server.envelopes if e.rcpt_tos == ("ok@example.com",))
    assert to_ok.content.isascii()
    assert "SMTPUTF8" not in to_ok.mail_options
    header = str(make_header(decode_header(str(to_ok.parsed()["To"]))))
    assert "josé@example.com" in header  # named in an RFC 6857 group, not lost


def test_with_smtputf8_the_address_goes_as_it_is(smtputf8_server: SMTPSink) -> None:
    store = MemoryStore()
    queue_raw(store, [["ok@example.com", "Jos <josé@example.com>"], ["ok@exämple.de"]])
    [report] = deliver(store, smtputf8_server.url).batches
    assert (report.sent, report.failed, report.status) == (2, 0, "finished")
    envelopes = {e.rcpt_tos: e for e in smtputf8_server.envelopes}
    utf8 = envelopes[("ok@example.com", "josé@example.com")]
    assert "SMTPUTF8" in utf8.mail_options
    assert "Jos <josé@example.com>" in utf8.content.decode("utf-8")
    assert "SMTPUTF8" not in envelopes[("ok@xn--exmple-cua.de",)].mail_options  # only if needed
    assert collect_status(store).refused_recipients == 0


def test_smtputf8_commands_are_pipelined_in_utf8() -> None:
    with running_smtp_server(smtputf8=True, pipelining=True) as server:
        store = MemoryStore()
        queue_raw(store, [["josé@example.com", "ok@example.com"]])
        [report] = deliver(store, server.url).batches
        assert (report.sent, report.failed) == (1, 0)
        [arrived] = server.envelopes
    assert arrived.rcpt_tos == ("josé@example.com", "ok@example.com")
    assert "SMTPUTF8" in arrived.mail_options


def test_a_domain_idna_cannot_encode_fails_that_email_alone(smtp_server: SMTPSink) -> None:
    store = MemoryStore()
    queue_raw(store, [[BAD_DOMAIN], ["ok@example.com"]])
    drained = deliver(store, smtp_server.url)
    [report] = drained.batches
    assert (report.status, report.sent, report.failed) == ("finished", 1, 1)
    [failed] = [item.record for item in admin.list_failed(store)]
    assert "IDNA" in failed.reason
    assert not failed.retryable
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [("ok@example.com",)]


def test_send_mail_refuses_an_unencodable_domain_at_once(tmp_path: Path) -> None:
    settings = Settings.load(store=f"file://{tmp_path / 'spool'}")
    with pytest.raises(InvalidMessage, match="IDNA") as info, mailspool.request(settings=settings):
        mailspool.send_mail(["ok@example.com", BAD_DOMAIN], "s", "m")
    assert info.value.field == "to"
    assert not (tmp_path / "spool" / "queue").exists()


def test_send_mail_says_at_once_what_ses_cannot_send(tmp_path: Path) -> None:
    settings = Settings.load(store=f"file://{tmp_path / 'spool'}", transport="ses://us-east-1")
    with mailspool.request(settings=settings) as scope:
        with pytest.raises(InvalidMessage, match="SMTPUTF8") as info:
            mailspool.send_mail(["ok@example.com"], "s", "m", {"Cc": "josé@example.com"})
        assert info.value.field == "cc"
        with pytest.raises(InvalidMessage, match="at most 50"):
            mailspool.send_mail([f"u{i}@example.com" for i in range(51)], "s", "m")
    assert len(scope) == 0
    assert scope.keys == []


def test_smtp_takes_what_only_the_server_can_judge(tmp_path: Path) -> None:
    """Over SMTP, whether SMTPUTF8 is offered is known only once connected: accepted."""
    settings = Settings.load(store=f"file://{tmp_path / 'spool'}", transport="smtp://localhost")
    with mailspool.request(settings=settings) as scope:
        assert mailspool.send_mail("josé@example.com", "s", "m")
    assert len(scope.keys) == 1


@pytest.fixture
def ses(aws: MotoServer) -> Any:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    with closing(SESTransport(region="us-east-1")) as transport:
        yield transport


def test_ses_refuses_the_utf8_recipient_and_sends_to_the_others(
    ses: SESTransport, aws: MotoServer
) -> None:
    message = mailspool.Message.build(
        to=["ok@example.com", "josé@example.com"], subject="s", text="m", sender="a@example.com"
    )
    receipt = ses.send(message)
    assert receipt.refused == {"josé@example.com": NO_SMTPUTF8}
    [sent] = aws.ses_messages()
    assert sent["destinations"]["ToAddresses"] == ["ok@example.com"]
    alone = mailspool.Message.build(
        to="josé@example.com", subject="s", text="m", sender="a@example.com"
    )
    with pytest.raises(mailspool.PermanentError, match="SMTPUTF8"):
        ses.send(alone)
