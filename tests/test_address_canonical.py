"""One canonical form of an address: every spelling of a suppressed address is screened,
against a real SMTP server (aiosmtpd) none reaches ``RCPT TO``; control and invisible
characters are refused at ``send_mail`` and fail only their own e-mail in a batch file."""

from __future__ import annotations

import base64
import hashlib
import hmac
from contextlib import closing
from pathlib import Path

import idna
import orjson
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

import mailspool
from mailspool.address import address_spec, canonical_address
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import InvalidMessage, PermanentError
from mailspool.feedback.events import parse_ses_event
from mailspool.feedback.ingest import ingest
from mailspool.feedback.suppression import Reason, SuppressionList, shared_suppressions
from mailspool.feedback.trace import trace_address
from mailspool.feedback.unsubscribe import UnsubscribeLinks
from mailspool.message import Message
from mailspool.ops import admin
from mailspool.policy.screen import screen
from mailspool.producer.api import send_now
from mailspool.stores.memory import MemoryStore
from mailspool.stores.open_stores import shared_store
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import DrainReport, drain
from tests import ses_events
from tests.fixtures.smtp_server import SMTPSink

FAST = WorkerOptions(concurrency=2, retry_base=0.001, retry_cap=0.01, max_attempts=2)
META = {"from": "Blog <blog@example.com>", "contentType": "text/plain", "charset": "utf-8"}

# -- spellings ------------------------------------------------------------------------

_ascii_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_idn_label = st.text("abcdefghijklmnopqrstuvwxyzäöüéñçåøß", min_size=1, max_size=8).filter(
    lambda label: not label.isascii()
)
_local = st.text("abcdefghijklmnopqrstuvwxyz0123456789_+-", min_size=1, max_size=12)
WIDE = "".join(chr(ord(c) + 0xFEE0) for c in "example")  # fullwidth letters
_DOTS = ".\u3002\uff0e\uff61"  # full stop, ideographic, fullwidth, halfwidth ideographic


@st.composite
def suppressed_addresses(draw: st.DrawFn) -> tuple[str, str]:
    """A plain address (local part, domain as the user writes it; some domains are IDNs)."""
    labels = draw(st.lists(st.one_of(_ascii_label, _idn_label), min_size=1, max_size=3))
    return draw(_local), ".".join([*labels, draw(st.sampled_from(["com", "de", "example"]))])


def _fullwidth(char: str) -> str:
    return chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char


def _recase(text: str, flips: list[bool]) -> str:
    """Upper-case some characters (only those whose upper case maps back to them)."""
    return "".join(
        c.upper() if flip and len(c.upper()) == 1 and c.upper().lower() == c else c
        for c, flip in zip(text, [*flips, *[False] * len(text)], strict=False)
    )


@st.composite
def spellings(draw: st.DrawFn, local: str, domain: str) -> str:
    """One way of writing ``local@domain`` that reaches the same mailbox."""
    labels = domain.split(".")
    if draw(st.booleans()):  # U-label <-> A-label, label by label
        labels = [
            idna.encode(label, uts46=True).decode() if not label.isascii() else label
            for label in labels
        ]
    if draw(st.booleans()):
        labels = [_recase(label, draw(st.lists(st.booleans(), max_size=8))) for label in labels]
    if draw(st.booleans()):
        labels = [
            "".join(_fullwidth(c) if draw(st.booleans()) else c for c in label) for label in labels
        ]
    written_domain = labels[0] + "".join(draw(st.sampled_from(_DOTS)) + lb for lb in labels[1:])
    written_local = local
    if draw(st.booleans()):
        written_local = _recase(local, draw(st.lists(st.booleans(), max_size=12)))
    if draw(st.booleans()):
        written_local = "".join(_fullwidth(c) if draw(st.booleans()) else c for c in written_local)
    if draw(st.booleans()):  # quoted, some characters as quoted pairs
        pairs = "".join(f"\\{c}" if draw(st.booleans()) else c for c in written_local)
        written_local = f'"{pairs}"'
    address = f"{written_local}@{written_domain}"
    return f"Ana <{address}>" if draw(st.booleans()) else address


