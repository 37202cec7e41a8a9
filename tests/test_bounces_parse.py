"""Returned mail read into findings: flufl.bounce's own corpus of real bounces, and DSN,
ARF, delayed and auto-reply samples built with the stdlib."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.feedback.bounces import parse_bounce
from tests.bounce_samples import arf, auto_reply, dsn

pytest.importorskip("flufl.bounce", reason="pip install mailspool[bounces]")

VERP_TO = "bounces+20261207T100000000000Z-0a1b2c3d.0.aaaaaaaaaaaaa@example.com"


def _corpus() -> tuple[Path, list[tuple[str, str, set[str], bool]]]:
    """The installed flufl.bounce's test data and the expectations its own tests hold
    (``flufl/bounce/testing/helpers.py`` DATA: detector, file, addresses, temporary?),
    read as a literal: the module imports nose2, which is not needed here."""
    spec = importlib.util.find_spec("flufl.bounce")
    assert spec is not None
    assert spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    tree = ast.parse((root / "testing" / "helpers.py").read_text())
    data = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "DATA"
    )
    rows = [
        (row[0], row[1], {a.decode().lower() for a in row[2]}, bool(row[3:] and row[3]))
        for row in data
    ]
    return root / "tests" / "data", rows


CORPUS_DIR, CORPUS = _corpus()


def test_the_corpus_is_the_installed_packages() -> None:
    assert len(CORPUS) > 100
    assert all((CORPUS_DIR / name).is_file() for _, name, _, _ in CORPUS)


@pytest.mark.parametrize(("detector", "name", "expected", "temporary"), CORPUS)
def test_each_bounce_of_the_corpus_names_its_addresses(
    detector: str, name: str, expected: set[str], temporary: bool
) -> None:
    parsed = parse_bounce((CORPUS_DIR / name).read_bytes())
    if temporary and parsed.kind == "delayed":
        # flufl.bounce counts "Action: delayed" as a temporary failure; it is not a
        # bounce at all here (the message may still arrive)
        assert parsed.findings == ()
        return
    found = {f.recipient.lower() for f in parsed.findings if f.permanent is not temporary}
    assert expected <= found, (parsed.kind, parsed.findings)


def test_unrecognisable_mail_reports_nothing() -> None:
    parsed = parse_bounce((CORPUS_DIR / "dumbass_01.txt").read_bytes())
    assert parsed.findings == ()


def test_a_dsn_names_recipient_status_and_the_servers_words() -> None:
    parsed = parse_bounce(dsn("gone@example.org", VERP_TO))
    assert parsed.kind == "dsn"
    [finding] = parsed.findings
    assert finding.recipient == "gone@example.org"
    assert (finding.permanent, finding.status) == (True, "5.1.1")
    assert finding.diagnostic == "550 5.1.1 <gone@example.org>: Recipient address rejected"
    assert VERP_TO in parsed.envelope
    assert parsed.returned_ids == ("<20261207T100000000000Z-0a1b2c3d.0@example.com>",)


@given(
    st.sampled_from(["4", "5"]),
    st.integers(min_value=0, max_value=7),
    st.integers(min_value=0, max_value=20),
)
def test_hard_or_soft_follows_the_status_class(klass: str, subject: int, detail: int) -> None:
    status = f"{klass}.{subject}.{detail}"
    [finding] = parse_bounce(dsn("x@example.org", VERP_TO, status=status)).findings
    assert finding.status == status
    assert finding.permanent is (klass == "5")


@pytest.mark.parametrize("action", ["delayed", "delivered", "relayed", "expanded"])
def test_a_dsn_that_is_not_a_failure_is_no_bounce(action: str) -> None:
    parsed = parse_bounce(dsn("x@example.org", VERP_TO, action=action, status="4.4.7"))
    assert parsed.findings == ()
    assert parsed.kind in ("delayed", "dsn", "unknown")


def test_an_abuse_report_is_a_complaint_about_the_returned_messages_recipient() -> None:
    parsed = parse_bounce(arf("reader@example.org", VERP_TO))
    assert parsed.kind == "arf"
    [finding] = parsed.findings
    assert (finding.recipient, finding.complaint, finding.diagnostic) == (
        "reader@example.org",
        True,
        "abuse",
    )
    assert parsed.returned_paths == (f"<{VERP_TO}>",)


def test_an_auto_reply_is_no_bounce() -> None:
    parsed = parse_bounce(auto_reply("Ana <ana@example.org>", VERP_TO))
    assert (parsed.kind, parsed.findings) == ("auto-reply", ())


@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_raising(raw: bytes) -> None:
    parse_bounce(raw)
