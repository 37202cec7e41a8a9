"""Every setting passes its row's rule whatever its source: keyword arguments, the
environment, a framework mapping and the CLI's flags; an unknown name is refused (or,
in the environment, logged once) with the closest known name."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mailspool import config
from mailspool.cli import cli, command
from mailspool.config import SETTINGS, SETTINGS_BY_NAME, SettingError, Settings
from mailspool.errors import ConfigurationError

#: the number settings, by kind of rule
WHOLE = [row.name for row in SETTINGS if row.rule.startswith("a whole number")]
REAL = [row.name for row in SETTINGS if row.rule.startswith("a finite number")]
POSITIVE = [row.name for row in SETTINGS if "> 0" in row.rule or ">= 1" in row.rule]
SHARES = [row.name for row in SETTINGS if row.rule.endswith(">= 0 and <= 0.9")]
NOT_FINITE = [math.nan, math.inf, -math.inf]


def test_the_issue_s_keyword_arguments_are_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"^max_rate must be a finite number > 0.*got 0"):
        Settings.load(max_rate=0.0)
    with pytest.raises(ConfigurationError, match=r"^concurrency must be a whole number >= 1"):
        Settings.load(concurrency=0)
    with pytest.raises(ConfigurationError, match=r"^max_attempts must be a whole number >= 1"):
        Settings.load(max_attempts=-3)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAILSPOOL_MAX_RATE", "nan"),  # ran unthrottled
        ("MAILSPOOL_RETRY_BASE", "nan"),  # a drain never ended
        ("MAILSPOOL_IDEMPOTENCY_WINDOW", "nan"),  # a key was accepted twice
        ("MAILSPOOL_SOFT_BOUNCE_DAYS", "inf"),  # OverflowError
        ("MAILSPOOL_MAX_RATE", "0"),  # ZeroDivisionError in the rate limiter
        ("MAILSPOOL_MAX_RATE", "-1"),
        ("MAILSPOOL_CONCURRENCY", "0"),
        ("MAILSPOOL_MAX_ATTEMPTS", "-3"),
        ("MAILSPOOL_MAX_ATTEMPTS", "1000000"),  # 2 ** attempts is no float
        ("MAILSPOOL_WRITE_TIMEOUT", "-inf"),
    ],
)
def test_the_environment_is_checked_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingError, match=rf"^{variable} must be .*got '{value}'") as caught:
        Settings.load(environ={variable: value})
    assert caught.value.setting == variable


@given(name=st.sampled_from(REAL), value=st.sampled_from(NOT_FINITE))
def test_no_number_setting_takes_nan_or_an_infinity(name: str, value: float) -> None:
    row = SETTINGS_BY_NAME[name]
    with pytest.raises(SettingError, match=f"^{name} must be a finite number"):
        Settings.load(**{name: value})
    with pytest.raises(SettingError, match=f"^{row.env} must be a finite number"):
        Settings.load(environ={row.env: str(value)})
    with pytest.raises(SettingError, match=f"^{name} must be a finite number"):
        Settings.load({name: value})


@given(name=st.sampled_from(POSITIVE), value=st.integers(max_value=0))
def test_positive_settings_refuse_zero_and_negatives(name: str, value: int) -> None:
    with pytest.raises(SettingError, match=f"^{name} must be"):
        Settings.load(**{name: value})
    with pytest.raises(SettingError, match=f"^{SETTINGS_BY_NAME[name].env} must be"):
        Settings.load(environ={SETTINGS_BY_NAME[name].env: str(value)})


@given(name=st.sampled_from(WHOLE), value=st.integers(min_value=1, max_value=100))
def test_a_whole_number_reads_the_same_from_text_and_from_an_int(name: str, value: int) -> None:
    row = SETTINGS_BY_NAME[name]
    from_text = getattr(Settings.load(environ={row.env: f" {value} "}), name)
    assert from_text == getattr(Settings.load(**{name: value}), name) == value


@given(
    name=st.sampled_from([name for name in REAL if name not in SHARES]),
    value=st.floats(min_value=0.001, max_value=3650, allow_nan=False, allow_infinity=False),
)
def test_a_finite_number_in_range_is_taken_from_every_source(name: str, value: float) -> None:
    row = SETTINGS_BY_NAME[name]
    assert getattr(Settings.load(**{name: value}), name) == value
    assert getattr(Settings.load(environ={row.env: repr(value)}), name) == value
    assert getattr(Settings.load({name: value}), name) == value


@given(name=st.sampled_from(SHARES), value=st.floats(min_value=0, max_value=0.9))
def test_a_share_from_0_to_0_9_is_taken(name: str, value: float) -> None:
    row = SETTINGS_BY_NAME[name]
    assert getattr(Settings.load(environ={row.env: repr(value)}), name) == value


@given(name=st.sampled_from(SHARES), value=st.sampled_from([-0.1, 0.95, 1.0, 2.0]))
def test_a_share_that_leaves_the_worker_nothing_is_refused(name: str, value: float) -> None:
    with pytest.raises(SettingError, match=rf"^{SETTINGS_BY_NAME[name].env} must be .*<= 0.9"):
        Settings.load(environ={SETTINGS_BY_NAME[name].env: str(value)})


@pytest.mark.parametrize("value", [True, 4.5, "4.5", [4], "four"])
def test_a_count_is_a_whole_number_not_a_bool_or_a_fraction(value: Any) -> None:
    with pytest.raises(SettingError, match="concurrency must be a whole number"):
        Settings.load(concurrency=value)


def test_text_settings_refuse_other_types_and_hide_secrets() -> None:
    with pytest.raises(SettingError, match="store must be non-empty text, got 42"):
        Settings.load(store=42)
    with pytest.raises(SettingError, match="got a value of type int") as caught:
        Settings.load(serve_token=123456)
    assert "123456" not in str(caught.value)
    assert Settings.load(sns_topics=["arn:a", " arn:b "]).sns_topics == {"arn:a", "arn:b"}


def test_unlimited_rate_is_still_accepted() -> None:
    assert Settings.load(environ={"MAILSPOOL_MAX_RATE": "unlimited"}).max_rate is None
    assert Settings.load(max_rate=50).max_rate == 50.0


def test_a_framework_mapping_is_named_as_its_user_writes_it() -> None:
    spell = "MAILSPOOL[{!r}]".format
    with pytest.raises(SettingError, match=r"^MAILSPOOL\['MAX_RATE'\] must be"):
        Settings.load({"max_rate": 0}, framework_key=lambda name: spell(name.upper()))
    with pytest.raises(SettingError, match=r"did you mean MAILSPOOL\['TRANSPORT'\]\?"):
        Settings.load({"transprot": "smtp://x"}, framework_key=lambda name: spell(name.upper()))


def test_an_unknown_keyword_argument_is_refused_with_the_closest_name() -> None:
    with pytest.raises(SettingError, match="unknown mailspool setting stoer; did you mean store"):
        Settings.load(stoer="file:///tmp/x")


def test_the_error_lists_every_mistake_at_once() -> None:
    with pytest.raises(SettingError) as caught:
        Settings.load({"transprot": "x", "concurrency": 0, "max_rate": math.nan})
    assert caught.value.setting == "transprot"
    assert [p.setting for p in caught.value.problems] == ["transprot", "max_rate", "concurrency"]


def test_an_unknown_variable_is_warned_once_with_the_closest_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config._warned.discard("MAILSPOOL_STOER")  # once per process: this test's own once
    env = {"MAILSPOOL_STOER": "file:///tmp/x", "MAILSPOOL_TRANSPORT": "console:"}
    with caplog.at_level(logging.WARNING, logger="mailspool"):
        Settings.load(environ=env)
        Settings.load(environ=env)
    warned = [r.getMessage() for r in caplog.records if "MAILSPOOL_STOER" in r.getMessage()]
    assert warned == [
        "unknown environment variable MAILSPOOL_STOER is ignored; did you mean MAILSPOOL_STORE?"
    ]


# -- the CLI: the same rule, named by its flag --------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "setting"),
    [
        ("--max-rate", "0", "max_rate"),
        ("--max-rate", "-1", "max_rate"),
        ("--max-rate", "nan", "max_rate"),
        ("--concurrency", "0", "concurrency"),
        ("--max-attempts", "-3", "max_attempts"),
        ("--retry-base", "inf", "retry_base"),
    ],
)
def test_the_worker_s_flags_are_checked_by_the_setting_s_rule(
    spool: Path, flag: str, value: str, setting: str
) -> None:
    args = ["worker", "--drain", "--processes", "1", "--store", f"file://{spool}", flag, value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}': {setting} must be" in result.output
    assert "Traceback" not in result.output
    assert not spool.exists()  # refused before anything was opened


def test_the_worker_refuses_a_bad_variable_in_one_line(spool: Path) -> None:
    env = {"MAILSPOOL_STORE": f"file://{spool}", "MAILSPOOL_CONCURRENCY": "0"}
    result = CliRunner().invoke(cli, ["worker", "--drain", "--processes", "1"], env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: MAILSPOOL_CONCURRENCY must be a whole number >= 1, got '0'"
    )


def test_send_refuses_a_bad_emails_per_file(spool: Path) -> None:
    args = ["send", "--to", "a@example.com", "--subject", "s", "--body", "b"]
    result = CliRunner().invoke(cli, [*args, "--emails-per-file", "-1"])
    assert result.exit_code == 2
    assert "emails_per_file must be a whole number >= 0, got '-1'" in result.output


# -- loaded once at the entry point, passed down ------------------------------------------------


def test_nothing_below_an_entry_point_reads_the_environment(
    spool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings given at the entry point are the only ones used: with a variable that
    any further ``Settings.load()`` would refuse, every call below still works."""
    import mailspool
    from mailspool.delivery.worker import Worker
    from mailspool.ops.status import collect_status
    from mailspool.stores.file import FileStore
    from mailspool.transports.memory import MemoryTransport
    from mailspool.triggers.local import drain

    settings = Settings.load(
        store=f"file://{spool}",
        priority_transport="memory:entry-point",
        fallback_store=f"file://{tmp_path / 'fallback'}",
    )
    monkeypatch.setenv("MAILSPOOL_CONCURRENCY", "0")  # a load from now on raises
    with mailspool.request(settings=settings):
        assert mailspool.send_mail("now@example.com", "Now", "<p>x</p>", priority=True)
        assert mailspool.send_mail("later@example.com", "Later", "<p>x</p>", send_at=600, key="k")
        assert mailspool.send_mail("queued@example.com", "Queued", "<p>x</p>", key="q")
        assert mailspool.send_mail("deferred@example.com", "Deferred", "<p>x</p>")
        assert mailspool.cancel("k")
    mailspool.send_message(
        mailspool.Message.build(to=["b@example.com"], subject="s", text="t"),
        priority=False,
        settings=settings,
    )
    store = FileStore(spool)
    transport = MemoryTransport()
    worker = Worker(store, transport)
    try:
        report = drain(worker, fallback_base=settings.fallback_store)
    finally:
        worker.close()
    assert report.sent == 3
    assert collect_status(store).pending == 0


def test_the_attachment_root_may_be_a_path(tmp_path: Path) -> None:
    assert Settings.load(attachment_root=tmp_path).attachment_root == str(tmp_path)
    with pytest.raises(SettingError, match="attachment_root must be a folder's path"):
        Settings.load(attachment_root="")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_the_poll_interval_is_a_finite_number_of_seconds(spool: Path, value: str) -> None:
    args = ["worker", "--store", f"file://{spool}", "--poll-interval", value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "poll_interval must be a finite number of seconds > 0" in result.output


def test_max_rate_unlimited_on_the_command_line_wins_over_the_variable() -> None:
    worker = command("worker")
    [option] = [p for p in worker.params if p.name == "max_rate"]
    given = option.type.convert("unlimited", option, None)
    assert Settings.load(max_rate=given, environ={"MAILSPOOL_MAX_RATE": "5"}).max_rate is None
    assert option.type.convert("2.5", option, None) == 2.5