@given(suppressed_addresses(), st.data())
def test_every_spelling_of_a_suppressed_address_is_screened(
    address: tuple[str, str], data: st.DataObject
) -> None:
    local, domain = address
    canonical = canonical_address(f"{local}@{domain}")
    assert canonical.isascii()
    assert canonical == canonical.lower()
    assert canonical_address(canonical) == canonical  # a fixed point
    added_as = data.draw(spellings(local, domain))  # SES reports punycode; people write Unicode
    store = MemoryStore()
    SuppressionList(store).add(added_as, Reason.BOUNCE)
    checker = SuppressionList(store)  # another process: nothing cached, reads the store
    for _ in range(3):
        written = data.draw(spellings(local, domain))
        assert canonical_address(written) == canonical
        assert checker.is_suppressed(written)
        both = Message(to=(written, "other@example.org"), subject="s", text="t")
        kept = screen(both, checker).message
        assert kept is not None
        assert kept.to == ("other@example.org",)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ('"ana"@example.com', "ana@example.com"),
        ('"a\\na"@example.com', "ana@example.com"),
        ('"a".na@example.com', "a.na@example.com"),
        (f"Ana@{WIDE.upper()}.com", "ana@example.com"),
        ("ana@example\u3002com", "ana@example.com"),
        ("ana@bücher.de", "ana@xn--bcher-kva.de"),
        ("ana@BÜCHER.de", "ana@XN--BCHER-KVA.DE"),
        ("ana@straße.de", "ana@xn--strae-oqa.de"),  # IDNA 2008: ß is kept, not "ss"
    ],
)
def test_spellings_of_one_address_compare_equal(one: str, other: str) -> None:
    assert canonical_address(one) == canonical_address(other)


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ('"a b"@example.com', None),  # a space: refused as before
        ('"a,b"@example.com', '"a,b"@example.com'),  # quoting needed: kept, minimal
        ('"a\\"b"@example.com', '"a\\"b"@example.com'),
        ("ana@xn--bcher-kva.de", "ana@xn--bcher-kva.de"),
        ("josé@例え.jp", "josé@xn--r8jz45g.jp"),
        ("ana@[IPv6:2001:DB8::1]", "ana@[ipv6:2001:db8::1]"),
    ],
)
def test_the_canonical_form(address: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(InvalidMessage):
            canonical_address(address)
    else:
        assert canonical_address(address) == canonical


def test_ascii_and_unicode_domains_differ_from_strasse() -> None:
    """UTS 46 non-transitional: straße.de is not strasse.de (IDNA 2003 made them one)."""
    assert canonical_address("ana@straße.de") != canonical_address("ana@strasse.de")


# -- entries written before the canonical form -------------------------------------------


def _old_key(form: str) -> str:
    digest = hashlib.sha256(form.encode()).hexdigest()
    return f"suppression/{digest[:3]}/{digest}.json"


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("ana@bücher.de", "ana@xn--bcher-kva.de"),
        ("ana@bücher.de", "Ana <Ana@Bücher.de>"),
        ('"ana"@example.com', '"ana"@example.com'),
        (f"ana@{WIDE}.com", f"ana@{WIDE}.com"),
    ],
)
def test_an_entry_stored_under_an_older_form_still_matches(stored: str, asked: str) -> None:
    store = MemoryStore()
    record = {"address": stored, "reason": "complaint", "since": "2025-01-01T00:00:00Z"}
    store.put(_old_key(stored), orjson.dumps(record))  # as mailspool before this form wrote it
    suppressions = SuppressionList(store)
    entry = suppressions.get(asked)
    assert entry is not None
    assert (entry.address, entry.reason) == (canonical_address(stored), Reason.COMPLAINT)
    assert [e.address for e in suppressions.entries()] == [canonical_address(stored)]
    again = suppressions.add(asked, Reason.MANUAL)  # the first entry is kept
    assert again.reason is Reason.COMPLAINT
    assert suppressions.remove(asked) is True
    assert not SuppressionList(store).is_suppressed(asked)
    assert list(store.keys("suppression/")) == []


def test_an_unsubscribe_token_made_before_the_canonical_form_still_verifies() -> None:
    secret = b"0123456789abcdef-secret"
    links = UnsubscribeLinks("https://example.com/u", secret)
    # what the earlier version signed: the address lower-cased, its domain as written
    legacy = "ana@bücher.de"
    mac = hmac.new(secret, f"mailspool-unsubscribe:{legacy}".encode(), hashlib.sha256)
    old_token = f"{_b64(legacy.encode())}.{_b64(mac.digest()[:16])}"
    assert links.verify(old_token) == "ana@xn--bcher-kva.de"
    new = links.token("ana@Bücher.de")
    assert links.verify(new) == "ana@xn--bcher-kva.de"
    assert links.token("ana@xn--bcher-kva.de") == new  # every spelling: one token
    forged = f"{_b64(b'bob@bucher.de')}.{_b64(mac.digest()[:16])}"
    assert links.verify(forged) is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_ses_events_in_punycode_suppress_and_trace_the_unicode_spelling() -> None:
    store = MemoryStore()
    ingest(store, [parse_ses_event(ses_events.bounce("id-7", "ana@xn--bcher-kva.de"))])
    assert SuppressionList(store).is_suppressed("Ana <ana@BÜCHER.de>")
    [trace] = trace_address(store, "ana@bücher.de")
    assert [step.state for step in trace.steps] == ["bounced"]


