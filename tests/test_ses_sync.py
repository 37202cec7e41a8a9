"""Sync with SES's account-level suppression list.

moto (5.x) does not implement ``ListSuppressedDestinations`` nor
``PutSuppressedDestination``, so this test serves those two SES v2 REST calls from a
small HTTP server of its own on 127.0.0.1, and boto3 talks to it over a real socket
exactly as it would to SES (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from mailspool.cli import cli
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.stores import open_store
from tests.fixtures.moto_server import AWS_TEST_ENVIRONMENT

PATH = "/v2/email/suppression/addresses"


class SesSuppression:
    """SES's list as the server holds it: address -> reason; pages of 2."""

    def __init__(self) -> None:
        self.entries = {
            "old-bounce@example.com": "BOUNCE",
            "old-complaint@example.com": "COMPLAINT",
            "third@example.com": "BOUNCE",
        }

    def page(self, token: str | None) -> dict[str, Any]:
        items = sorted(self.entries.items())
        start = int(token or 0)
        summaries = [
            {"EmailAddress": a, "Reason": r, "LastUpdateTime": 1764399600}
            for a, r in items[start : start + 2]
        ]
        answer: dict[str, Any] = {"SuppressedDestinationSummaries": summaries}
        if start + 2 < len(items):
            answer["NextToken"] = str(start + 2)
        return answer


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesSuppression]:
    state = SesSuppression()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            assert parts.path == PATH
            token = parse_qs(parts.query).get("NextToken", [None])[0]
            self._answer(state.page(token))

        def do_PUT(self) -> None:
            assert self.path == PATH
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.entries[body["EmailAddress"]] = body["Reason"]
            self._answer({})

        def _answer(self, document: dict[str, Any]) -> None:
            data = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, value in AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_sync_pulls_every_page_and_pushes_bounces_and_complaints(
    ses: SesSuppression, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}"
    suppressions = SuppressionList(open_store(url))
    suppressions.add("ours-bounce@example.com", Reason.BOUNCE)
    suppressions.add("ours-unsubscribed@example.com", Reason.UNSUBSCRIBE)
    result = CliRunner().invoke(
        cli, ["suppression", "sync-ses", "--region", "us-east-1", "--store", url]
    )
    assert result.exit_code == 0, result.output
    assert "pulled 3 address(es) from SES, pushed 1" in result.output
    here = {e.address: e.reason for e in SuppressionList(open_store(url)).entries()}
    assert here == {
        "old-bounce@example.com": Reason.BOUNCE,
        "old-complaint@example.com": Reason.COMPLAINT,
        "third@example.com": Reason.BOUNCE,
        "ours-bounce@example.com": Reason.BOUNCE,
        "ours-unsubscribed@example.com": Reason.UNSUBSCRIBE,
    }
    assert ses.entries["ours-bounce@example.com"] == "BOUNCE"
    assert "ours-unsubscribed@example.com" not in ses.entries  # SES has no such reason
