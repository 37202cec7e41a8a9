"""open_transport: the scheme registry, URL parsing and its errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mailspool.transports as transports
from mailspool.errors import ConfigurationError, MissingDependency
from mailspool.transports import Receipt, Transport, open_transport
from mailspool.transports.console import ConsoleTransport
from mailspool.transports.file import FileTransport
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.smtp import SMTPTransport


def test_all_names_the_public_surface() -> None:
    assert sorted(transports.__all__) == ["Receipt", "Transport", "open_transport"]
    assert transports.Receipt is Receipt
    assert transports.Transport is Transport


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("smtp://mail.example.com", SMTPTransport),
        ("SMTP://mail.example.com", SMTPTransport),
        ("smtps://mail.example.com", SMTPTransport),
        ("file:///tmp/mailspool-outbox", FileTransport),
        ("console:", ConsoleTransport),
        ("memory:", MemoryTransport),
    ],
)
def test_each_scheme_opens_its_backend(url: str, kind: type[Transport]) -> None:
    assert type(open_transport(url)) is kind


@pytest.mark.parametrize(
    "url", ["smpt://user:hunter2@mail.example.com", "/var/mail/outbox", "", "http://x"]
)
def test_an_unknown_scheme_names_the_url_and_the_known_ones(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_transport(url)
    message = str(raised.value)
    assert "unknown transport URL" in message
    assert all(scheme in message for scheme in ("smtp://", "smtps://", "ses://", "file://"))
    assert all(scheme in message for scheme in ("console:", "memory:"))
    assert "hunter2" not in message
    if "smpt" in url:
        assert "smpt://user:***@mail.example.com" in message


def test_unknown_options_name_the_accepted_ones() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_transport("smtp://mail.example.com", pasword="x")
    assert "pasword" in str(raised.value)
    assert "password" in str(raised.value).replace("pasword", "")


def test_ses_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mailspool.transports.ses", raising=False)
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes "import boto3" fail
    with pytest.raises(MissingDependency) as raised:
        open_transport("ses://eu-west-1")
    assert raised.value.extra == "aws"
    assert "mailspool[aws]" in str(raised.value)


def _fake_backend(folder: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Point the ses scheme at a throwaway module whose import runs ``body``."""
    (folder / "fake_ses_backend.py").write_text(body)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "fake_ses_backend", raising=False)
    monkeypatch.setitem(transports._BACKENDS, "ses", "fake_ses_backend:SESTransport")


def test_an_import_error_for_boto3_becomes_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_backend(tmp_path, monkeypatch, "import botocore.no_such_module\n")
    with pytest.raises(MissingDependency, match=r"the SES transport .*mailspool\[aws\]"):
        open_transport("ses://eu-west-1")


def test_other_import_errors_are_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_backend(tmp_path, monkeypatch, "import no_such_module_typo\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_module_typo"):
        open_transport("ses://eu-west-1")


# -- SMTP URLs -------------------------------------------------------------------------


def smtp(url: str, **options: object) -> SMTPTransport:
    transport = open_transport(url, **options)
    assert isinstance(transport, SMTPTransport)
    return transport


def test_smtp_defaults() -> None:
    plain, implicit = smtp("smtp://mail.example.com"), smtp("smtps://mail.example.com")
    assert (plain.port, plain.implicit_tls, plain.starttls) == (25, False, "auto")
    assert (implicit.port, implicit.implicit_tls) == (465, True)
    assert (plain.timeout, plain.max_connections, plain.username) == (30.0, 10, None)
    assert plain.url == "smtp://mail.example.com:25"
    assert implicit.url == "smtps://mail.example.com:465"


def test_smtp_parameters_are_parsed() -> None:
    transport = smtp(
        "smtp://us%40er:p%40ss@[::1]:2525?starttls=always&timeout=2.5&verify=false"
        "&max_connections=4&local_hostname=app.example.com"
    )
    assert (transport.host, transport.port, transport.username) == ("::1", 2525, "us@er")
    assert (transport.starttls, transport.timeout, transport.max_connections) == ("always", 2.5, 4)
    assert transport.local_hostname == "app.example.com"
    assert transport.url == "smtp://us%40er@[::1]:2525"


def test_options_win_over_the_url() -> None:
    transport = smtp("smtp://mail.example.com?timeout=5", timeout=1.0, max_connections=2)
    assert (transport.timeout, transport.max_connections) == (1.0, 2)


def test_keyword_construction_needs_no_url() -> None:
    transport = SMTPTransport("mail.example.com", 587, username="u", password="p")
    assert transport.url == "smtp://u@mail.example.com:587"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("smtp://mail.example.com?starttls=maybe", "starttls must be one of"),
        ("smtps://mail.example.com?starttls=always", "does not apply to smtps"),
        ("smtp://mail.example.com?timeout=soon", "timeout must be a number"),
        ("smtp://mail.example.com?timeout=0", "timeout must be positive"),
        ("smtp://mail.example.com?max_connections=0", "at least 1"),
        ("smtp://mail.example.com?verify=perhaps", "verify must be true or false"),
        ("smtp://mail.example.com?timeout=1&timeout=2", "given twice"),
        ("smtp://mail.example.com:port", "malformed transport URL"),
        ("smtp://:secret@mail.example.com", "without a user name"),
        ("smtp://", "no host"),
        ("smtp://mail.example.com/path", "no path"),
        ("smtp://mail.example.com?cafile=/nonexistent/ca.pem", "cannot load cafile"),
    ],
)
def test_bad_smtp_urls_are_configuration_errors(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint) as raised:
        open_transport(url)
    assert "secret" not in str(raised.value)


def test_an_unparseable_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_transport("smtp://user:p@ss@[mail.example.com")
    assert "p@ss" not in str(raised.value)
    assert "ss@" not in str(raised.value)


def test_a_bad_smtp_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_transport("smtp://user:hunter2@mail.example.com?bogus=1")
    assert "hunter2" not in str(raised.value)
    assert "user:***@mail.example.com" in str(raised.value)


def test_file_urls_take_the_path_literally(tmp_path: Path) -> None:
    transport = open_transport(f"file://{tmp_path}/with%20percent")
    assert isinstance(transport, FileTransport)
    assert transport.directory == tmp_path / "with%20percent"
