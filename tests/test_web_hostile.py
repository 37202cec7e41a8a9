"""Hostile requests get a 4xx naming the rule they broke, never a 500 with a traceback:
deep JSON on /events/ses, a certificate URL with a port that is not a number, a CSRF
token that is not ASCII, a retry id of 5,000 characters. Over a real `mailspool serve`,
then with hypothesis on the handler itself."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.config import Settings
from mailspool.feedback.http import SesEndpoint
from mailspool.feedback.sns import SNSVerifier
from mailspool.feedback.suppression import SuppressionList
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.web import Dashboard
from mailspool.web.http import Request
from tests.dashboard_common import running_dashboard

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailspool-ses"
DEEP = 1000


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def signed_looking(**fields: str) -> str:
    """An SNS notification whose signature is well-formed base64 (but signs nothing)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "5a1b2c3d-0000-0000-0000-000000000009",
            "TopicArn": TOPIC,
            "Message": "{}",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "SignatureVersion": "1",
            "Signature": base64.b64encode(b"not a signature").decode(),
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
            **fields,
        }
    )


SNS_CASES = {
    "nested array": (nested(DEEP), "nested deeper than 32 levels"),
    "nested inside the envelope": (
        '{"Type": "Notification", "x": ' + nested(DEEP) + "}",
        "nested deeper than 32 levels",
    ),
    "certificate port abc": (
        signed_looking(SigningCertURL="https://sns.us-east-1.amazonaws.com:abc/cert.pem"),
        "is not an SNS certificate",
    ),
    "certificate host with a [": (
        signed_looking(SigningCertURL="https://[sns.us-east-1.amazonaws.com/cert.pem"),
        "is not an SNS certificate",
    ),
    "not JSON": ("{", "the body is not JSON"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    spool = tmp_path_factory.mktemp("hostile") / "spool"
    env = {"MAILSPOOL_SNS_TOPICS": TOPIC}
    with running_dashboard(spool, env=env) as base:
        yield base, spool


def call(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(f"{base}{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SNS_CASES))
def test_hostile_sns_posts_get_a_4xx_naming_the_rule(served: tuple[str, Path], case: str) -> None:
    base, _ = served
    body, reason = SNS_CASES[case]
    status, text = call(base, "/events/ses", body.encode(), {"Content-Type": "text/plain"})
    assert 400 <= status < 500, text
    assert reason in text


def session(base: str) -> tuple[str, str]:
    """A CSRF cookie and the form token that goes with it."""
    with urllib.request.urlopen(f"{base}/suppression", timeout=60) as page:
        cookie = page.headers["set-cookie"].split(";")[0]
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.read().decode())
    assert found is not None
    return cookie, found.group(1)


def post_form(base: str, path: str, fields: dict[str, str], cookie: str) -> tuple[int, str]:
    body = "&".join(f"{name}={quote(value)}" for name, value in fields.items()).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": base,
        "Cookie": cookie,
    }
    return call(base, path, body, headers)


FORM_CASES = {
    "non-ASCII CSRF token": (
        "/suppression/add",
        {"address": "a@example.com", "csrf_token": "é" * 64},
        403,
        "CSRF token is not valid",
    ),
    "retry id of 5,000 characters": (
        "/failed/retry",
        {"id": "x" * 5000},
        400,
        "not a failed e-mail's id",
    ),
    "retry id with a slash": ("/failed/retry", {"id": "../queue/x"}, 400, "not a failed"),
    "retry id unknown": ("/failed/retry", {"id": "20260101T000000Z-ab.0"}, 404, "no such"),
    "removal of 5,000 characters": (
        "/suppression/remove",
        {"address": "é" * 5000},
        400,
        "",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(FORM_CASES))
def test_hostile_forms_get_a_4xx_naming_the_rule(served: tuple[str, Path], case: str) -> None:
    base, spool = served
    path, fields, expected, reason = FORM_CASES[case]
    cookie, token = session(base)
    status, text = post_form(base, path, {"csrf_token": token, **fields}, cookie)
    assert status == expected, text
    assert reason in text
    assert SuppressionList(FileStore(spool), cache_ttl=0).count() == 0


@pytest.fixture(scope="module")
def dashboard() -> Dashboard:
    store = MemoryStore()
    return Dashboard(store, public={}, settings=Settings.load(store="memory:hostile"))


TEXT = st.text(max_size=300)


@given(
    path=st.sampled_from(["/failed/retry", "/suppression/add", "/suppression/remove", "/login"]),
    value=TEXT,
    token=TEXT,
    host=TEXT,
    origin=TEXT,
)
def test_no_form_gets_a_500(
    dashboard: Dashboard, path: str, value: str, token: str, host: str, origin: str
) -> None:
    browser = "a" * 32
    for csrf in (token, dashboard.guard.csrf_token(browser)):
        body = f"id={quote(value)}&address={quote(value)}&token={quote(value)}"
        request = Request(
            "POST",
            path,
            headers={
                "host": host.encode("utf-8").decode("latin-1"),
                "origin": origin.encode("utf-8").decode("latin-1"),
                "cookie": f"mailspool_csrf={browser}",
                "content-type": "application/x-www-form-urlencoded",
            },
            body=f"{body}&csrf_token={quote(csrf)}".encode(),
        )
        assert dashboard.handle(request).status < 500


@given(query=TEXT, path=st.sampled_from(["/suppression", "/trace", "/quarantine/download"]))
def test_no_page_gets_a_500(dashboard: Dashboard, query: str, path: str) -> None:
    request = Request("GET", path, query=query, headers={"host": "localhost"})
    assert dashboard.handle(request).status < 500


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
SNS_FIELDS = st.fixed_dictionaries(
    {"Type": st.sampled_from(["Notification", "SubscriptionConfirmation", "x"])},
    optional={
        "TopicArn": st.just(TOPIC) | TEXT,
        "SignatureVersion": st.sampled_from(["1", "2", "3"]) | TEXT,
        "Signature": st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()) | TEXT,
        "SigningCertURL": TEXT | TEXT.map(lambda t: f"https://sns.us-east-1.amazonaws.com:{t}/x"),
        "Timestamp": TEXT,
        "Message": JSON.map(json.dumps) | TEXT,
        "MessageId": TEXT,
        "SubscribeURL": TEXT,
    },
)


@pytest.fixture(scope="module")
def ses_endpoint() -> SesEndpoint:
    return SesEndpoint(MemoryStore(), SNSVerifier(frozenset({TOPIC})))


@given(fields=SNS_FIELDS | JSON)
def test_no_sns_post_gets_a_5xx(ses_endpoint: SesEndpoint, fields: object) -> None:
    response = ses_endpoint.handle("POST", {}, json.dumps(fields).encode())
    assert 200 <= response.status < 500, response.body
