"""The failover chain's URL: the contract syntax, each broken rule named (no password
in the message), what the ledger calls a member, and a hypothesis test of the parser."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.config import Settings
from mailspool.delivery.factory import delivery_url
from mailspool.errors import ConfigurationError
from mailspool.transports import open_transport
from mailspool.transports.failover import FailoverTransport
from mailspool.transports.failover_url import Chain, format_chain, member_label, parse_chain
from tests.fixtures.smtp_server import SMTPSink


def test_the_contract_syntax_opens_every_member_in_order(smtp_server: SMTPSink) -> None:
    url = f"failover(ses://eu-west-1 {smtp_server.url})"
    with open_transport(url) as transport:
        assert isinstance(transport, FailoverTransport)
        assert [m.label for m in transport.members] == ["ses://eu-west-1", smtp_server.url]
        assert transport.members[0].breaker is not transport.members[1].breaker


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("failover()", "is empty"),
        ("failover(   )", "is empty"),
        ("failover(memory:a failover(memory:b))", "do not nest"),
        ("failover(memory:a", "no closing ')'"),
        ("failover(memory:a) extra", "only ?retry_period"),
        ("failover(memory:a memory:a)", "names memory:a twice"),
        ("failover(memory:a)?retry_period=-1", "retry_period"),
        ("failover(memory:a)?retry_period=soon", "retry_period"),
        ("failover(memory:a)?period=1", "unknown parameter 'period'"),
    ],
)
def test_a_wrong_chain_is_named(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        open_transport(url)


def test_an_unknown_scheme_names_the_member_and_no_password_leaks() -> None:
    with pytest.raises(ConfigurationError, match="member 2 of the failover chain") as raised:
        open_transport("failover(memory:a gopher://mail.example)")
    assert "unknown transport URL 'gopher://mail.example'" in str(raised.value)
    with pytest.raises(ConfigurationError) as raised:
        open_transport("failover(smtp://me:s3cret@relay.example memory:a)?retry_period=x")
    assert "s3cret" not in str(raised.value)
    assert "me:***@relay.example" in str(raised.value)


def test_the_chain_shows_no_password() -> None:
    with open_transport("failover(smtp://me:s3cret@relay.example:25 memory:a)") as chain:
        assert chain.url == "failover(smtp://me@relay.example:25 memory:a)"


def test_the_label_drops_credentials_and_query() -> None:
    assert member_label("smtp://me:s3cret@relay.example:587?timeout=5") == (
        "smtp://relay.example:587"
    )
    assert member_label("ses://eu-west-1?configuration_set=x") == "ses://eu-west-1"


_HOST = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5})?", fullmatch=True)
_MEMBER = st.one_of(
    st.builds(
        "{}://{}:{}".format, st.sampled_from(["smtp", "smtps"]), _HOST, st.integers(1, 65535)
    ),
    st.builds("ses://{}".format, st.sampled_from(["eu-west-1", "us-east-1"])),
    st.builds("memory:{}".format, _HOST),
)


@given(
    st.lists(_MEMBER, min_size=1, max_size=6, unique_by=member_label),
    st.one_of(st.just(60.0), st.floats(0, 86_400, allow_nan=False)),
)
def test_property_a_chain_written_out_reads_back(members: list[str], period: float) -> None:
    chain = Chain(tuple(members), period)
    assert parse_chain(format_chain(chain)) == chain


@given(st.text(max_size=200))
def test_property_any_text_is_a_chain_or_a_named_configuration_error(text: str) -> None:
    said = ""
    try:
        chain = parse_chain(f"failover({text}")
    except ConfigurationError as err:
        said = str(err)
    if said:
        assert "failover chain" in said or "parameter" in said
        return
    assert chain.members
    assert all(" " not in m for m in chain.members)
    assert 0 <= chain.retry_period <= 86_400


def test_the_worker_pools_each_member_as_it_would_alone() -> None:
    settings = Settings.load(
        transport="failover(smtp://a.example ses://eu-west-1 memory:x)?retry_period=5",
        concurrency=7,
    )
    assert delivery_url(settings) == (
        "failover(smtp://a.example?max_connections=7 ses://eu-west-1?max_connections=7 "
        "memory:x)?retry_period=5.0"
    )