# -- end to end: nothing reaches RCPT TO -------------------------------------------------

SIX = [
    '"ana"@example.com',
    f"ana@{WIDE}.com",
    "ana@example\u3002com",
    "ANA@Example.COM",
    "ana@bücher.de",
    "ana@XN--BCHER-KVA.de",
]
REFUSED = ["ana@exa\u00admple.com", "ana@exa\u200bmple.com", "an\u200da@example.com"]


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


@pytest.mark.parametrize("server", ["smtp_server", "smtputf8_server"])
def test_no_spelling_of_a_suppressed_address_reaches_rcpt_to(
    request: pytest.FixtureRequest, server: str
) -> None:
    sink: SMTPSink = request.getfixturevalue(server)
    store = MemoryStore()
    suppressions = SuppressionList(store)
    suppressions.add("ana@example.com", Reason.COMPLAINT)
    ingest(store, [parse_ses_event(ses_events.bounce("id-1", "ana@xn--bcher-kva.de"))])
    queue_raw(store, [[s] for s in (*SIX, *REFUSED)] + [["ok@example.com"]])
    [report] = deliver(store, sink.url).batches
    assert (report.sent, report.failed) == (1, len(SIX) + len(REFUSED))
    assert [e.rcpt_tos for e in sink.envelopes] == [("ok@example.com",)]
    failed = {item.record.index: item.record for item in admin.list_failed(store)}
    for index, spelling in enumerate(SIX):
        assert "suppressed (" in failed[index].reason, spelling
        assert not failed[index].retryable
    for index in range(len(SIX), len(SIX) + len(REFUSED)):
        assert "invisible character" in failed[index].reason
        assert failed[index].reason.startswith(f"queue/b.json, e-mail #{index}, field 'to': ")


def test_priority_mail_screens_every_spelling(smtputf8_server: SMTPSink) -> None:
    settings = Settings.load(store="memory:canonical", priority_transport=smtputf8_server.url)
    suppressions = shared_suppressions(shared_store(settings.store))
    suppressions.add("ana@example.com", Reason.BOUNCE)
    suppressions.add("ana@xn--bcher-kva.de", Reason.BOUNCE)
    for spelling in SIX:
        message = Message(to=(spelling,), subject="reset", text="x", sender="a@example.org")
        with pytest.raises(PermanentError, match="suppressed"):
            send_now(message, settings=settings)
    assert smtputf8_server.envelopes == []


# -- control and invisible characters ----------------------------------------------------

CONTROLS = ["\x00", "\x1b", "\x7f", "\x9b", "\t"]  # C0, ESC, DEL, C1 (CSI), tab
FIELDS = ["to", "Cc", "Bcc", "Reply-To", "From"]  # headers are named as the caller wrote them


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("header", FIELDS)
def test_send_mail_refuses_a_control_character_naming_the_field(
    tmp_path: Path, control: str, header: str
) -> None:
    settings = Settings.load(store=f"file://{tmp_path / 'spool'}")
    address = f"a{control}na@example.com"
    to, headers = (address, None) if header == "to" else ("ok@example.com", {header: address})
    with (
        pytest.raises(InvalidMessage, match="control character") as info,
        mailspool.request(settings=settings),
    ):
        mailspool.send_mail(to, "s", "m", headers)
    assert info.value.field == (header if header != "From" else "from")
    assert f"U+{ord(control):04X}" in str(info.value)
    assert not (tmp_path / "spool" / "queue").exists()


@pytest.mark.parametrize(
    "invisible", ["\u00ad", "\u200b", "\u200d", "\u202e", "\u2060", "\ufeff", "\ufe0f"]
)
@pytest.mark.parametrize("where", ["local", "domain"])
def test_send_mail_refuses_an_invisible_character(
    tmp_path: Path, invisible: str, where: str
) -> None:
    settings = Settings.load(store=f"file://{tmp_path / 'spool'}")
    address = f"a{invisible}na@example.com" if where == "local" else f"ana@exa{invisible}mple.com"
    with pytest.raises(InvalidMessage) as info, mailspool.request(settings=settings):
        mailspool.send_mail(["ok@example.com", address], "s", "m")
    assert info.value.field == "to"
    assert "invisible character" in str(info.value) or "Joiner" in str(info.value)
    assert not (tmp_path / "spool" / "queue").exists()


