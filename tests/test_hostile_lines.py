"""Files an operator feeds mailspool, read line by line, each line alone: a byte that is
not UTF-8, a date that cannot be read, a line that is not JSON or nested too deep, costs
only its own line, reported with its number and reason; the others are recorded.
``mailspool events ingest`` and ``mailspool suppression import``, on a file store."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mailspool.cli import cli
from mailspool.feedback.lines import read_lines
from mailspool.feedback.route import ingest_lines
from mailspool.feedback.suppression import Reason, Suppression, SuppressionList
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from tests import ses_events


def event_line(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode() + b"\n"


#: Lines that get past the JSON parser into the event reader.
SAMPLES = [
    event_line(ses_events.bounce("id-1", "a@example.org")).strip(),
    event_line(
        ses_events.bounce("id-2", "b@example.org", when="0001-01-01T00:00:00+01:00")
    ).strip(),
    event_line(ses_events.sns_envelope(ses_events.complaint("id-3", "c@example.org"))).strip(),
    b'{"eventType": "Bounce", "mail": {"messageId": 5}}',
    b'{"Type": "Notification", "Message": "{\\"x\\": 1}"}',
]


def test_events_ingest_records_every_good_line_around_the_bad_ones(tmp_path: Path) -> None:
    year_1 = ses_events.bounce("id-2", "old@example.org", when="0001-01-01T00:00:00+01:00")
    lines = [
        event_line(ses_events.bounce("id-1", "first@example.org")),  # 1
        b'{"note": "caf\xe9"}\n',  # 2: Latin-1, not UTF-8
        event_line(year_1),  # 3: a date before the year 1 in UTC
        b"\n",  # 4: blank, skipped
        b"{torn\n",  # 5
        b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"\n",  # 6: deeper than 1024
        b'{"Records": "no"}\n',  # 7: no SES event
        event_line(ses_events.sns_envelope(ses_events.complaint("id-3", "last@example.org"))),
    ]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(lines))
    store = f"file://{tmp_path / 'spool'}"
    result = CliRunner().invoke(cli, ["events", "ingest", str(source), "--store", store])
    assert result.exit_code == 1
    assert "2 event(s), 2 new, 2 address(es) suppressed" in result.stdout
    problems = [line for line in result.stderr.splitlines() if ", line " in line]
    assert [p.split(":")[0] for p in problems] == [f"{source}, line {n}" for n in (2, 3, 5, 6, 7)]
    assert "not UTF-8: byte 0xe9" in problems[0]
    assert "outside the years 1 to 9999" in problems[1]
    assert "not JSON" in problems[2]
    assert "not JSON" in problems[3]
    assert "no SES event" in problems[4]
    assert "5 line(s) not recorded" in result.stderr
    suppressions = SuppressionList(FileStore(tmp_path / "spool"))
    assert suppressions.is_suppressed("first@example.org")
    assert suppressions.is_suppressed("last@example.org")
    assert not suppressions.is_suppressed("old@example.org")


def test_events_ingest_reads_stdin_as_bytes(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + event_line(ses_events.bounce("id-1", "a@example.org")) + b"\xff\n"
    store = f"file://{tmp_path / 'spool'}"
    result = CliRunner().invoke(cli, ["events", "ingest", "-", "--store", store], input=data)
    assert result.exit_code == 1
    assert "1 event(s)" in result.stdout
    assert "-, line 2: not UTF-8: byte 0xff at column 1" in result.stderr


def test_a_line_longer_than_the_limit_is_skipped_without_being_held() -> None:
    data = io.BytesIO(b"short\n" + b"x" * 100 + b"\n" + b"y" * 250 + b"\nlast")
    data.name = "f"
    lines = list(read_lines(data, limit=64))
    assert [(line.number, line.text) for line in lines] == [
        (1, "short"),
        (2, ""),
        (3, ""),
        (4, "last"),
    ]
    assert lines[1].problem == "f, line 2: longer than 64 bytes: skipped"
    assert lines[2].problem == "f, line 3: longer than 64 bytes: skipped"


def test_text_input_reads_the_same() -> None:
    lines = list(read_lines(io.StringIO("\ufeffa\n\n  b  \n")))
    assert [(line.number, line.text, line.problem) for line in lines] == [
        (1, "a", ""),
        (3, "b", ""),
    ]


def test_suppression_import_reports_each_bad_line_and_imports_the_rest(tmp_path: Path) -> None:
    lines = [
        b"a@example.org\n",  # 1
        b"caf\xe9@example.org\n",  # 2: Latin-1
        b'{"address": "b@example.org", "since": "0001-01-01T00:00:00+01:00"}\n',  # 3
        b"not an address\n",  # 4
        b'{"address": "c@example.org", "reason": "angry"}\n',  # 5
        b"# a comment\n",
        b'{"address": 7}\n',  # 7
        b"[" * 2000 + b"\n",  # 8
        b'{"address": "d@example.org", "since": "2026-01-01T00:00:00Z"}\n',  # 9
    ]
    source = tmp_path / "list.txt"
    source.write_bytes(b"".join(lines))
    store = f"file://{tmp_path / 'spool'}"
    result = CliRunner().invoke(cli, ["suppression", "import", str(source), "--store", store])
    assert result.exit_code == 1
    assert "imported 2 address(es)" in result.stdout
    problems = [line for line in result.stderr.splitlines() if ", line " in line]
    assert [p.split(":")[0] for p in problems] == [
        f"{source}, line {n}" for n in (2, 3, 4, 5, 7, 8)
    ]
    assert "field 'since'" in problems[1]
    assert "field 'reason'" in problems[3]
    assert "6 line(s) not imported" in result.stderr
    entries = {e.address: e.since for e in SuppressionList(FileStore(tmp_path / "spool")).entries()}
    assert set(entries) == {"a@example.org", "d@example.org"}


class Watched:
    """Entries for ``import_entries``, each yield checking how many are already written:
    the writes may lag the reading by one chunk at most (the memory an import holds)."""

    def __init__(self, store: FileStore, count: int, chunk: int) -> None:
        self.store, self.count, self.chunk = store, count, chunk
        self.lags: list[int] = []

    def __iter__(self) -> Iterator[Suppression]:
        for i in range(self.count):
            if i % self.chunk == 0:
                written = sum(1 for _ in self.store.keys("suppression/"))
                self.lags.append(i - written)
            yield Suppression(f"u{i}@example.org", Reason.BOUNCE, "2026-01-01T00:00:00Z")


def test_an_import_writes_each_chunk_before_it_reads_the_next(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    entries = Watched(store, 400, chunk=100)
    assert SuppressionList(store).import_entries(entries, chunk=100) == 400
    assert entries.lags == [0] * 4  # every chunk written before the next was read


@given(data=st.binary(max_size=400), limit=st.integers(min_value=1, max_value=64))
def test_any_bytes_read_as_lines_or_problems_never_an_error(data: bytes, limit: int) -> None:
    stream = io.BytesIO(data)
    stream.name = "f"
    lines = list(read_lines(stream, limit=limit))
    numbers = [line.number for line in lines]
    assert numbers == sorted(set(numbers))
    assert all(n <= data.count(b"\n") + 1 for n in numbers)
    assert all(bool(line.text) != bool(line.problem) for line in lines)


@given(data=st.lists(st.binary(max_size=60) | st.sampled_from(SAMPLES), max_size=8))
def test_events_ingest_of_any_lines_never_raises(data: list[bytes]) -> None:
    stream = io.BytesIO(b"\n".join(line.replace(b"\n", b" ") for line in data))
    problems: list[str] = []
    result, bad = ingest_lines(stream, MemoryStore(), on_problem=problems.append)
    assert bad == len(problems)
    assert result.events + bad <= len(data)
