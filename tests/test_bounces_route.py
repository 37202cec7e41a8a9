"""Bounces without SES: VERP tokens, verification, one destination (the records SES
events make), refusals in the SMTP session, and ``mailspool bounces ingest``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mailspool
from mailspool.aws import handler
from mailspool.config import Settings
from mailspool.delivery.steps import Draft, VerpEnvelope
from mailspool.errors import ConfigurationError, PermanentError, TransientError
from mailspool.feedback import hooks
from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import EventKind, FeedbackEvent
from mailspool.feedback.ingest import read_history
from mailspool.feedback.refusals import (
    lift_refusals,
    record_refusals,
    refusal_events,
    session_refusals,
)
from mailspool.feedback.returned import record_returned
from mailspool.feedback.settings import verp_for
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.feedback.trace import trace_address
from mailspool.feedback.verp import Verp
from mailspool.message import Message
from mailspool.spool.records import FailedRecord
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.stores.s3 import S3Store
from mailspool.transports.memory import MemoryTransport
from tests.bounce_samples import arf, auto_reply, dsn
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink

SECRET = "s3cret-key-of-32-bytes-for-tests!"
VERP = Verp("bounces@example.com", SECRET.encode())
BATCH = "20261207T100000000000Z-0a1b2c3d"

batch_ids = st.builds(
    lambda t, h, p: f"20261207T{t:012d}Z-{h:08x}{p}",
    st.integers(min_value=0, max_value=10**12 - 1),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from(["", "-p1", "-p23"]),
)
addresses = st.from_regex(r"[a-z][a-z0-9.]{0,20}@[a-z]{1,10}\.(org|com|de)", fullmatch=True)


@given(batch_ids, st.integers(min_value=0, max_value=99999), addresses)
def test_a_token_round_trips_and_covers_its_recipient_only(
    batch: str, index: int, recipient: str
) -> None:
    address = VERP.envelope_sender(batch, index, [recipient])
    assert len(address.partition("@")[0]) <= 64  # RFC 5321's local-part limit
    for spelling in (address, address.upper(), f"<{address}>"):
        token = VERP.token(spelling)
        assert token is not None
        assert (token.batch, token.index) == (batch, index)
        assert VERP.covers(token, recipient)
        assert VERP.covers(token, recipient.upper())  # the canonical form is signed
        assert not VERP.covers(token, "other@example.org")
        assert not VERP.signed_for_many(token)
    other = Verp("bounces@example.com", b"another-secret-of-enough-bytes")
    assert not other.covers(VERP.token(address), recipient)  # type: ignore[arg-type]


def test_tokens_not_ours_are_none() -> None:
    good = VERP.envelope_sender(BATCH, 3, ["a@example.org"])
    assert VERP.token(good.replace("bounces+", "other+")) is None
    assert VERP.token(good.replace("example.com", "example.net")) is None
    assert VERP.token("bounces@example.com") is None
    assert VERP.token(good.replace(".3.", ".x.")) is None


def _sent(store: MemoryStore, *recipients: str) -> tuple[str, int]:
    """One e-mail queued (a batch in queue/), its batch id and index."""
    settings = Settings.load(store="memory:unused")
    with mailspool.request(store=store, settings=settings) as scope:
        mailspool.send_mail(list(recipients), "Hello", "Hi")
    [key] = [k for k in store.keys("queue/") if k.endswith(".json")]
    del scope
    return key.removeprefix("queue/").removesuffix(".json"), 0


def test_a_dsn_suppresses_its_recipient_with_the_servers_words_once() -> None:
    store = MemoryStore()
    sender = VERP.envelope_sender(BATCH, 0, ["gone@example.org"])
    raw = dsn("gone@example.org", sender)
    report = record_returned(store, raw, VERP)
    assert (report.events, report.new, report.suppressed, report.rejected) == (1, 1, 1, 0)
    entry = SuppressionList(store).get("gone@example.org")
    assert entry is not None
    assert entry.reason is Reason.BOUNCE
    assert entry.diagnostic == "550 5.1.1 <gone@example.org>: Recipient address rejected"
    [event] = read_history(store, feedback_layout.history_key("gone@example.org"))
    assert (event.kind, event.permanent, event.batch, event.index) == (
        EventKind.BOUNCED,
        True,
        BATCH,
        0,
    )
    assert event.provider_id == f"<{BATCH}.0@example.com>"  # the returned Message-ID
    again = record_returned(store, raw, VERP)
    assert (again.events, again.new) == (1, 0)  # the same message twice: nothing new
    assert len(read_history(store, feedback_layout.history_key("gone@example.org"))) == 1


def test_forged_or_unsigned_bounces_are_rejected_and_change_nothing() -> None:
    store = MemoryStore()
    for_someone_else = VERP.envelope_sender(BATCH, 0, ["other@example.org"])
    forged = Verp("bounces@example.com", b"the-attackers-own-secret-key!!").envelope_sender(
        BATCH, 0, ["victim@example.org"]
    )
    for envelope_to in (for_someone_else, forged, "bounces@example.com", "postmaster@example.com"):
        report = record_returned(store, dsn("victim@example.org", envelope_to), VERP)
        assert (report.rejected, report.events) == (1, 0)
        assert report.problems
    assert list(store.keys("")) == []  # nothing written at all


def test_a_several_recipient_email_is_checked_against_its_batch() -> None:
    store = MemoryStore()
    batch, index = _sent(store, "a@example.org", "b@example.org")
    sender = VERP.envelope_sender(batch, index, ["a@example.org", "b@example.org"])
    assert record_returned(store, dsn("b@example.org", sender), VERP).suppressed == 1
    stranger = record_returned(store, dsn("c@example.org", sender), VERP)
    assert (stranger.rejected, stranger.events) == (1, 0)
    gone = record_returned(MemoryStore(), dsn("a@example.org", sender), VERP)
    assert gone.rejected == 1  # the batch is not kept: nothing to check against


def test_soft_bounces_count_as_sess_do() -> None:
    store = MemoryStore()
    sender = VERP.envelope_sender(BATCH, 0, ["full@example.org"])
    for n in range(3):
        raw = dsn("full@example.org", sender, status="4.2.2", message_id=f"<soft{n}@mx>")
        report = record_returned(store, raw, VERP)
        assert report.suppressed == (1 if n == 2 else 0)
    entry = SuppressionList(store).get("full@example.org")
    assert entry is not None
    assert entry.diagnostic.startswith("3 soft bounces in 7 days")


def test_a_complaint_comes_through_the_returned_messages_return_path() -> None:
    store = MemoryStore()
    sender = VERP.envelope_sender(BATCH, 0, ["reader@example.org"])
    report = record_returned(store, arf("reader@example.org", sender), VERP)
    assert report.suppressed == 1
    entry = SuppressionList(store).get("reader@example.org")
    assert entry is not None
    assert (entry.reason, entry.diagnostic) == (Reason.COMPLAINT, "abuse")


@pytest.mark.parametrize(
    "raw",
    [
        dsn("x@example.org", "bounces@example.com", action="delayed", status="4.4.7"),
        auto_reply("x@example.org", "bounces@example.com"),
    ],
    ids=["delayed", "auto-reply"],
)
def test_delays_and_auto_replies_are_ignored(raw: bytes) -> None:
    store = MemoryStore()
    report = record_returned(store, raw, VERP)
    assert (report.ignored, report.events, report.rejected) == (1, 0, 0)
    assert list(store.keys("")) == []


def test_only_refusals_about_the_address_are_bounces() -> None:
    refused = {
        "gone@example.org": "550 5.1.1 <gone@example.org>: Recipient address rejected",
        "old@example.org": "550 no such user here",
        "relay@example.org": "554 5.7.1 <relay@example.org>: Relay access denied",
        "utf8@example.org": "553 5.6.7 does not offer SMTPUTF8",
        "full@example.org": "552 5.2.2 mailbox full",
    }
    events = refusal_events(BATCH, 0, "<id@example.com>", refused)
    assert sorted(e.recipients[0] for e in events) == ["gone@example.org", "old@example.org"]
    assert all(e.permanent and e.kind is EventKind.BOUNCED for e in events)


# -- end to end: a real SMTP server, the real CLI ------------------------------------------------


def cli(
    spool: Path, server: SMTPSink, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_TRANSPORT": server.url,
        "MAILSPOOL_BOUNCE_ADDRESS": "bounces@example.com",
        "MAILSPOOL_BOUNCE_SECRET": SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "mailspool", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def hand_off(spool: Path, *recipients: str) -> None:
    settings = Settings.load(store=f"file://{spool}")
    with mailspool.request(settings=settings):
        for recipient in recipients:
            mailspool.send_mail(recipient, "Note", "Hello", {"From": "Shop <shop@example.com>"})


@pytest.mark.slow
def test_verp_then_a_bounce_by_pipe_then_the_next_batch_skips_the_address(
    spool: Path, smtp_server: SMTPSink
) -> None:
    smtp_server.refuse_recipient("refused@example.org", "550 5.1.1 <refused@example.org>: unknown")
    hand_off(spool, "good@example.org", "gone@example.org", "refused@example.org")
    assert cli(spool, smtp_server, "worker", "--drain").returncode == 0
    by_rcpt = {e.rcpt_tos: e for e in smtp_server.envelopes}
    sent = by_rcpt[("gone@example.org",)]
    assert sent.mail_from.startswith("bounces+")
    assert sent.mail_from.endswith("@example.com")
    assert sent.parsed()["From"] == "Shop <shop@example.com>"  # the From is unchanged
    token = VERP.token(sent.mail_from)
    assert token is not None
    assert VERP.covers(token, "gone@example.org")

    # the relay's refusal at RCPT is already a hard bounce, with its words
    trace = cli(spool, smtp_server, "trace", "refused@example.org", "--json")
    [refused_email] = json.loads(trace.stdout)  # one e-mail: the refusal joins it
    refused_states = {s["state"]: s["detail"] for s in refused_email["states"]}
    assert "failed" in refused_states
    assert "550 5.1.1 <refused@example.org>: unknown" in refused_states["bounced"]

    # the remote MX's DSN, as a Postfix pipe transport hands it over
    raw = dsn("gone@example.org", sent.mail_from, original_id=sent.parsed()["Message-ID"])
    piped = cli(spool, smtp_server, "bounces", "ingest", "--to", sent.mail_from, "-", stdin=raw)
    assert piped.returncode == 0, piped.stderr
    assert b"1 address(es) suppressed, 0 rejected" in piped.stdout
    again = cli(spool, smtp_server, "bounces", "ingest", "-", stdin=raw)
    assert b"1 event(s), 0 new" in again.stdout  # counted as SES redeliveries are

    forged = dsn("good@example.org", sent.mail_from, message_id="<forged@x>")
    rejected = cli(spool, smtp_server, "bounces", "ingest", "-", stdin=forged)
    assert rejected.returncode == 0
    assert b"1 rejected" in rejected.stdout

    listed = json.loads(cli(spool, smtp_server, "suppression", "list", "--json").stdout)
    assert sorted(e["address"] for e in listed) == ["gone@example.org", "refused@example.org"]
    traced = json.loads(cli(spool, smtp_server, "trace", "gone@example.org", "--json").stdout)
    [email] = traced
    states = [s["state"] for s in email["states"]]
    assert states[:2] == ["queued", "sent"]
    assert "bounced" in states  # joined to the e-mail by its Message-ID, as SES events are
    assert any("Recipient address rejected" in s["detail"] for s in email["states"])

    before = len(smtp_server.envelopes)
    hand_off(spool, "good@example.org", "gone@example.org", "refused@example.org")
    assert cli(spool, smtp_server, "worker", "--drain").returncode == 0
    assert [e.rcpt_tos for e in smtp_server.envelopes[before:]] == [("good@example.org",)]


def test_ingest_without_a_bounce_address_says_what_to_set(spool: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "bounces", "ingest", "-"],
        env={**os.environ, "MAILSPOOL_STORE": f"file://{spool}"},
        input=b"",
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert b"MAILSPOOL_BOUNCE_ADDRESS" in result.stderr


def test_a_store_that_cannot_be_written_is_a_temporary_failure(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    sender = VERP.envelope_sender(BATCH, 0, ["gone@example.org"])
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "bounces", "ingest", "-"],
        env={
            **os.environ,
            "MAILSPOOL_STORE": f"file://{blocked}/spool",
            "MAILSPOOL_BOUNCE_ADDRESS": "bounces@example.com",
            "MAILSPOOL_BOUNCE_SECRET": SECRET,
        },
        input=dsn("gone@example.org", sender),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 75, result.stderr  # EX_TEMPFAIL: Postfix tries again


def test_trace_address_finds_a_returned_bounce() -> None:
    store = MemoryStore()
    sender = VERP.envelope_sender(BATCH, 0, ["gone@example.org"])
    record_returned(store, dsn("gone@example.org", sender), VERP)
    [found] = trace_address(store, "Gone@Example.org")
    assert [s.state for s in found.steps] == ["bounced"]
    assert "Recipient address rejected" in found.steps[0].detail


def test_file_store_records_like_memory(spool: Path) -> None:
    store = FileStore(spool)
    sender = VERP.envelope_sender(BATCH, 0, ["gone@example.org"])
    assert record_returned(store, dsn("gone@example.org", sender), VERP).suppressed == 1


def test_verp_is_for_smtp_only_and_wants_both_settings() -> None:
    both = Settings.load(bounce_address="bounces@example.com", bounce_secret=SECRET)
    assert verp_for(both, "smtp://127.0.0.1:2525") is not None
    assert verp_for(both, "smtps://relay.example.com") is not None
    assert verp_for(both, "memory:") is None  # SES and others keep their own route
    assert verp_for(Settings.load(), "smtp://127.0.0.1:2525") is None
    with pytest.raises(ConfigurationError, match="MAILSPOOL_BOUNCE_SECRET"):
        verp_for(Settings.load(bounce_address="bounces@example.com"), "smtp://h")
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        verp_for(Settings.load(bounce_address="b@example.com", bounce_secret="short"), "smtp://h")
    with pytest.raises(ConfigurationError, match="without '\\+'"):
        verp_for(Settings.load(bounce_address="b+x@example.com", bounce_secret=SECRET), "smtp://h")


def test_the_envelope_sender_is_set_and_the_from_kept() -> None:
    step = VerpEnvelope(VERP)
    message = Message.build(
        to="a@example.org", subject="s", text="t", sender="Shop <s@example.com>"
    )
    signed = step.prepare(Draft(message, batch_id=BATCH, index=4)).message
    alone = step.prepare(Draft(message)).message  # an e-mail of no batch goes as it is
    memory = MemoryTransport()
    memory.send(signed)
    memory.send(alone)
    first, second = memory.outbox
    assert first.envelope_sender == VERP.envelope_sender(BATCH, 4, ["a@example.org"])
    assert "Shop <s@example.com>" in first.data.decode()
    assert second.envelope_sender == "s@example.com"


def test_a_refusal_at_data_counts_for_a_single_recipient_only() -> None:
    refused_at_data = PermanentError(
        "127.0.0.1:25 refused the message: 550 5.1.1 mailbox unavailable",
        response="550 5.1.1 mailbox unavailable",
    )
    assert session_refusals(("a@example.org",), refused_at_data) == {
        "a@example.org": "550 5.1.1 mailbox unavailable"
    }
    assert session_refusals(("a@example.org", "b@example.org"), refused_at_data) == {}
    content = PermanentError("refused", response="554 5.7.1 spam")
    assert session_refusals(("a@example.org",), content) == {}
    every = PermanentError("refused", response="x", refused={"a@example.org": "550 5.1.1 x"})
    assert session_refusals(("a@example.org", "b@example.org"), every) == every.refused
    assert session_refusals(("a@example.org",), TransientError("451 4.3.0 later")) == {}


def test_failed_retry_lifts_only_the_suppression_its_own_refusal_made() -> None:
    store = MemoryStore()
    answer = "550 5.1.1 <gone@example.org>: unknown"
    record_refusals(store, BATCH, 0, "<id@example.com>", {"gone@example.org": answer})
    suppressions = SuppressionList(store)
    suppressions.add("kept@example.org", Reason.MANUAL, diagnostic=answer)
    record = FailedRecord(
        batch=BATCH,
        index=0,
        reason="recipients refused",
        attempts=1,
        retryable=False,
        failed_at="2026-12-07T10:00:00Z",
        partial=True,
        refused={"gone@example.org": answer, "kept@example.org": answer},
        meta={},
        email={"to": ["gone@example.org", "kept@example.org"], "subject": "s", "text": "t"},
    )
    assert lift_refusals(store, record) == ["gone@example.org"]
    assert SuppressionList(store).get("gone@example.org") is None
    assert SuppressionList(store).get("kept@example.org") is not None  # a manual entry stays


def test_hooks_run_once_per_returned_bounce_as_for_ses_events() -> None:
    store = MemoryStore()
    seen: list[FeedbackEvent] = []
    hook = hooks.register(seen.append)
    try:
        sender = VERP.envelope_sender(BATCH, 0, ["gone@example.org"])
        raw = dsn("gone@example.org", sender)
        record_returned(store, raw, VERP)
        record_returned(store, raw, VERP)
    finally:
        hooks.unregister(hook)
    [event] = seen
    assert (event.kind, event.recipients, event.permanent) == (
        EventKind.BOUNCED,
        ("gone@example.org",),
        True,
    )


def test_returned_mail_written_to_s3_by_ses_receiving_is_read_by_the_handler(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS route: SES receiving writes the bounce to ``returned/`` in the store's
    bucket (moto's S3, over HTTP); the bucket's event reaches the Lambda handler, which
    records it as ``bounces ingest`` would, deletes it, and changes nothing the second
    time. A message whose signature fails is rejected and deleted too."""
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="returned-test")
    monkeypatch.setenv("MAILSPOOL_STORE", "s3://returned-test/spool")
    monkeypatch.setenv("MAILSPOOL_TRANSPORT", "memory:returned")
    monkeypatch.setenv("MAILSPOOL_BOUNCE_ADDRESS", "bounces@example.com")
    monkeypatch.setenv("MAILSPOOL_BOUNCE_SECRET", SECRET)
    store = S3Store.from_url("s3://returned-test/spool")
    sender = VERP.envelope_sender(BATCH, 0, ["gone@example.org"])
    store.put("returned/m1", dsn("gone@example.org", sender))
    store.put("returned/forged", dsn("kept@example.org", "bounces+x.0.forged@example.com"))
    for key in ("spool/returned/m1", "spool/returned/forged"):
        event = {
            "Records": [
                {
                    "messageId": key,
                    "eventSource": "aws:sqs",
                    "body": json.dumps(
                        {
                            "Records": [
                                {
                                    "eventName": "ObjectCreated:Put",
                                    "s3": {
                                        "bucket": {"name": "returned-test"},
                                        "object": {"key": key},
                                    },
                                }
                            ]
                        }
                    ),
                }
            ]
        }
        for _ in range(2):  # the same event twice: nothing more
            assert handler(event, None) == {"batchItemFailures": []}
    suppressions = SuppressionList(store)
    assert suppressions.is_suppressed("gone@example.org")
    assert not suppressions.is_suppressed("kept@example.org")
    assert list(store.list("returned/")) == []
    store.close()
