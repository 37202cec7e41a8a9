"""Shared fixtures. Servers (SMTP, moto) live in tests/fixtures/, one module each."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mailspool.stores import open_stores as shared_stores
from mailspool.transports import open_transports as shared_transports

# CI explores the same examples on every run, so a red run is reproducible and never a
# coin toss on a shared, noisy machine; developers get fresh examples each run.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = [
    "tests.fixtures.smtp_server",
    "tests.fixtures.moto_server",
    "tests.fixtures.moto_ses_quota",
    "tests.fixtures.dovecot",
    "tests.fixtures.postfix",
]


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's MAILSPOOL_* variables or writes under their home."""
    for name in list(os.environ):
        if name.startswith("MAILSPOOL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    yield
    shared_stores.close_all()
    shared_transports.close_all()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """A spool folder for a file store."""
    return tmp_path / "spool"
