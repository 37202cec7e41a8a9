"""The dashboard over HTTP: /metrics, the token, the CSRF and origin checks, headers."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import mailspool
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker
from mailspool.ops.quarantine import list_quarantined
from mailspool.ops.status import collect_status
from mailspool.spool import layout
from mailspool.spool.records import LedgerEntry, QuarantineError, encode_entries
from mailspool.stores.file import FileStore
from mailspool.transports import open_transport
from mailspool.triggers.local import drain
from mailspool.web import Dashboard
from mailspool.web.http import Request
from mailspool.web.metrics import start_worker_metrics
from mailspool.web.security import CSRF_COOKIE, is_loopback
from tests.dashboard_common import (
    cli,
    free_port,
    mixed_store,
    queue,
    running_dashboard,
    status_json,
    wait_until_up,
)
from tests.fixtures.smtp_server import SMTPSink


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def gauges(text: str) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("state")
            values[f"{sample.name}:{label}" if label else sample.name] = sample.value
    return values


@pytest.mark.slow
def test_metrics_parse_and_equal_status_json(spool: Path, smtp_server: SMTPSink) -> None:
    mixed_store(spool, smtp_server)
    expected = status_json(spool)
    with running_dashboard(spool) as base:
        code, text = fetch(f"{base}/metrics")
    assert code == 200
    values = gauges(text)
    for state in ("pending", "sent", "failed", "quarantined"):
        assert values[f"mailspool_emails:{state}"] == expected[state]
    assert values["mailspool_emails:scheduled"] == expected.get("scheduled", 0)
    assert values["mailspool_oldest_pending_seconds"] > 0
    assert values["mailspool_batches:done"] == expected["batches_done"]


def test_a_non_loopback_bind_without_token_refuses_to_start(spool: Path) -> None:
    result = cli(spool, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "MAILSPOOL_SERVE_TOKEN" in result.stderr


@pytest.mark.slow
def test_with_a_token_every_page_but_the_public_ones_needs_it(spool: Path) -> None:
    queue(spool, "ann@example.com")
    with running_dashboard(spool, "--host", "0.0.0.0", "--token", "s3cret") as base:
        assert fetch(f"{base}/metrics")[0] == 401
        assert fetch(f"{base}/metrics", token="wrong")[0] == 401
        code, text = fetch(f"{base}/metrics", token="s3cret")
        assert code == 200
        assert gauges(text)["mailspool_emails:pending"] == 1
        code, page = fetch(f"{base}/failed")  # redirected to the sign-in form
        assert code == 200
        assert 'name="token"' in page


def request(method: str, path: str, **fields: str) -> Request:
    body = "&".join(f"{name}={value}" for name, value in fields.items()).encode()
    return Request(
        method,
        path,
        headers={
            "host": "127.0.0.1:8025",
            "origin": "http://127.0.0.1:8025",
            "content-type": "application/x-www-form-urlencoded",
            "cookie": f"{CSRF_COOKIE}={'a' * 32}",
        },
        body=body,
    )


def test_retry_from_another_origin_is_refused(spool: Path, smtp_server: SMTPSink) -> None:
    mixed_store(spool, smtp_server)
    store = FileStore(spool)
    dashboard = Dashboard(store, public={})
    failed = next(key for key in store.keys(layout.FAILED))
    token = dashboard.guard.csrf_token("a" * 32)
    form = {"id": layout.batch_id_from_key(failed), "csrf_token": token}
    foreign = request("POST", "/failed/retry", **form)
    foreign.headers["origin"] = "http://evil.example"
    assert dashboard.handle(foreign).status == 403
    assert collect_status(store).failed == 1
    response = dashboard.handle(request("POST", "/failed/retry", **form))
    assert response.status == 303
    assert collect_status(store).failed == 0
    store.close()


def test_pages_carry_a_strict_policy_and_escape_what_the_store_holds(spool: Path) -> None:
    store = FileStore(spool)
    dashboard = Dashboard(store, public={})
    store.put(layout.quarantine_key("queue/x.json"), b"not json")
    store.put(
        layout.quarantine_error_key("queue/x.json"),
        b'{"error": "<script>alert(1)</script>"}',
    )
    for path in ("/", "/batches", "/failed", "/quarantine"):
        response = dashboard.handle(Request("GET", path))
        assert response.status == 200, path
        headers = dict(response.headers)
        assert "default-src 'none'" in headers["content-security-policy"]
        assert b"<script" not in response.body, path
    page = dashboard.handle(Request("GET", "/quarantine")).body
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page
    store.close()


def test_the_batches_page_shows_the_progress_status_counts(spool: Path) -> None:
    store = FileStore(spool)
    with mailspool.request(settings=Settings.load(store=store.url)):
        mailspool.send_mail(["ann@example.com"], "Hi", "<p>Hi</p>")
        mailspool.send_mail(["bob@example.com"], "Hi", "<p>Hi</p>")
    [key] = list(store.keys(layout.QUEUE))
    batch_id = layout.batch_id_from_key(key)
    store.append(layout.ledger_key(batch_id), encode_entries([LedgerEntry.sent(0, "<x@y>", 1)]))
    page = Dashboard(store, public={}).handle(Request("GET", "/batches")).body.decode()
    status = collect_status(store)
    assert (status.pending, status.sent, status.batches_pending) == (1, 1, 1)
    assert f"<code>{batch_id}</code></td><td>2</td><td>1</td><td>0</td>" in page
    assert "50 %" in page
    store.close()


def test_the_quarantine_page_lists_what_quarantine_list_lists(spool: Path) -> None:
    store = FileStore(spool)
    store.put(layout.quarantine_key("queue/a.json"), b"{broken")
    error = QuarantineError("queue/a.json", "queue/a.json: not JSON", "not JSON", None, None, "")
    store.put(layout.quarantine_error_key("queue/a.json"), error.encode())
    store.put(layout.foreign_quarantine_key("queue/sub/b.txt"), b"stray")
    files = [item.as_dict() for item in list_quarantined(store)]  # quarantine list --json
    page = Dashboard(store, public={}).handle(Request("GET", "/quarantine")).body.decode()
    assert [(f["id"], f["error"]) for f in files] == [
        ("a", "queue/a.json: not JSON"),
        ("sub%2Fb.txt", None),
    ]
    assert "a.json</a>" in page
    assert "queue/a.json: not JSON" in page
    assert "sub%2Fb.txt</a>" in page
    assert "no error record" in page
    store.close()


def test_quarantine_download_serves_only_listed_files(spool: Path) -> None:
    store = FileStore(spool)
    dashboard = Dashboard(store, public={})
    store.put(layout.quarantine_key("queue/bad.json"), b"{broken")
    queue(spool, "ann@example.com")
    good = dashboard.handle(Request("GET", "/quarantine/download", query="name=bad.json"))
    assert good.status == 200
    assert good.body == b"{broken"
    assert ("content-disposition", 'attachment; filename="bad.json"') in good.headers
    for name in ("../queue", "..%2Fqueue%2F" + next(store.keys(layout.QUEUE))[6:], "nothing"):
        answer = dashboard.handle(Request("GET", "/quarantine/download", query=f"name={name}"))
        assert answer.status == 404
    store.close()


def test_a_running_worker_exports_sends_by_outcome(smtp_server: SMTPSink, spool: Path) -> None:
    store = FileStore(spool)
    port = free_port()
    settings = Settings.load(store=store.url, transport=smtp_server.url)
    with mailspool.request(store=store, settings=settings):
        mailspool.send_mail("ann@example.com", "Hi", "<p>Hi.</p>")
        mailspool.send_mail("gone@example.com", "Hi", "<p>Hi.</p>")
    smtp_server.refuse_recipient("gone@example.com")
    transport = open_transport(smtp_server.url)
    worker = build_worker(settings, store, transport, steps=[start_worker_metrics(store, port)])
    try:
        drain(worker)
    finally:
        worker.close()
        transport.close()
    code, text = fetch(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    samples = {
        (sample.name, sample.labels.get("outcome")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("mailspool_sends_total", "sent")] == 1
    assert samples[("mailspool_sends_total", "permanent")] == 1
    assert samples[("mailspool_send_seconds_count", None)] == 2
    store.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.8.9.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.slow
def test_demo_serve_leaves_the_dashboard_running_on_the_demo_store(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailspool",
            "demo",
            "--followers",
            "3",
            "--serve",
            "--port",
            str(port),
        ],
        env={**env, "XDG_DATA_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        code, text = fetch(f"{base}/metrics")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert code == 200
    assert gauges(text)["mailspool_emails:sent"] == 4  # 3 followers and the editor
    assert "store:     0 pending, 4 sent" in output


def posted(dashboard: Dashboard, path: str, **fields: str) -> int:
    """POST a form as the dashboard's own page does (CSRF token, same origin)."""
    token = dashboard.guard.csrf_token("a" * 32)
    return dashboard.handle(request("POST", path, csrf_token=token, **fields)).status


