"""The feedback loop through moto in server mode: SES events published to an SNS topic,
delivered by SNS into the handler's SQS queue (beside the bucket's notifications), then
handed to ``mailspool.aws.handler`` as Lambda's SQS event source does."""

from __future__ import annotations

import json
from typing import Any

import boto3
import orjson
import pytest
from click.testing import CliRunner

from mailspool.cli import cli
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from tests import ses_events
from tests.test_aws_handler import STORE_URL, Stack, hand_off, stack  # noqa: F401 - fixture

GONE, ANGRY, FULL, FINE = (f"user{i}@example.org" for i in range(4))


def sent_ids(the_stack: Stack, keys: list[str]) -> dict[str, str]:
    """Recipient -> the provider (SES) message id the ledger recorded."""
    ids = {}
    for key in keys:
        batch_id = layout.batch_id_from_key(key)
        for index, entry in read_entries(the_stack.store, batch_id).items():
            ids[f"user{index}@example.org"] = str(entry.message_id)
    return ids


def tags_of(key: str, index: int) -> dict[str, list[str]]:
    """The message tags SES echoes in its events (the SES transport sets them)."""
    return {"mailspool-batch": [layout.batch_id_from_key(key)], "mailspool-index": [str(index)]}


def ses_topic(the_stack: Stack) -> tuple[Any, str]:
    """An SNS topic (SES's event destination) feeding the handler's queue."""
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="mailspool-ses")["TopicArn"]
    queue_arn = the_stack.sqs.get_queue_attributes(
        QueueUrl=the_stack.queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return sns, topic


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--store", STORE_URL], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_bounces_and_complaints_through_sns_and_sqs_suppress_the_next_batch(
    stack: Stack,  # noqa: F811 - the fixture imported above
) -> None:
    first = hand_off(4)
    assert stack.run_queue() == []
    ids = sent_ids(stack, first)
    assert set(ids) == {GONE, ANGRY, FULL, FINE}

    sns, topic = ses_topic(stack)
    for event in (
        ses_events.bounce(ids[GONE], GONE),
        ses_events.complaint(ids[ANGRY], ANGRY, format="notificationType"),
        ses_events.bounce(ids[FULL], FULL, permanent=False),
        ses_events.delivery(ids[FINE], FINE, tags=tags_of(first[0], 3)),
    ):
        sns.publish(TopicArn=topic, Message=json.dumps(event))
    assert stack.run_queue() == []

    suppressions = SuppressionList(stack.store)
    assert suppressions.get(GONE) is not None
    assert suppressions.get(GONE).reason is Reason.BOUNCE  # type: ignore[union-attr]
    assert suppressions.get(ANGRY).reason is Reason.COMPLAINT  # type: ignore[union-attr]
    assert not suppressions.is_suppressed(FULL)

    before = len(stack.moto.ses_messages())
    hand_off(4)
    assert stack.run_queue() == []
    new = stack.moto.ses_messages()[before:]
    assert sorted(a for m in new for a in _destinations(m)) == [FULL, FINE]

    failed = run("failed", "list")
    for address in (GONE, ANGRY):
        [line] = [row for row in failed.splitlines() if address in row]
        assert "suppressed (" in line

    by_id = orjson.loads(run("trace", ids[FINE], "--json"))
    assert [[s["state"] for s in t["states"]] for t in by_id] == [["queued", "sent", "delivered"]]
    own_id = f"{layout.batch_id_from_key(first[0])}.3@example.com"  # the worker's Message-ID
    assert orjson.loads(run("trace", own_id, "--json")) == by_id
    traced = orjson.loads(run("trace", FINE, "--json"))
    states = [[s["state"] for s in t["states"]] for t in traced]
    assert states[0] == ["queued", "sent", "delivered"]
    assert traced[0]["provider_id"] == ids[FINE]
    assert states[1] == ["queued", "sent"]  # the second e-mail: no event yet


def _destinations(record: dict[str, Any]) -> list[str]:
    destinations = record["destinations"]
    if isinstance(destinations, dict):
        return [a for field in destinations.values() for a in field]
    return list(destinations)
