"""The domain of every address is checked where addresses are checked (``send_mail``,
``Message``, the CLI's ``send`` and ``suppression add``): a domain that is not a domain
name is refused with the field and the rule; international ones stay accepted."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mailspool.cli import cli
from mailspool.errors import InvalidMessage
from mailspool.message import Message, address_spec, split_addresses
from mailspool.stores.file import FileStore

RULE = "a domain is labels of letters, digits and hyphens"

_label = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
_domains = st.lists(_label, min_size=1, max_size=4).map(".".join)
# What RFC 5321 keeps out of a domain name; "\r" and "\n" here are the two characters
# a shell passes for a quoted 'x@y.com\r\n', not line breaks
_foreign = st.sampled_from([*"\\_!#$%&'*+/=?^`{|}~", "\\r\\nBcc"])
_fields = st.sampled_from(["to", "cc", "bcc", "reply_to"])


@given(_domains, _foreign, st.integers(min_value=0), _fields)
def test_a_domain_with_a_foreign_character_is_refused_naming_field_and_rule(
    domain: str, foreign: str, at: int, field: str
) -> None:
    cut = at % (len(domain) + 1)
    address = f"ana@{domain[:cut]}{foreign}{domain[cut:]}"
    fields: dict[str, Any] = {"to": ["bo@example.com"], field: [address]}
    with pytest.raises(InvalidMessage) as refused:
        Message.build(**fields, subject="s", text="t")
    assert refused.value.field == field
    assert f"field {field!r}" in str(refused.value)
    assert RULE in str(refused.value) or "written as one word" in str(refused.value)


@given(_domains, _fields)
def test_a_domain_name_is_accepted_in_every_field(domain: str, field: str) -> None:
    address = f"ana@{domain}"
    assert split_addresses([f"Ana <{address}>"], field) == (f"Ana <{address}>",)
    assert address_spec(address, field) == address


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("x@y.com\\r\\nBcc: z", RULE),
        ("x@exa\\mple.com", RULE),
        ("x@exa mple.com", "written as one word"),
        ("Ana <x@exa mple.com>", "written as one word"),
        ("x@exa(note)mple.com", "written as one word"),
        ("x@example..com", RULE),
        ("x@example.com.", RULE),
        ("x@ex_ample.com", RULE),
        (f"x@{'a' * 64}.com", RULE),
    ],
)
def test_refused_domains_name_the_field_and_the_rule(address: str, rule: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        address_spec(address, "cc")
    assert refused.value.field == "cc"
    assert rule in str(refused.value)


@pytest.mark.parametrize(
    "address",
    [
        "ana@example.com",
        "ana@localhost",
        "ana@bücher.de",
        "ana@xn--bcher-kva.de",
        "josé@例え.jp",
        "Jürgen Groß <j@straße.de>",
        "ana@[192.0.2.1]",
        "ana@[IPv6:2001:db8::1]",
        "ana@mail-1.example.com",
    ],
)
def test_international_and_literal_domains_stay_accepted(address: str) -> None:
    assert split_addresses(address) == (address,)


def test_the_cli_queues_nothing_for_such_a_domain(tmp_path: Path) -> None:
    store = f"file://{tmp_path}"
    runner = CliRunner()
    sent = runner.invoke(
        cli,
        ["send", "--store", store, "--to", "x@y.com\\r\\nBcc: z", "--subject", "s", "--body", "t"],
    )
    assert sent.exit_code != 0
    assert RULE in sent.output
    suppressed = runner.invoke(cli, ["suppression", "add", "x@y.com\\r\\nBcc: z", "--store", store])
    assert suppressed.exit_code == 1
    assert RULE in suppressed.output
    assert list(FileStore(tmp_path).keys("")) == []
