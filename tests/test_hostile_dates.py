"""Dates a batch file may hold, read as hostile: any ``sendAt``, ``expiresAt`` or
``createdAt`` either reads or is an ``InvalidBatch`` naming the field, and a drain
quarantines a file whose date cannot be represented (``0001-01-01T00:00:00+01:00`` is
before the year 1 in UTC) and goes on with the others."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mailspool.delivery.worker import Worker
from mailspool.errors import InvalidBatch
from mailspool.message import Message
from mailspool.spool import batch, layout
from mailspool.spool.records import QuarantineError, moment, timestamp
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain

SENDER = "Mailspool <mail@example.com>"
FIELDS = ("sendAt", "expiresAt", "createdAt")

_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
#: Every time a datetime can hold, at every offset, in each spelling Python writes.
_time_strings = st.builds(
    lambda moment, spec: moment.isoformat(timespec=spec),
    st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=_offsets),
    st.sampled_from(["auto", "seconds", "microseconds", "hours"]),
)
_hostile = (
    _time_strings
    | st.datetimes(min_value=datetime.min, max_value=datetime.max).map(datetime.isoformat)
    | st.text(alphabet="0123456789-:+TZ.tz ", max_size=40)
    | st.text(max_size=40)
)


def document(**fields: object) -> dict[str, object]:
    data: dict[str, object] = orjson.loads(
        batch.encode(
            [Message(to=("a@example.org",), subject="s", text="x")],
            batch_id="b",
            default_sender=SENDER,
        )
    )
    data.update(fields)
    return data


@given(field=st.sampled_from(FIELDS), text=_hostile)
@example(field="expiresAt", text="0001-01-01T00:00:00+01:00")
@example(field="sendAt", text="9999-12-31T23:59:59-01:00")
@example(field="expiresAt", text="2026-01-01T24:00:00Z")
def test_any_date_text_reads_or_is_an_invalid_batch_naming_it(field: str, text: str) -> None:
    named: InvalidBatch | None = None
    try:
        decoded = batch.decode(orjson.dumps(document(**{field: text})), source="queue/b.json")
    except InvalidBatch as err:
        named = err
    if named is not None:
        assert (named.field, named.source) == (field, "queue/b.json")
        return
    expires = decoded.expires()  # what the worker compares with now
    if expires is not None:
        assert expires.tzinfo is UTC
        assert (datetime.now(UTC) >= expires) in (True, False)
        assert timestamp(expires)


@given(text=_hostile)
def test_moment_raises_only_value_error_and_gives_utc(text: str) -> None:
    try:
        parsed = moment(text)
    except ValueError:
        return
    assert parsed.tzinfo is UTC
    assert abs(parsed - datetime.now(UTC)) >= timedelta(0)  # never an OverflowError


def test_a_drain_quarantines_a_date_it_cannot_represent_and_goes_on(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    bad = layout.queue_key("20261129T080000000000Z-0000000a")
    store.put(bad, orjson.dumps(document(expiresAt="0001-01-01T00:00:00+01:00")))
    good = layout.queue_key("20261129T080000000001Z-0000000b")
    store.put(good, orjson.dumps(document()))
    transport = MemoryTransport()
    with closing(Worker(store, transport)) as worker:
        report = drain(worker, fallback_base=None)
    assert report.errors == []
    assert {r.key: str(r.status) for r in report.batches} == {
        bad: "quarantined",
        good: "finished",
    }
    assert len(transport.outbox) == 1
    error = QuarantineError.decode(store.get(layout.quarantine_error_key(bad)), source="quarantine")
    assert error.field == "expiresAt"
    assert "outside the years 1 to 9999" in error.error
    with closing(Worker(store, MemoryTransport())) as worker:
        assert drain(worker, fallback_base=None).errors == []  # nothing left to fail on


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_moment_names_a_time_outside_the_years_it_holds(text: str) -> None:
    with pytest.raises(ValueError, match="outside the years 1 to 9999 in UTC"):
        moment(text)
