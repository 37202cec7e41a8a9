"""One-click unsubscribe (RFC 8058): signed per-recipient tokens, the headers, the endpoint."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.errors import ConfigurationError
from mailspool.feedback import layout
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.feedback.unsubscribe import UnsubscribeEndpoint, UnsubscribeLinks
from mailspool.message import Message
from mailspool.stores.memory import MemoryStore
from tests.strategies import addresses

LINKS = UnsubscribeLinks("https://blog.example.com/unsubscribe", b"0123456789abcdef-secret")


def token_of(message: Message) -> str:
    value = dict(message.headers)["List-Unsubscribe"]
    url = value.split(",")[0].strip().strip("<>")
    return parse_qs(urlsplit(url).query)["token"][0]


@given(addresses())
def test_a_token_names_its_recipient(address: str) -> None:
    assert LINKS.verify(LINKS.token(address)) == layout.normalize_address(address)


@given(addresses(), st.data())
def test_a_changed_character_never_verifies(address: str, data: st.DataObject) -> None:
    token = LINKS.token(address)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AZaz09-_.").filter(lambda c: c != token[position]))
    tampered = token[:position] + replacement + token[position + 1 :]
    assert LINKS.verify(tampered) is None


def test_another_secret_does_not_verify() -> None:
    other = UnsubscribeLinks(LINKS.url, b"another-secret-of-16-bytes")
    assert other.verify(LINKS.token("ana@example.com")) is None


def test_headers_for_a_single_recipient_only() -> None:
    one = LINKS.add_headers(Message(to=("Ana <ana@example.com>",), subject="s", text="x"))
    headers = dict(one.headers)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://blog.example.com/unsubscribe?token=")
    assert LINKS.verify(token_of(one)) == "ana@example.com"
    two = Message(to=("a@example.com", "b@example.com"), subject="s", text="x")
    assert LINKS.add_headers(two) == two
    own = Message(
        to=("a@example.com",),
        subject="s",
        text="x",
        headers=(("List-Unsubscribe", "<mailto:x@example.com>"),),
    )
    assert LINKS.add_headers(own) == own


def test_a_mailto_is_offered_beside_the_url() -> None:
    links = UnsubscribeLinks(LINKS.url, LINKS.secret, mailto="unsubscribe@example.com")
    value = dict(links.add_headers(Message(to=("a@example.com",), subject="s", text="x")).headers)
    assert value["List-Unsubscribe"].endswith(
        "<mailto:unsubscribe@example.com?subject=unsubscribe>"
    )


def test_the_url_must_be_https_and_the_secret_long_enough() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        UnsubscribeLinks("http://example.com/u", b"0123456789abcdef")
    with pytest.raises(ConfigurationError, match="16 bytes"):
        UnsubscribeLinks("https://example.com/u", b"short")


def test_the_endpoint_suppresses_with_a_valid_token_only() -> None:
    store = MemoryStore()
    endpoint = UnsubscribeEndpoint(LINKS, SuppressionList(store))
    token = LINKS.token("ana@example.com")
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert (
        endpoint.handle("POST", f"token={tampered}", {}, b"List-Unsubscribe=One-Click").status
        == 400
    )
    assert list(store.keys("")) == []
    shown = endpoint.handle("GET", f"token={token}", {}, b"")
    assert shown.status == 200
    assert b'<form method="post">' in shown.body
    assert list(store.keys("")) == []  # a link scanner's GET unsubscribes nobody
    answer = endpoint.handle("POST", f"token={token}", {}, b"List-Unsubscribe=One-Click")
    assert answer.status == 200
    entry = SuppressionList(store).get("ana@example.com")
    assert entry is not None
    assert entry.reason is Reason.UNSUBSCRIBE
    form = endpoint.handle("POST", "", {}, f"token={LINKS.token('bob@example.com')}".encode())
    assert form.status == 200
    assert SuppressionList(store).is_suppressed("bob@example.com")
