"""Feedback a newcomer can try locally: the sample SES events (examples/ses-events/, shown
on docs/feedback.md) ingest as they are; an event is joined to the e-mail its tags name
while that batch is kept; the rates count the hard bounces and complaints ingested; the
Lambda handler takes an event with no context."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import mailspool.aws
from mailspool.cli import cli
from mailspool.delivery.worker import Worker
from mailspool.feedback.events import parse_ses_event
from mailspool.feedback.ingest import ingest
from mailspool.feedback.rates import collect_rates
from mailspool.feedback.suppression import SuppressionList
from mailspool.feedback.trace import trace_address, trace_message
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from mailspool.stores import Store, open_store
from mailspool.transports.memory import MemoryTransport
from tests import ses_events
from tests.test_feedback_rates import queue

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "ses-events"
KINDS = {
    "bounce-hard": ("bounced", True),
    "bounce-soft": ("bounced", False),
    "complaint": ("complained", False),
    "delivery": ("delivered", False),
}


def sent(store: Store, count: int) -> str:
    """``count`` e-mails to r0..r<count-1>@example.com, delivered; the batch id."""
    key = queue(store, count)
    Worker(store, MemoryTransport()).deliver(key)
    return layout.batch_id_from_key(key)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_sample_is_an_event_of_its_kind_and_ingests(name: str, tmp_path: Path) -> None:
    path = SAMPLES / f"{name}.jsonl"
    [line] = path.read_text("utf-8").splitlines()
    event = parse_ses_event(json.loads(line))
    assert (str(event.kind), event.permanent) == KINDS[name]
    result = CliRunner().invoke(
        cli, ["events", "ingest", str(path), "--store", f"file://{tmp_path}"]
    )
    assert result.exit_code == 0, result.output
    assert "\n1 event(s), 1 new" in result.output


def test_the_page_shows_every_sample_and_the_file_of_all_of_them() -> None:
    page = (ROOT / "docs" / "feedback.md").read_text("utf-8")
    every = []
    for name in sorted(KINDS):
        line = (SAMPLES / f"{name}.jsonl").read_text("utf-8")
        assert line.strip() in page, name
        every.append(line)
    assert sorted((SAMPLES / "all.jsonl").read_text("utf-8").splitlines(True)) == sorted(every)


def test_a_tagged_event_is_joined_to_the_e_mail_its_tags_name(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    batch_id = sent(store, 3)
    tags = {"mailspool-batch": [batch_id], "mailspool-index": ["1"]}
    event = ses_events.delivery("ses-id-unknown-to-the-ledger", "r1@example.com", tags=tags)
    event["eventType"] = "Bounce"
    event["bounce"] = ses_events.bounce("x", "r1@example.com")["bounce"]
    ingest(store, [parse_ses_event(event)])
    for traces in (
        trace_address(store, "r1@example.com"),
        trace_message(store, "ses-id-unknown-to-the-ledger"),
        trace_message(store, f"<{batch_id}.1@example.com>"),
    ):
        [trace] = traces
        assert (trace.batch, trace.index) == (batch_id, 1)
        assert [s.state for s in trace.steps] == ["queued", "sent", "bounced"]
    shown = CliRunner().invoke(cli, ["trace", "r1@example.com", "--store", store.url])
    assert f"{batch_id}.1 " in shown.output
    assert "no e-mail kept" not in shown.output


def test_an_event_no_e_mail_kept_matches_says_so(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    ingest(store, [parse_ses_event(ses_events.bounce("ses-id-9", "r9@example.com"))])
    shown = CliRunner().invoke(cli, ["trace", "r9@example.com", "--store", store.url])
    assert "\n(no e-mail kept has this provider id)  '' to r9@example.com" in shown.output


def test_the_samples_ingested_after_sends_make_the_rates_non_zero(tmp_path: Path) -> None:
    """The samples' ids and tags name no e-mail of this store (SES made them up): a hard
    bounce and a complaint ingested while the last sends went out still count."""
    store = open_store(f"file://{tmp_path}")
    sent(store, 20)
    result = CliRunner().invoke(
        cli, ["events", "ingest", str(SAMPLES / "all.jsonl"), "--store", store.url]
    )
    assert result.exit_code == 0, result.output
    rates = collect_rates(store)
    assert (rates.sends, rates.bounces, rates.complaints, rates.suppressed) == (20, 1, 1, 2)
    status = CliRunner().invoke(cli, ["status", "--store", store.url])
    assert "bounce rate  5.00%, complaint rate 5.00% (last 20 sends)" in status.output
    as_json = CliRunner().invoke(cli, ["status", "--json", "--store", store.url])
    shown = orjson.loads(as_json.stdout)
    assert (shown["bounce_rate"], shown["complaint_rate"]) == (0.05, 0.05)


def test_tagged_events_count_once_with_the_send_they_name(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    batch_id = sent(store, 4)
    ids = {i: e.message_id or "" for i, e in read_entries(store, batch_id).items()}
    tags = {"mailspool-batch": [batch_id], "mailspool-index": ["2"]}
    by_tags = ses_events.complaint("another-id", "r2@example.com")
    by_tags["mail"]["tags"].update(tags)
    ingest(
        store,
        [
            parse_ses_event(ses_events.complaint(ids[2], "r2@example.com")),
            parse_ses_event(by_tags),  # the same e-mail's complaint, by another route
        ],
    )
    rates = collect_rates(store)
    assert (rates.sends, rates.bounces, rates.complaints) == (4, 0, 1)


def test_the_lambda_handler_takes_a_sample_with_no_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/feedback.md's local call: the sample as EventBridge delivers it, context None."""
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{tmp_path}")
    detail = json.loads((SAMPLES / "bounce-hard.jsonl").read_text("utf-8"))
    event = {"source": "aws.ses", "detail-type": "Email Bounced", "detail": detail}
    assert mailspool.aws.handler(event, None)["events"] == 1
    store = open_store(f"file://{tmp_path}")
    assert SuppressionList(store).is_suppressed("follower1@example.com")
