"""Shared fixtures. Servers (SMTP, moto) live in tests/fixtures/, one module each."""

pytest_plugins = [
    "tests.fixtures.smtp_server",
    "tests.fixtures.moto_server",
]
