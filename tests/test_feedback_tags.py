"""The SES transport names each e-mail in message tags, which SES echoes in its events."""

from __future__ import annotations

from mailspool.message import Message
from mailspool.transports.ses import SESTransport
from tests.fixtures.moto_server import MotoServer

MESSAGE = Message(to=("a@example.com",), subject="s", text="x", sender="b@example.com")


def test_the_request_carries_the_batch_and_the_index(aws: MotoServer) -> None:
    transport = SESTransport(region="us-east-1")
    own = "<20261129T070000000000Z-1a2b3c4d-p40.7@example.com>"
    assert transport.request(MESSAGE, message_id=own)["EmailTags"] == [
        {"Name": "mailspool-batch", "Value": "20261129T070000000000Z-1a2b3c4d-p40"},
        {"Name": "mailspool-index", "Value": "7"},
    ]
    assert "EmailTags" not in transport.request(MESSAGE, message_id="<other@example.com>")
    assert "EmailTags" not in transport.request(MESSAGE)
