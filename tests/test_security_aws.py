"""The same hostile path attachments on S3, through ``mailspool.aws.handler``: moto in
server mode, the bucket's notifications really in SQS, SES (moto) recording each send."""

from __future__ import annotations

from email import message_from_string, policy
from pathlib import Path

import pytest

from mailspool.aws import handler
from mailspool.spool import layout
from tests import test_aws_handler, test_security_attachments
from tests.test_aws_handler import BUCKET, PREFIX, Context, Stack
from tests.test_security_attachments import (
    INSIDE,
    SECRET,
    failed_records,
    hostile_paths,
    v0_document,
)

stack = test_aws_handler.stack  # the fixtures, shared with those modules
files = test_security_attachments.files


def put_v0(stack: Stack, attachments: list[list[str]]) -> None:
    """The article's file, written straight into the bucket as the PHP producer does."""
    key = f"{PREFIX}/{layout.queue_key('1764400000-42-0')}"
    stack.s3.put_object(Bucket=BUCKET, Key=key, Body=v0_document(attachments, "example.org"))


def test_hostile_paths_fail_on_s3_and_an_inside_file_is_sent_byte_for_byte(
    stack: Stack, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_ATTACHMENT_ROOT", str(files["root"]))
    hostile = hostile_paths(files)
    put_v0(stack, [[path] for path in hostile.values()] + [[str(files["inside"])]])

    assert stack.run_queue() == []

    [sent] = stack.moto.ses_messages()
    assert f"a{len(hostile)}@example.org" in sent["destinations"]
    assert not {f"a{i}@example.org" for i in range(len(hostile))} & set(sent["destinations"])
    parsed = message_from_string(sent["raw_data"], policy=policy.default)
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_payload(decode=True) == INSIDE
    failed = {item.index: item.reason for item in failed_records(stack.store)}
    assert sorted(failed) == list(range(len(hostile)))
    for index, path in enumerate(hostile.values()):
        assert f"attachment {path!r} refused" in failed[index]
        assert "MAILSPOOL_ATTACHMENT_ROOT" in failed[index]
    stored = b"".join(stack.store.get(key) for key in stack.store.keys(""))
    assert SECRET.encode() not in stored
    assert SECRET not in sent["raw_data"]


def test_without_a_root_on_s3_no_path_is_read(stack: Stack, files: dict[str, Path]) -> None:
    put_v0(stack, [[str(files["inside"])], ["/proc/self/environ"]])

    assert stack.run_queue() == []

    assert stack.moto.ses_messages() == []
    reasons = [item.reason for item in failed_records(stack.store)]
    assert len(reasons) == 2
    assert all("MAILSPOOL_ATTACHMENT_ROOT, which is not set" in r for r in reasons)


@pytest.mark.parametrize(
    "key",
    ["queue/..%2F..%2Fsecret.json", "queue/a%2Fb.json", "queue/bell%07.json", "queue/nul%00.json"],
)
def test_an_event_naming_a_hostile_key_is_refused_and_nothing_is_touched(
    stack: Stack, key: str
) -> None:
    stack.s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/queue/a/b.json", Body=b"{}")
    before = sorted(stack.store.keys(""))
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": f"{PREFIX}/{key}"}},
    }
    answer = handler({"Records": [record]}, Context())
    assert (answer["batches"], answer["sent"], answer["retry"]) == (1, 0, 0)
    assert sorted(stack.store.keys("")) == before
    assert stack.moto.ses_messages() == []
