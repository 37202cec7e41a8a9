"""The example blog starts with one command and does what its README says."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Browser:
    """A client that keeps cookies and sends the page's CSRF token, as a browser does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.token = ""

    def open_home(self) -> None:
        with self.opener.open(f"{self.base}/", timeout=30) as response:
            page = response.read().decode()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert found, "the page's forms carry a CSRF token"
        self.token = found.group(1)

    def post(self, path: str, token: bool = True, **fields: str) -> tuple[int, str]:
        if token:
            fields["csrfmiddlewaretoken"] = self.token
        request = urllib.request.Request(
            f"{self.base}{path}", data=urllib.parse.urlencode(fields).encode(), method="POST"
        )
        request.add_header("Referer", f"{self.base}/")
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


def test_the_blog_notifies_followers_and_sends_the_reset_at_once(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
    env |= {"BLOG_ADDRESS": address, "BLOG_DATA": str(tmp_path), "BLOG_FOLLOWERS": "150"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "blog" / "run.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    outbox = tmp_path / "outbox"
    browser = Browser(f"http://{address}")
    try:
        wait_for(lambda: answers(f"http://{address}/"))
        browser.open_home()
        assert browser.post("/forgot", token=False, email="a@example.com")[0] == 403
        assert browser.post("/forgot", email="not an address")[0] == 400
        assert browser.post("/publish", title="two\nlines")[0] == 400
        assert browser.post("/publish", title="x" * 201)[0] == 400
        assert not outbox.exists() or not list(outbox.glob("*.eml"))  # nothing went out
        status, answer = browser.post("/forgot", email="author@example.com")
        assert (status, "reset link sent" in answer) == (200, True)
        assert len(list(outbox.glob("*.eml"))) == 1  # priority: there before the response
        status, answer = browser.post("/publish", title="<b>Hello</b>")
        assert (status, "150 followers notified" in answer) == (200, True)
        wait_for(lambda: len(list(outbox.glob("*.eml"))) == 151)  # the worker beside it
        notes = [BytesParser(policy=policy.default).parse(f.open("rb")) for f in outbox.iterdir()]
        bodies = [n.get_body(("html",)) for n in notes]
        html = [b.get_content() for b in bodies if isinstance(b, EmailMessage)]
        assert len(html) == 150
        assert all("<b>&lt;b&gt;Hello&lt;/b&gt;</b>" in h for h in html)  # escaped
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
