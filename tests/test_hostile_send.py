"""Values a caller gives ``send``/``send_mail``/``cancel`` that cannot be a time or a key
are refused with an error naming the option or parameter and the rule, never a
traceback: a time that leaves the years 1 to 9999 once in UTC, seconds that are no
time, an idempotency key that is not a string. Nothing is written. On a file store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import mailspool
from mailspool.cli import cli
from mailspool.errors import InvalidMessage


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{folder}")
    monkeypatch.setenv("MAILSPOOL_SENDER", "Mailspool <mail@example.com>")
    return folder


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--at", "9999-12-31T23:59:59-01:00", "outside the years 1 to 9999 in UTC"),
        ("--at", "0001-01-01T00:00:00+01:00", "outside the years 1 to 9999 in UTC"),
        ("--expires", "9999-12-31T23:59:59-01:00", "outside the years 1 to 9999 in UTC"),
        ("--at", "1e300", "is no time"),
        ("--expires", "nan", "is no time"),
        ("--at", "-inf", "is no time"),
    ],
)
def test_send_refuses_a_time_that_does_not_exist_as_a_usage_error(
    spool: Path, option: str, value: str, said: str
) -> None:
    args = ["send", "--to", "a@example.org", "--subject", "s", "--body", "x", option, value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert said in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert written(spool) == []


@pytest.mark.parametrize("key", [5, b"k", 1.5, ["k"], "", "k" * 257])
def test_send_mail_refuses_a_key_that_is_not_a_short_string(spool: Path, key: object) -> None:
    with pytest.raises(InvalidMessage, match=r"'key'.*string of 1 to 256 characters"):
        mailspool.send_mail("a@example.org", "s", "x", key=key)  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage, match=r"'key'.*string of 1 to 256 characters"):
        mailspool.send_mail("a@example.org", "s", "x", key=key, priority=True)  # type: ignore[arg-type]
    assert written(spool) == []


def test_cancel_refuses_a_key_that_is_not_a_string(spool: Path) -> None:
    with pytest.raises(InvalidMessage, match=r"'key'.*not int"):
        mailspool.cancel(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["send_at", "expires_at"])
def test_send_mail_refuses_a_datetime_outside_utc(spool: Path, field: str) -> None:
    late = datetime.fromisoformat("9999-12-31T23:59:59-01:00")
    with pytest.raises(InvalidMessage, match=rf"'{field}'.*outside the years 1 to 9999"):
        mailspool.send_mail("a@example.org", "s", "x", **{field: late})  # type: ignore[arg-type]
    assert written(spool) == []