def test_format_characters_stay_allowed_in_a_display_name() -> None:
    name = "Ana \u200d\U0001f469\u200d\U0001f4bb \u200fعلي"
    assert Message.build(to=f'"{name}" <ana@example.com>', subject="s", text="t").to


def test_a_control_character_in_a_batch_file_fails_that_email_alone(
    smtp_server: SMTPSink,
) -> None:
    store = MemoryStore()
    queue_raw(
        store,
        [
            ["ok@example.com"],
            ["a\x00na@example.com"],
            ["b\x1bo@example.com", "ok2@example.com"],
            ["c\x7f@example.com"],
            ["last@example.com"],
        ],
    )
    [report] = deliver(store, smtp_server.url).batches
    assert (report.status, report.sent, report.failed) == ("finished", 2, 3)
    arrived = sorted(e.rcpt_tos for e in smtp_server.envelopes)
    assert arrived == [("last@example.com",), ("ok@example.com",)]
    failed = {item.record.index: item.record for item in admin.list_failed(store)}
    assert sorted(failed) == [1, 2, 3]
    for index, code in ((1, "U+0000"), (2, "U+001B"), (3, "U+007F")):
        assert failed[index].reason.startswith(f"queue/b.json, e-mail #{index}, field 'to': ")
        assert f"control character {code}" in failed[index].reason
        assert not failed[index].retryable


# -- the canonical form of anything accepted is an address, and its own canonical form -----

_ODD_LOCAL = st.text(
    st.one_of(
        st.sampled_from([*"abcXYZ019.!#$%&'*+/=?^_`{|}~-\"\\,;:()<>[]@ "]),
        st.sampled_from(
            [
                *"éßİǅςﬁ",
                *map(chr, (0xFF02, 0xFF3C, 0xFF20, 0xFF0E, 0x3002)),
                "\u00a0",
                "\u00a8",
                "\u3000",
                "\u0301",
            ]
        ),
        st.characters(blacklist_categories=("Cs",)),
    ),
    min_size=1,
    max_size=10,
)


@given(_ODD_LOCAL, st.sampled_from(["example.com", "bücher.de", f"{WIDE.upper()}\u3002com"]))
def test_the_canonical_form_of_an_accepted_address_is_its_own(local: str, domain: str) -> None:
    for written in (f"{local}@{domain}", f'"{local}"@{domain}'):
        try:
            address_spec(written)
        except InvalidMessage:
            continue
        canonical = canonical_address(written)
        assert address_spec(canonical) == canonical
        assert canonical_address(canonical) == canonical
        assert canonical_address(f"Ana <{canonical}>") == canonical


def test_the_cli_lists_one_entry_for_every_spelling_and_removes_it_by_any(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'spool'}"
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, [*args, "--store", store], catch_exceptions=False)

    assert run("suppression", "add", '"Ana"@bücher.de').exit_code == 0
    assert run("suppression", "add", "ana@XN--BCHER-KVA.DE").exit_code == 0  # the same one
    source = tmp_path / "list.jsonl"
    source.write_text(f"ana@{WIDE}\u3002com\n")
    assert "imported 1" in run("suppression", "import", str(source)).output
    listed = orjson.loads(run("suppression", "list", "--json").output)
    assert sorted(e["address"] for e in listed) == ["ana@example.com", "ana@xn--bcher-kva.de"]
    assert "removed" in run("suppression", "remove", "ana@bücher.de").output
    assert "removed" in run("suppression", "remove", '"ana"@example.com').output
    assert orjson.loads(run("suppression", "list", "--json").output) == []
    refused = runner.invoke(cli, ["suppression", "add", "a\x1bna@example.com", "--store", store])
    assert refused.exit_code == 1
    assert "control character U+001B" in refused.output


def test_two_spellings_of_one_recipient_get_one_rcpt_to() -> None:
    message = Message(
        to=("Ana <ana@example.com>",),
        cc=('"ana"@example.com', "bob@example.com"),
        bcc=(f"ANA@{WIDE}\u3002com",),
        subject="s",
        text="t",
    )
    assert message.envelope_recipients == ("ana@example.com", "bob@example.com")
    assert message.recipient_count == 2
