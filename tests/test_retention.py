"""Retention per state: ``MAILSPOOL_RETENTION`` parsed strictly, applied by ``gc`` to
finished, failed and event records past their age (by the times mailspool wrote in
them, on a clock the test controls), never to pending, scheduled, claimed, paused,
cancelled or fallback records. On a file store and on S3 (moto, server mode)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import boto3
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mailspool.cli import cli
from mailspool.config import SettingError, Settings
from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import EventKind, FeedbackEvent
from mailspool.feedback.ingest import ingest
from mailspool.ops.retention import apply_retention
from mailspool.retention import DEFAULT_RETENTION, Retention, RetentionState, parse_retention
from mailspool.spool import layout
from mailspool.spool.records import (
    BatchDocument,
    FailedRecord,
    LedgerEntry,
    encode_entries,
    timestamp,
)
from mailspool.spool.schedule import scheduled_key
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.stores.s3 import S3Store

DAY = 86400.0
BUCKET = "mailspool-retention"
NOW = time.time() + 100 * DAY  # the clock gc is given: every object was written 100 days ago
STATES = [state.value for state in RetentionState]
SENT_LEDGER = encode_entries([LedgerEntry.sent(0, "<1@example.com>", 1)])


# -- the setting ---------------------------------------------------------------------------


@given(
    st.dictionaries(st.sampled_from(STATES), st.tuples(st.integers(1, 500), st.sampled_from("dw")))
)
def test_every_well_formed_value_reads_back(ages: dict[str, tuple[int, str]]) -> None:
    text = ",".join(f"{state}={number}{unit}" for state, (number, unit) in ages.items())
    retention = parse_retention(text)
    for state in RetentionState:
        expected = ages.get(state.value)
        seconds = None if expected is None else expected[0] * (7 if expected[1] == "w" else 1)
        assert retention.of(state) == (None if seconds is None else seconds * DAY)
    assert parse_retention(str(retention)) == retention


@given(st.text(max_size=80))
def test_any_text_is_read_or_refused_with_a_reason(text: str) -> None:
    problem: str | None = None
    try:
        parse_retention(text)
    except ValueError as err:
        problem = str(err)
    assert problem is None or problem
    setting: SettingError | None = None
    try:
        Settings.load(retention=text)
    except SettingError as err:
        setting = err
    assert (setting is None) == (problem is None)
    assert setting is None or ("retention" in str(setting) and "STATE=AGE" in str(setting))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("pending=1d", "'pending' is not a state that expires"),
        ("scheduled=30d", "not a state that expires"),
        ("finished=30d,finished=2d", "'finished' is given twice"),
        ("finished=30", "needs a unit"),
        ("failed=0d", "from 1h to 3650d"),
        ("events=3651d", "from 1h to 3650d"),
        ("finished=30d,", "is not STATE=AGE"),
        ("finished 30d", "is not STATE=AGE"),
    ],
)
def test_a_bad_value_is_refused_naming_the_part(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_retention(text)


def test_the_setting_defaults_to_the_lifecycle_rules_and_the_variable_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings.load().retention == DEFAULT_RETENTION
    assert str(DEFAULT_RETENTION) == "finished=14d,failed=90d,events=180d"
    monkeypatch.setenv("MAILSPOOL_RETENTION", "failed=2w")
    assert Settings.load().retention == Retention(failed=14 * DAY)
    monkeypatch.setenv("MAILSPOOL_RETENTION", "queued=2w")
    with pytest.raises(SettingError, match="MAILSPOOL_RETENTION"):
        Settings.load()


def test_gc_refuses_a_bad_retention_flag(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'spool'}"
    result = CliRunner().invoke(cli, ["gc", "--store", url, "--retention", "pending=1d"])
    assert result.exit_code == 2
    assert "--retention" in result.output


# -- applied to a store ----------------------------------------------------------------------


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "file":
        yield FileStore(tmp_path / "spool")
        return
    request.getfixturevalue("aws")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with closing(S3Store(bucket=BUCKET, prefix="spool")) as s3:
        yield s3


def batch(batch_id: str, to: str = "a@example.com") -> bytes:
    email = {"to": [to], "subject": "s", "message": "x", "attachments": []}
    meta = {"from": "app@example.com", "contentType": "text/plain", "charset": "utf-8"}
    return BatchDocument(batch_id, timestamp(), meta, [email]).encode()


def at(seconds_before_now: float) -> str:
    return timestamp(datetime.fromtimestamp(NOW - seconds_before_now, UTC))


def failed(batch_id: str, age: float) -> bytes:
    email = orjson.loads(batch(batch_id))["emails"][0]
    return FailedRecord(
        batch_id, 0, "550 no", 1, False, at(age), False, None, {"from": "a@example.com"}, email
    ).encode()


def finished_and_failed(store: Store) -> dict[str, bool]:
    """Objects of each kind, old and new; the value: whether retention removes it."""
    old, new = layout.new_batch_id(NOW - 200 * DAY), layout.new_batch_id(NOW - DAY)
    expected = {}
    for batch_id, gone in ((old, True), (new, False)):
        store.put(layout.done_key(batch_id), batch(batch_id))
        store.append(layout.ledger_key(batch_id), SENT_LEDGER)
        expected[layout.done_key(batch_id)] = gone
    for batch_id, age, gone in ((old, 200 * DAY, True), (new, 10 * DAY, False)):
        store.put(layout.failed_key(batch_id, 0), failed(batch_id, age))
        expected[layout.failed_key(batch_id, 0)] = gone
    store.put("failed/odd.0.json", b"not a record")  # no time inside: its mtime, 100 days
    expected["failed/odd.0.json"] = True
    return expected


def feedback(store: Store) -> dict[str, bool]:
    def event(number: int, age: float, to: str) -> FeedbackEvent:
        return FeedbackEvent(
            f"event-{number}", EventKind.DELIVERED, f"0100-{number}", at(age), (to,)
        )

    ingest(store, [event(1, 200 * DAY, "old@example.com"), event(2, 10 * DAY, "new@example.com")])
    old_day = datetime.fromtimestamp(NOW - 200 * DAY, UTC).strftime("%Y%m%d")
    store.append(feedback_layout.bad_day_key(old_day), b'["0100-1","bounced",null,null,0]')
    return {
        feedback_layout.message_events_key("0100-1"): True,
        feedback_layout.message_events_key("0100-2"): False,
        feedback_layout.history_key("old@example.com"): True,
        feedback_layout.history_key("new@example.com"): False,
        feedback_layout.seen_key("event-1"): True,
        feedback_layout.seen_key("event-2"): False,
        feedback_layout.bad_day_key(old_day): True,
    }


def unsent(store: Store) -> list[str]:
    """Pending, scheduled, claimed, paused, cancelled and key records, all very old."""
    ancient = [layout.new_batch_id(NOW - n * 400 * DAY) for n in (1, 2, 3)]
    queued, claimed, cancelled = ancient
    store.put(layout.queue_key(queued), batch(queued))
    store.append(layout.ledger_key(queued), SENT_LEDGER)  # half-sent
    store.put(layout.queue_key(claimed), batch(claimed))
    assert store.claim(claimed, "a worker", 3600) is not None
    due = datetime.fromtimestamp(NOW - 300 * DAY, UTC)
    store.put(scheduled_key(due, "late"), batch("late"))
    store.put(f"cancelled/{cancelled}.json", batch(cancelled))
    store.put(layout.pause_key("a worker"), b'{"since":"2020-01-01T00:00:00Z"}')
    store.put("keys/abc.json", b'{"acceptedAt":"2020-01-01T00:00:00Z"}')
    return [
        layout.queue_key(queued),
        layout.ledger_key(queued),
        layout.queue_key(claimed),
        scheduled_key(due, "late"),
        f"cancelled/{cancelled}.json",
        layout.pause_key("a worker"),
        "keys/abc.json",
    ]


def exists(store: Store, key: str) -> bool:
    return bool(store.read_log(key)) or store.exists(key)


def test_only_records_past_their_age_go_and_nothing_unsent(store: Store, tmp_path: Path) -> None:
    expected = finished_and_failed(store) | feedback(store)
    kept = unsent(store)
    fallback = FileStore(tmp_path / "fallback")
    fallback.put(layout.queue_key("old"), batch("old"))

    report = apply_retention(store, DEFAULT_RETENTION, now=NOW)

    assert {key: not exists(store, key) for key in expected} == expected
    assert [key for key in kept if not exists(store, key)] == []
    assert fallback.exists(layout.queue_key("old"))
    assert report.count(RetentionState.FINISHED) == 1
    assert "failed/odd.0.json" in report.unreadable


def test_a_state_left_out_is_kept(store: Store) -> None:
    expected = finished_and_failed(store)
    report = apply_retention(store, Retention(failed=30 * DAY), now=NOW)
    assert report.count(RetentionState.FINISHED) == 0
    for key, gone in expected.items():
        assert store.exists(key) == (not (gone and key.startswith("failed/")))
