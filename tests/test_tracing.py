"""Trace context through the queue: a Django request's span, the batch write, the claim,
each send (linked to the request) and the bounce and complaint, in one trace, read from
the OpenTelemetry SDK's in-memory exporter; and the stored traceparent's parser."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests import django_settings

django_settings.configure()

from django.test import Client  # noqa: E402

import mailspool  # noqa: E402
from mailspool import tracing  # noqa: E402
from mailspool.config import Settings  # noqa: E402
from mailspool.delivery.factory import build_worker, open_worker  # noqa: E402
from mailspool.feedback.events import parse_ses_event  # noqa: E402
from mailspool.feedback.ingest import ingest  # noqa: E402
from mailspool.feedback.suppression import shared_suppressions  # noqa: E402
from mailspool.message import Message  # noqa: E402
from mailspool.spool import batch as batch_format  # noqa: E402
from mailspool.spool.layout import new_batch_id  # noqa: E402
from mailspool.stores.file import FileStore  # noqa: E402
from mailspool.stores.memory import MemoryStore  # noqa: E402
from mailspool.transports.memory import MemoryTransport  # noqa: E402
from mailspool.triggers.local import drain  # noqa: E402
from tests import ses_events  # noqa: E402
from tests.fixtures.smtp_server import SMTPSink  # noqa: E402

EXPORTER = InMemorySpanExporter()
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


#: The SDK as an application configures it, with the in-memory exporter.
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The SDK's provider as the global one for this test only: the API sets it once per
    process (``set_tracer_provider``), and the other tests of a run must see mailspool
    without an SDK, so its global is set and restored here."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", PROVIDER)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def _everything_said(span: ReadableSpan) -> str:
    """Every name, attribute and event of a span, as text, to look for secrets in."""
    parts = [span.name, repr(dict(span.attributes or {}))]
    parts += [f"{e.name} {dict(e.attributes or {})!r}" for e in span.events]
    return " ".join(parts)


def test_a_django_request_its_three_sends_and_their_bounce_are_one_trace(
    spool: Path, smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    smtp_server.refuse_recipient("reader2@example.com")  # a hard bounce in the session
    assert Client().get("/traced/").content == b"queued 3"
    [request] = [s for s in spans.get_finished_spans() if s.name == "GET /traced/"]
    [write] = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.PRODUCER]

    settings = Settings.load(store=f"file://{spool}", transport=smtp_server.url)
    with open_worker(settings) as worker:
        report = drain(worker)
    [batch_id] = [b.batch_id for b in report.batches]
    complaint = parse_ses_event(ses_events.complaint("ses-1", "reader1@example.com"))
    ingest(FileStore(spool), [dataclasses.replace(complaint, batch=batch_id, index=1)])

    finished = spans.get_finished_spans()
    context = request.context
    assert context is not None
    assert {s.context.trace_id for s in finished if s.context} == {context.trace_id}
    assert write.parent is not None
    assert write.parent.span_id == context.span_id
    [claim] = [s for s in finished if s.kind is trace.SpanKind.CONSUMER and "process" in s.name]
    assert (claim.attributes or {})["mailspool.batch.id"] == batch_id
    sends = sorted(
        (s for s in finished if s.kind is trace.SpanKind.CLIENT),
        key=lambda s: str((s.attributes or {})["mailspool.batch.index"]),
    )
    assert len(sends) == 3
    for index, send in enumerate(sends):
        assert [link.context.span_id for link in send.links] == [context.span_id]
        attributes = send.attributes or {}
        assert attributes["messaging.system"] == "mailspool"
        assert attributes["mailspool.transport.scheme"] == "smtp"
        assert attributes["mailspool.to.sha256"] == tracing.address_hashes(
            [f"reader{index}@example.com"]
        )
    # reader2 was refused, its Cc took it: sent, and its bounce comes back as an event
    assert [(s.attributes or {})["mailspool.outcome"] for s in sends] == ["sent"] * 3
    events = {e.name: s for s in finished for e in s.events if e.name.startswith("mailspool.")}
    assert set(events) == {"mailspool.bounced", "mailspool.complained"}
    assert (events["mailspool.bounced"].attributes or {})["mailspool.batch.index"] == 2
    assert (events["mailspool.complained"].attributes or {})["mailspool.batch.index"] == 1

    said = " ".join(_everything_said(s) for s in finished if s is not request)
    for secret in ("@example.com", "Private subject", "Private body", "hidden", "copy"):
        assert secret not in said


def test_a_program_that_never_imported_opentelemetry_does_not_load_it() -> None:
    """No tracer provider can be set without ``opentelemetry.trace``: until the program
    imports it (an SDK, ``opentelemetry-instrument``), a worker neither loads it nor
    makes spans; once imported, the same calls use it."""
    probe = (
        "import sys\n"
        "from mailspool import tracing\n"
        "parent = '00-' + '1' * 32 + '-' + '2' * 16 + '-01'\n"
        "with tracing.claim_span('b', [{'traceparent': parent}]):\n"
        "    pass\n"
        "print('opentelemetry' in sys.modules, tracing.available())\n"
        "import opentelemetry.trace\n"
        "print(tracing.available())\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.splitlines() == ["False False", "True"], result.stderr


def test_no_span_and_no_field_for_mail_queued_outside_any_span(
    spool: Path, smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    mailspool.send_mail("reader@example.com", "Hello", "Hi")
    [queued] = list((spool / "queue").iterdir())
    assert "traceparent" not in queued.read_text()
    with open_worker(Settings.load(store=f"file://{spool}", transport=smtp_server.url)) as w:
        drain(w)
    assert spans.get_finished_spans() == ()


def test_a_refused_send_is_an_error_span_and_a_bad_context_sends_untraced(
    spans: InMemorySpanExporter,
) -> None:
    """A suppressed recipient fails its e-mail: the span says so. An e-mail whose stored
    traceparent was tampered with is sent, without a span."""
    store, transport = MemoryStore(), MemoryTransport()
    shared_suppressions(store).add("gone@example.com")
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("job"), mailspool.request(store=store):
        mailspool.send_mail("gone@example.com", "Hello", "Hi")
        mailspool.send_mail("here@example.com", "Hello", "Hi")
    [key] = store.keys("queue/")
    document = json.loads(store.get(key))
    document["emails"][1]["traceparent"] = VALID.upper()  # hostile: the reader ignores it
    store.put(key, json.dumps(document).encode())

    worker = build_worker(Settings.load(), store, transport)
    try:
        drain(worker)
    finally:
        worker.close()
    assert [m.envelope_recipients for m in transport.outbox] == [("here@example.com",)]
    [send] = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert (send.attributes or {})["mailspool.batch.index"] == 0
    assert not send.status.is_ok
    assert (send.attributes or {})["mailspool.outcome"] == "failed"


def test_each_e_mail_keeps_the_span_it_was_queued_in(spans: InMemorySpanExporter) -> None:
    store = MemoryStore()
    tracer = trace.get_tracer("tests")
    with mailspool.request(store=store):
        mailspool.send_mail("outside@example.com", "Hello", "Hi")
        for name in ("first", "second"):
            with tracer.start_as_current_span(name):
                mailspool.send_mail(f"{name}@example.com", "Hello", "Hi")
                mailspool.send_mail(f"{name}.again@example.com", "Hello", "Hi")
        mailspool.send_mail("after@example.com", "Hello", "Hi")
    [key] = store.keys("queue/")
    stored = [e.get("traceparent") for e in json.loads(store.get(key))["emails"]]
    by_name = {s.name: s.context for s in spans.get_finished_spans() if s.context}
    expected = [
        f"00-{by_name[n].trace_id:032x}-{by_name[n].span_id:016x}-{by_name[n].trace_flags:02x}"
        for n in ("first", "first", "second", "second")
    ]
    assert stored == [None, *expected, None]


def test_a_scheduled_e_mail_carries_its_trace_to_its_own_batch(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_STORE", "memory:traced-later")
    with trace.get_tracer("tests").start_as_current_span("job") as job:
        assert mailspool.send_mail("later@example.com", "Hello", "Hi", key="k-1", send_at=60)
    store = MemoryStore.shared("traced-later")
    [key] = store.keys("scheduled/")
    [email] = json.loads(store.get(key))["emails"]
    assert tracing.parse_traceparent(email["traceparent"]).span_id == job.get_span_context().span_id
    [write] = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.PRODUCER]
    assert write.parent is not None
    assert write.parent.span_id == job.get_span_context().span_id


@pytest.mark.parametrize("batch_id", ["../../etc/passwd", "x" * 5000, "nope", ""])
def test_an_event_naming_a_hostile_or_unknown_batch_is_applied_untraced(
    batch_id: str, spans: InMemorySpanExporter
) -> None:
    store = MemoryStore()
    event = parse_ses_event(ses_events.bounce("ses-2", "gone@example.com"))
    report = ingest(store, [dataclasses.replace(event, batch=batch_id, index=0)])
    assert (report.new, report.suppressed) == (1, 1)
    assert spans.get_finished_spans() == ()


def test_the_writer_writes_what_the_v1_schema_allows() -> None:
    validator = jsonschema.Draft202012Validator(
        json.loads(resources.files("mailspool").joinpath("schema/batch-v1.schema.json").read_text())
    )
    message = Message(to=("a@example.com",), subject="s", text="t", traceparent=VALID)
    document = json.loads(
        batch_format.encode([message], batch_id=new_batch_id(), default_sender="s@example.com")
    )
    assert document["emails"][0]["traceparent"] == VALID
    validator.validate(document)
    for bad in (VALID.upper(), "00-" + "0" * 32 + VALID[35:], VALID[:-1]):
        document["emails"][0]["traceparent"] = bad
        assert not validator.is_valid(document)


def test_a_bad_stored_traceparent_is_ignored_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = {
        "version": 1,
        "meta": {"from": "a@example.com", "contentType": "text/plain", "charset": "utf-8"},
        "emails": [
            {"to": ["b@example.com"], "subject": "s", "message": "m", "attachments": []}
            | {"traceparent": "ff-" + "0" * 52}
        ],
    }
    loaded = batch_format.decode(json.dumps(document), source="queue/x.json")
    with caplog.at_level(logging.WARNING, logger="mailspool.tracing"):
        message = loaded.message(0)
    assert message.traceparent is None
    assert "queue/x.json e-mail #0: ignored its trace context" in caplog.text
    assert "55 characters" in caplog.text or "malformed" in caplog.text


# -- the parser -----------------------------------------------------------------------------


@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.integers(0, 255))
def test_every_valid_traceparent_reads_back_to_itself(
    trace_id: int, span_id: int, flags: int
) -> None:
    text = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    parsed = tracing.parse_traceparent(text)
    assert (parsed.trace_id, parsed.span_id, parsed.flags) == (trace_id, span_id, flags)
    assert str(parsed) == text


def _valid_by_the_w3c_text(value: object) -> bool:
    """The W3C rule for version 00, written out field by field (the oracle)."""
    if not isinstance(value, str) or len(value) != 55 or value[:3] != "00-":
        return False
    fields = value[3:].split("-")
    hexes = [len(f) for f in fields] == [32, 16, 2] and all(
        c in "0123456789abcdef" for f in fields for c in f
    )
    return hexes and int(fields[0], 16) != 0 and int(fields[1], 16) != 0


NEAR_MISSES = st.from_regex(r"\A0[0-1f]-[0-9a-fA-F]{30,33}-[0-9a-f0]{15,17}-[0-9a-fA-F]{2}\Z")


@given(
    st.one_of(NEAR_MISSES, st.text(max_size=80), st.binary(max_size=60), st.integers(), st.none())
)
def test_a_traceparent_is_read_exactly_when_the_w3c_rule_allows(value: object) -> None:
    if _valid_by_the_w3c_text(value):
        assert str(tracing.parse_traceparent(value)) == value
        return
    with pytest.raises(ValueError, match="traceparent"):
        tracing.parse_traceparent(value)


@pytest.mark.parametrize(
    "value",
    [
        VALID.upper(),  # W3C: lower-case hex only
        "01" + VALID[2:],  # a version this reader does not know
        "ff" + VALID[2:],  # the forbidden version
        VALID + "-extra",
        VALID[:-1],
        "00-" + "0" * 32 + VALID[35:],  # all-zero trace id
        VALID[:36] + "0" * 16 + VALID[52:],  # all-zero parent id
        " " + VALID[1:],
        VALID.replace("-", "_"),
        "x" * 10_000,
    ],
)
def test_malformed_traceparents_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="traceparent"):
        tracing.parse_traceparent(value)
    assert tracing.parse_traceparent(VALID)  # the sample itself is valid
