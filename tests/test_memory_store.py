"""The memory store: the store contract, plus claims that expire by a (fake) clock."""

from __future__ import annotations

import pytest

from mailspool.errors import ConfigurationError, LeaseLost
from mailspool.stores.memory import MemoryStore
from tests.store_contract import StoreContract


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


class TestMemoryStore(StoreContract):
    """Every promise of ``Store``, kept in memory."""


def test_a_claim_expires_and_is_taken_over(store: MemoryStore, clock: FakeClock) -> None:
    first = store.claim("queue/a.json", "worker-a", 10)
    assert first is not None
    assert first.expires == clock.now + 10
    clock.advance(9)
    assert store.claim("queue/a.json", "worker-b", 10) is None
    clock.advance(2)
    second = store.claim("queue/a.json", "worker-b", 10)
    assert second is not None
    assert second.owner == "worker-b"


def test_renew_after_a_takeover_raises_lease_lost(store: MemoryStore, clock: FakeClock) -> None:
    first = store.claim("queue/a.json", "worker-a", 10)
    assert first is not None
    clock.advance(11)
    assert store.claim("queue/a.json", "worker-b", 10) is not None
    with pytest.raises(LeaseLost):
        store.renew(first, 10)


def test_release_after_a_takeover_leaves_the_new_holder(
    store: MemoryStore, clock: FakeClock
) -> None:
    first = store.claim("queue/a.json", "worker-a", 10)
    assert first is not None
    clock.advance(11)
    second = store.claim("queue/a.json", "worker-b", 10)
    assert second is not None
    store.release(first)
    assert store.claim("queue/a.json", "worker-c", 10) is None
    assert [c.owner for c in store.claims()] == ["worker-b"]


def test_renew_pushes_the_expiry_back(store: MemoryStore, clock: FakeClock) -> None:
    lease = store.claim("queue/a.json", "worker-a", 10)
    assert lease is not None
    clock.advance(8)
    renewed = store.renew(lease, 10)
    assert renewed.expires == clock.now + 10
    clock.advance(5)
    assert store.claim("queue/a.json", "worker-b", 10) is None
    assert store.renew(renewed, 10).expires == clock.now + 10


def test_an_expired_claim_nobody_took_can_still_be_renewed(
    store: MemoryStore, clock: FakeClock
) -> None:
    lease = store.claim("queue/a.json", "worker-a", 10)
    assert lease is not None
    clock.advance(60)
    assert store.renew(lease, 10).expires == clock.now + 10


def test_claims_lists_live_claims_without_tokens(store: MemoryStore, clock: FakeClock) -> None:
    assert store.claim("queue/b.json", "worker-b", 30) is not None
    assert store.claim("queue/a.json", "worker-a", 10) is not None
    assert [(c.name, c.owner, c.token) for c in store.claims()] == [
        ("queue/a.json", "worker-a", None),
        ("queue/b.json", "worker-b", None),
    ]
    clock.advance(20)
    assert [c.name for c in store.claims()] == ["queue/b.json"]


def test_modified_comes_from_the_clock(store: MemoryStore, clock: FakeClock) -> None:
    store.put("queue/a.json", b"x")
    assert [info.modified for info in store.list("queue/")] == [clock.now]


def test_shared_stores_are_one_per_name() -> None:
    first = MemoryStore.shared("test-memory-shared")
    assert MemoryStore.shared("test-memory-shared") is first
    assert MemoryStore.shared("test-memory-other") is not first
    assert first.url == "memory:test-memory-shared"


def test_a_shared_store_clock_is_set_only_once(clock: FakeClock) -> None:
    store = MemoryStore.shared("test-memory-clock", clock=clock)
    store.put("a", b"x")
    assert [info.modified for info in store.list("a")] == [clock.now]
    with pytest.raises(ConfigurationError, match="test-memory-clock"):
        MemoryStore.shared("test-memory-clock", clock=clock)