def test_suppression_list_add_remove_and_lookup(spool: Path) -> None:
    store = FileStore(spool)
    dashboard = Dashboard(store, public={})
    assert (
        dashboard.handle(request("POST", "/suppression/add", address="x@example.com")).status == 403
    )
    assert posted(dashboard, "/suppression/add", address="Gone@Example.com", reason="bounce") == 303
    page = dashboard.handle(Request("GET", "/suppression", query="address=gone@example.com"))
    assert b"<strong>gone@example.com</strong> is suppressed (bounce" in page.body
    assert b'<td class="address">gone@example.com</td>' in page.body
    assert posted(dashboard, "/suppression/add", address="not an address") == 400
    assert posted(dashboard, "/suppression/add", address="y@example.com", reason="whim") == 400
    assert posted(dashboard, "/suppression/remove", address="gone@example.com") == 303
    page = dashboard.handle(Request("GET", "/suppression"))
    assert b"0 address(es) receive no mail" in page.body
    store.close()


def test_trace_shows_what_happened_to_an_address(spool: Path, smtp_server: SMTPSink) -> None:
    mixed_store(spool, smtp_server)
    store = FileStore(spool)
    dashboard = Dashboard(store, public={})
    page = dashboard.handle(Request("GET", "/trace", query="q=ann%40example.com")).body.decode()
    assert "Hello ann@example.com" in page
    assert "<td>sent</td>" in page
    gone = dashboard.handle(Request("GET", "/trace", query="q=gone%40example.com")).body.decode()
    assert "<td>failed</td>" in gone
    assert "550 5.1.1" in gone
    store.close()


def test_overview_and_metrics_count_suppressed_addresses_as_status_json(spool: Path) -> None:
    store = FileStore(spool)
    dashboard = Dashboard(store, public={})
    for address in ("a@example.com", "b@example.com"):
        assert posted(dashboard, "/suppression/add", address=address) == 303
    expected = status_json(spool)
    assert expected["suppressed"] == 2
    page = dashboard.handle(Request("GET", "/")).body.decode()
    assert '<dd id="count-suppressed">2</dd>' in page
    text = dashboard.handle(Request("GET", "/metrics")).body.decode()
    assert gauges(text)["mailspool_suppressed_addresses"] == 2
    assert gauges(text)["mailspool_bounce_rate"] == expected["bounce_rate"]
    store.close()
