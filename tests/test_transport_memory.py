"""The memory transport: an outbox in a list, shared by name, and a stub for faults."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mailspool.errors import ConfigurationError, PermanentError, TransientError
from mailspool.message import Message
from mailspool.transports import Transport, open_transport
from mailspool.transports.memory import MemoryTransport
from tests.transport_contract import Delivered, TransportContract, simple_message


class TestMemoryTransport(TransportContract):
    @pytest.fixture
    def transport(self) -> Iterator[Transport]:
        with open_transport("memory:") as transport:
            yield transport

    @pytest.fixture
    def delivered(self, transport: MemoryTransport) -> Delivered:
        return lambda: [
            (sent.envelope_sender, sent.envelope_recipients, sent.parsed())
            for sent in transport.outbox
        ]


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_a_name_gives_one_shared_transport(name: str) -> None:
    producer = open_transport(f"memory:{name}")
    consumer = open_transport(f"memory:{name}")
    receipt = producer.send(simple_message())
    assert consumer is producer
    assert isinstance(consumer, MemoryTransport)
    assert [sent.message_id for sent in consumer.outbox] == [receipt.message_id]


def test_without_a_name_each_transport_is_private() -> None:
    first, second = open_transport("memory:"), open_transport("memory:")
    first.send(simple_message())
    assert isinstance(second, MemoryTransport)
    assert second.outbox == []


def test_the_outbox_keeps_the_message_and_its_envelope() -> None:
    transport = MemoryTransport()
    message = simple_message(bcc="hidden@example.com")
    receipt = transport.send(message, message_id="<kept@mailspool.test>")
    [sent] = transport.outbox
    assert sent.message is message
    assert sent.message_id == receipt.message_id == "<kept@mailspool.test>"
    assert sent.envelope_sender == "sender@example.com"
    assert sent.envelope_recipients == ("rcpt@example.com", "hidden@example.com")
    assert b"hidden@example.com" not in sent.data


def test_fail_next_raises_then_recovers() -> None:
    transport = MemoryTransport()
    transport.fail_next(TransientError("451 4.3.0 try later"), times=2)
    for _ in range(2):
        with pytest.raises(TransientError, match="451"):
            transport.send(simple_message())
    assert transport.outbox == []
    transport.send(simple_message())
    assert len(transport.outbox) == 1


def test_planned_faults_come_in_order() -> None:
    transport = MemoryTransport()
    transport.fail_next(TransientError("first"))
    transport.fail_next(PermanentError("second"))
    with pytest.raises(TransientError, match="first"):
        transport.send(simple_message())
    with pytest.raises(PermanentError, match="second"):
        transport.send(simple_message())


def test_a_hook_sees_each_message_and_may_fail_some() -> None:
    seen: list[str] = []

    def refuse_vip(message: Message) -> None:
        seen.append(message.subject)
        if "vip@example.com" in message.to:
            raise PermanentError("550 5.1.1 vip@example.com: no such user")

    transport = MemoryTransport()
    transport.on_send(refuse_vip)
    transport.send(simple_message("ok"))
    with pytest.raises(PermanentError):
        transport.send(simple_message("refused", to="vip@example.com"))
    transport.on_send(None)
    transport.send(simple_message("after", to="vip@example.com"))
    assert seen == ["ok", "refused"]
    assert [sent.message.subject for sent in transport.outbox] == ["ok", "after"]


def test_clear_forgets_messages_and_faults(name: str) -> None:
    transport = MemoryTransport.named(name)
    transport.send(simple_message())
    transport.fail_next(TransientError("never raised"))
    transport.clear()
    transport.send(simple_message())
    assert len(transport.outbox) == 1


def test_the_outbox_is_a_snapshot() -> None:
    transport = MemoryTransport()
    transport.send(simple_message())
    transport.outbox.clear()
    assert len(transport.outbox) == 1


@pytest.mark.parametrize("url", ["memory:a/b", "memory:x?y=1"])
def test_bad_memory_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="not a memory transport URL"):
        open_transport(url)


def test_the_memory_transport_takes_no_options() -> None:
    with pytest.raises(ConfigurationError, match="takes no options"):
        open_transport("memory:", colour="red")
