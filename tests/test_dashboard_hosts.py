"""DNS rebinding: `mailspool serve` answers only the names it serves (loopback names and
MAILSPOOL_ALLOWED_HOSTS / --allowed-host), and a form's Origin must be one of them.

Each test talks to a real `mailspool serve` over a socket with the Host header a
browser would send after a rebinding (``evil.example`` resolving to 127.0.0.1)."""

from __future__ import annotations

import http.client
import ipaddress
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.stores.file import FileStore
from mailspool.web.http import Request
from mailspool.web.security import AllowedHosts, host_name
from tests.dashboard_common import dashboard_process, running_dashboard

GONE = "gone@example.com"


def call(
    base: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (Host included), over a real socket."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def form_session(base: str, host: str) -> tuple[str, str]:
    """The CSRF cookie and the form's token, from the suppression page read as ``host``."""
    status, headers, page = call(base, "GET", "/suppression", {"Host": host})
    assert status == 200, page
    cookie = headers["set-cookie"].split(";")[0]
    found = re.search(rb'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found is not None
    return cookie, found.group(1).decode()


def remove(base: str, host: str, origin: str, session: tuple[str, str]) -> int:
    cookie, token = session
    body = f"address={GONE}&csrf_token={token}".encode()
    headers = {
        "Host": host,
        "Origin": origin,
        "Cookie": cookie,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return call(base, "POST", "/suppression/remove", headers, body)[0]


def suppressed(spool: Path) -> bool:
    return SuppressionList(FileStore(spool), cache_ttl=0).is_suppressed(GONE)


@pytest.fixture
def gone(spool: Path) -> Path:
    SuppressionList(FileStore(spool), cache_ttl=0).add(GONE, Reason.BOUNCE)
    return spool


@pytest.mark.slow
def test_a_rebound_name_is_refused_on_every_route_and_loopback_names_work(gone: Path) -> None:
    with running_dashboard(gone) as base:
        port = urlsplit(base).port
        for path in ("/", "/failed", "/suppression", "/metrics", "/static/style.css"):
            for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
                status, _, body = call(base, "GET", path, {"Host": host})
                assert status == 400, (path, host)
                assert b"does not serve" in body
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert call(base, "GET", "/failed", {"Host": host})[0] == 200, host
        session = form_session(base, f"127.0.0.1:{port}")
        evil = f"http://evil.example:{port}"
        # the page of the rebound name posts the form with its own Host and Origin
        assert remove(base, f"evil.example:{port}", evil, session) == 400
        # its Origin with a loopback Host: the Origin is not an allowed name
        assert remove(base, f"127.0.0.1:{port}", evil, session) == 403
        assert suppressed(gone)
        assert remove(base, f"127.0.0.1:{port}", f"http://localhost:{port}", session) == 303
        assert not suppressed(gone)


@pytest.mark.slow
def test_allowed_hosts_from_the_setting_and_the_option(gone: Path) -> None:
    env = {"MAILSPOOL_ALLOWED_HOSTS": "mail.example.com, Ops.Example.org"}
    with running_dashboard(gone, "--allowed-host", "proxy.example.net", env=env) as base:
        # the option wins over the variable, as every flag does
        assert call(base, "GET", "/failed", {"Host": "proxy.example.net"})[0] == 200
        assert call(base, "GET", "/failed", {"Host": "mail.example.com"})[0] == 400
        session = form_session(base, "proxy.example.net")
        # behind a proxy that rewrites Host: the Origin is checked against the names
        assert remove(base, "127.0.0.1", "https://proxy.example.net", session) == 303
    assert not suppressed(gone)
    with running_dashboard(gone, env=env) as base:
        for host in ("mail.example.com", "ops.example.org:443", "MAIL.example.com."):
            assert call(base, "GET", "/failed", {"Host": host})[0] == 200, host
        assert call(base, "GET", "/failed", {"Host": "evil.example"})[0] == 400


def other_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    try:
        found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    for word in found.stdout.split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback:
            return word
    return None


@pytest.mark.slow
@pytest.mark.skipif(other_address() is None, reason="no address but loopback here")
def test_the_address_listened_on_is_a_name_served(spool: Path) -> None:
    address = other_address()
    assert address is not None
    with dashboard_process(spool, "--token", "s3cret", bind=address) as (base, _):
        port = urlsplit(base).port
        bearer = {"Authorization": "Bearer s3cret"}
        assert call(base, "GET", "/metrics", {"Host": f"{address}:{port}", **bearer})[0] == 200
        assert call(base, "GET", "/metrics", {"Host": "evil.example", **bearer})[0] == 400


@pytest.mark.parametrize(
    ("netloc", "name"),
    [
        ("localhost:8025", "localhost"),
        ("LOCALHOST.", "localhost"),
        ("[::1]:8025", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("mail.example.com:443", "mail.example.com"),
        ("", None),
        ("evil.example:abc", None),
        ("evil.example:", None),
        ("[::1", None),
        ("user@localhost", None),
        ("localhost:8025/x", None),
        ("exämple.com", None),
        ("a" * 300, None),
    ],
)
def test_host_names(netloc: str, name: str | None) -> None:
    assert host_name(netloc) == name


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:9999", True),
        ("https://mail.example.com", True),
        ("http://evil.example", False),
        ("http://mail.example.com.evil.example", False),
        ("http://user@mail.example.com", False),
        ("ftp://mail.example.com", False),
        ("http://[::1", False),
        ("null", False),
        ("", False),
    ],
)
def test_origins_are_checked_against_the_allowed_names(origin: str, allowed: bool) -> None:
    hosts = AllowedHosts(["mail.example.com"])
    request = Request("POST", "/", headers={"host": "evil.example", "origin": origin})
    assert hosts.origin_allowed(request) is allowed


def test_a_request_without_host_is_no_browser_s_and_passes() -> None:
    hosts = AllowedHosts()
    assert hosts.why_refused(Request("GET", "/")) is None
    assert hosts.why_refused(Request("GET", "/", headers={"host": "evil.example"})) is not None
    assert not hosts.origin_allowed(Request("POST", "/", headers={"origin": "http://evil.example"}))


def test_any_host_leaves_the_check_to_the_application_around() -> None:
    hosts = AllowedHosts(["*"])
    same = Request("POST", "/", headers={"host": "a.example", "origin": "https://a.example"})
    other = Request("POST", "/", headers={"host": "a.example", "origin": "https://b.example"})
    assert hosts.allows("a.example")
    assert hosts.origin_allowed(same)
    assert not hosts.origin_allowed(other)
