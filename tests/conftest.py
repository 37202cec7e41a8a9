"""Shared fixtures. Servers (SMTP, moto) live in tests/fixtures/, one module each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailspool import shared

pytest_plugins = [
    "tests.fixtures.smtp_server",
    "tests.fixtures.moto_server",
]


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's MAILSPOOL_* variables or writes under their home."""
    for name in list(__import__("os").environ):
        if name.startswith("MAILSPOOL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    yield
    shared.close_all()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """A spool folder for a file store."""
    return tmp_path / "spool"
