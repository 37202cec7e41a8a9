"""Event records read back from the store are hostile too: a record whose date cannot be
read (year 1 at +01:00 is before the year 1 in UTC), whose fields have the wrong types,
or that is no JSON is skipped with a logged reason, and ``trace``, ``status``, the rates
and the soft-bounce count go on with the others. On a file store: real files."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from mailspool.cli import cli
from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import FeedbackEvent, parse_ses_event
from mailspool.feedback.ingest import ingest, read_history
from mailspool.feedback.rates import collect_rates
from mailspool.feedback.suppression import SuppressionList
from mailspool.feedback.trace import trace_address
from mailspool.spool import layout
from mailspool.spool.records import LedgerEntry, encode_entries
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from tests import ses_events

ADDRESS = "ana@example.org"

_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
_hostile_times = (
    st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=_offsets).map(
        datetime.isoformat
    )
    | st.datetimes(min_value=datetime.min, max_value=datetime.max).map(datetime.isoformat)
    | st.text(alphabet="0123456789-:+TZ. ", max_size=32)
    | st.integers()
    | st.none()
    | st.lists(st.integers(), max_size=2)
)


def soft_bounce(provider_id: str, when: str) -> FeedbackEvent:
    return parse_ses_event(ses_events.bounce(provider_id, ADDRESS, permanent=False, when=when))


def hostile_lines(good: FeedbackEvent) -> list[bytes]:
    """A good record, then records no reader may trust, each unreadable in its own way."""
    record = good.as_dict()
    odd_dates = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "yesterday", 5]
    lines = [
        orjson.dumps({**record, "id": f"odd-{n}", "timestamp": t}) for n, t in enumerate(odd_dates)
    ]
    return [
        orjson.dumps(record),
        *lines,
        orjson.dumps({**record, "id": "odd-diagnostics", "diagnostics": [1, 2]}),
        orjson.dumps([record]),
        b"{torn",
        b"[" * 2000 + b"]" * 2000,
    ]


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "spool")


def seed(store: FileStore) -> FeedbackEvent:
    good = soft_bounce("id-good", ses_events.later(-60))
    for line in hostile_lines(good):
        store.append(feedback_layout.history_key(ADDRESS), line)
        store.append(feedback_layout.message_events_key("id-good"), line)
    return good


def test_history_skips_each_unreadable_record_with_its_reason(
    store: FileStore, caplog: pytest.LogCaptureFixture
) -> None:
    good = seed(store)
    with caplog.at_level(logging.WARNING, logger="mailspool.feedback"):
        assert read_history(store, feedback_layout.history_key(ADDRESS)) == [good]
    assert "outside the years 1 to 9999" in caplog.text
    assert "'timestamp'" in caplog.text
    assert "'diagnostics'" in caplog.text
    assert len(caplog.records) == len(hostile_lines(good)) - 1


def test_trace_and_a_new_soft_bounce_go_past_them(store: FileStore) -> None:
    seed(store)
    [trace] = trace_address(store, ADDRESS)
    assert [step.state for step in trace.steps] == ["bounced"]
    result = CliRunner().invoke(cli, ["trace", ADDRESS, "--json", "--store", store.url])
    assert result.exit_code == 0, result.output
    assert len(orjson.loads(result.output)) == 1
    ingest(store, [soft_bounce("id-2", ses_events.later())])  # counts the history: no raise
    assert not SuppressionList(store).is_suppressed(ADDRESS)  # 2 readable, the odd not counted
    ingest(store, [soft_bounce("id-3", "0001-01-01T00:00:00Z")])  # a window before year 1
    assert SuppressionList(store).is_suppressed(ADDRESS)  # the third soft bounce


def test_rates_and_status_go_past_odd_days_lines_and_batch_ids(store: FileStore) -> None:
    batch_id = "99991231T235959999999Z-0000000a"  # its time rounds to the year 10000
    store.put(layout.done_key(batch_id), b"{}")
    store.append(layout.ledger_key(batch_id), encode_entries([LedgerEntry.sent(0, "pid-1", 1)]))
    day = feedback_layout.bad_day_key("20261129")
    for line in [b'["pid-1", "bounced"]', b"{torn", b"[1, 2]", b'["a", "b", "c"]', b"7"]:
        store.append(day, line)
    rates = collect_rates(store)
    assert (rates.sends, rates.bounces, rates.complaints) == (1, 1, 0)
    result = CliRunner().invoke(cli, ["status", "--json", "--store", store.url])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["bounce_rate"] == 1.0


@given(
    where=st.sampled_from(["bounce", "mail"]),
    when=_hostile_times,
    permanent=st.booleans(),
)
@example(where="bounce", when="0001-01-01T00:00:00+01:00", permanent=False)
@example(where="bounce", when="0001-01-01T00:00:00Z", permanent=False)
@example(where="mail", when="9999-12-31T23:59:59.999999Z", permanent=True)
def test_any_event_time_is_read_or_refused_and_recording_it_never_raises(
    where: str, when: object, permanent: bool
) -> None:
    event = ses_events.bounce("id-1", ADDRESS, permanent=permanent)
    if where == "mail":
        del event["bounce"]["timestamp"]
    event[where]["timestamp"] = when
    refused = ""
    try:
        parsed = parse_ses_event(event)
    except ValueError as err:  # the one error a reader of hostile events may raise
        refused = str(err)
    if refused:
        assert "timestamp" in refused or "encoded again" in refused
        return
    store = MemoryStore()
    for _ in range(3):  # the soft-bounce count reads back what was recorded
        ingest(store, [parsed])
    assert FeedbackEvent.from_dict(parsed.as_dict()) == parsed
    assert read_history(store, feedback_layout.history_key(ADDRESS)) == [parsed]
    collect_rates(store)


@pytest.mark.parametrize("index", ["9" * 30, "\u00b2", "-1", "1.5", ""])
def test_an_odd_index_tag_is_no_index_and_the_event_is_recorded(index: str) -> None:
    tags = {"mailspool-batch": ["20261129T080000000000Z-0000000a"], "mailspool-index": [index]}
    event = ses_events.delivery("id-1", ADDRESS, tags=tags)
    parsed = parse_ses_event(event)
    assert parsed.index is None
    store = MemoryStore()
    ingest(store, [parsed])
    assert read_history(store, feedback_layout.history_key(ADDRESS)) == [parsed]


def deep(depth: int) -> bytes:
    """A JSON value nested ``depth`` deep (``orjson`` reads up to 1024, writes up to 255)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def with_fields(record: dict[str, object], **raw: bytes) -> bytes:
    """``record`` as JSON with some fields' JSON text given as it is."""
    fields = {k: v for k, v in record.items() if k not in raw}
    return (
        orjson.dumps(fields)[:-1]
        + b"".join(b',"%s":%s' % (k.encode(), v) for k, v in raw.items())
        + b"}"
    )


def test_nested_values_where_text_belongs_are_ignored_not_a_crash() -> None:
    event = ses_events.bounce("id-1", ADDRESS)
    event["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = orjson.loads(deep(200))
    event["bounce"]["bounceSubType"] = orjson.loads(deep(200))
    parsed = parse_ses_event(event)
    assert parsed.permanent
    assert parsed.diagnostics == {ADDRESS: "Permanent"}
    store = MemoryStore()
    ingest(store, [parsed])
    assert SuppressionList(store).is_suppressed(ADDRESS)
    key = feedback_layout.history_key(ADDRESS)
    record = {**parsed.as_dict(), "id": "odd"}
    store.append(key, with_fields(record, kind=deep(1000), detail=deep(1000)))
    record = {**parsed.as_dict(), "id": "odd-2"}
    store.append(key, with_fields(record, diagnostics=b'{"x":' + deep(1000) + b"}"))
    history = read_history(store, key)
    assert [e.id for e in history] == [parsed.id, "odd-2"]
    assert history[1].diagnostics == {"x": ""}
    event["bounce"]["bounceSubType"] = orjson.loads(deep(1000))
    with pytest.raises(ValueError, match="cannot be encoded again"):
        parse_ses_event(event)  # deeper than the store could ever hold: unreadable
