"""The promises every store keeps (``mailspool.stores.base``), as one reusable test class.

A backend's test module subclasses ``StoreContract`` and provides a ``store`` fixture
(in the module or in the subclass) that yields an empty store. Nothing here assumes a
local folder: the same tests run on the file store, the memory store and S3. A slow
backend may lower ``log_threads`` / ``log_records`` / ``racers`` in its subclass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from mailspool.errors import KeyNotFound, ObjectTooLarge
from mailspool.stores import Store

T = TypeVar("T")


def race(count: int, action: Callable[[int], T]) -> list[T]:
    """Run ``action(i)`` in ``count`` threads released together; their results in order."""
    start = threading.Barrier(count)

    def run(index: int) -> T:
        start.wait()
        return action(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def keys(store: Store, prefix: str) -> list[str]:
    return [info.key for info in store.list(prefix)]


class StoreContract:
    """Every backend passes these. Subclass it with a ``store`` fixture."""

    log_threads = 8
    log_records = 200
    racers = 16

    # -- objects -------------------------------------------------------------------

    def test_put_then_get_returns_the_bytes(self, store: Store) -> None:
        store.put("queue/a.json", b'{"emails": []}')
        assert store.get("queue/a.json") == b'{"emails": []}'

    def test_put_replaces_an_existing_object(self, store: Store) -> None:
        store.put("queue/a.json", b"first")
        store.put("queue/a.json", b"second, longer")
        assert store.get("queue/a.json") == b"second, longer"

    def test_get_of_a_missing_key_raises_key_not_found(self, store: Store) -> None:
        with pytest.raises(KeyNotFound):
            store.get("queue/missing.json")

    def test_exists(self, store: Store) -> None:
        store.put("queue/a.json", b"x")
        assert store.exists("queue/a.json")
        assert not store.exists("queue/a")
        assert not store.exists("queue/b.json")

    def test_put_new_creates_once_and_keeps_the_first_content(self, store: Store) -> None:
        assert store.put_new("blobs/abc", b"one") is True
        assert store.put_new("blobs/abc", b"two") is False
        assert store.get("blobs/abc") == b"one"

    def test_put_new_race_has_exactly_one_winner(self, store: Store) -> None:
        results = race(self.racers, lambda i: store.put_new("blobs/race", f"{i}".encode()))
        assert results.count(True) == 1
        assert store.get("blobs/race") == f"{results.index(True)}".encode()

    def test_delete_is_idempotent(self, store: Store) -> None:
        store.delete("queue/never.json")
        store.put("queue/a.json", b"x")
        store.delete("queue/a.json")
        store.delete("queue/a.json")
        with pytest.raises(KeyNotFound):
            store.get("queue/a.json")
        assert keys(store, "queue/") == []

    def test_move_to_another_folder(self, store: Store) -> None:
        store.put("queue/a.json", b"batch")
        assert store.move("queue/a.json", "done/sub/a.json") is True
        assert store.get("done/sub/a.json") == b"batch"
        with pytest.raises(KeyNotFound):
            store.get("queue/a.json")

    def test_move_of_a_missing_source_is_false(self, store: Store) -> None:
        store.put("queue/a.json", b"batch")
        assert store.move("queue/a.json", "done/a.json") is True
        assert store.move("queue/a.json", "failed/a.json") is False
        assert keys(store, "failed/") == []

    def test_move_onto_an_existing_key_replaces_it(self, store: Store) -> None:
        """A batch finished a second time after a crash: its copy in done/ exists already,
        and the one in queue/ must still go, without an error."""
        store.put("queue/a.json", b"batch")
        store.put("done/a.json", b"older copy")
        assert store.move("queue/a.json", "done/a.json") is True
        assert store.get("done/a.json") == b"batch"
        assert keys(store, "queue/") == []

    def test_of_concurrent_moves_to_one_key_exactly_one_is_true(self, store: Store) -> None:
        store.put("queue/a.json", b"batch")
        store.put("done/a.json", b"older copy")
        results = race(8, lambda _: store.move("queue/a.json", "done/a.json"))
        assert results.count(True) == 1
        assert store.get("done/a.json") == b"batch"
        assert keys(store, "queue/") == []

    def test_get_at_most_reads_an_object_within_the_limit(self, store: Store) -> None:
        store.put("queue/a.json", b"0123456789")
        assert store.get_at_most("queue/a.json", 10) == b"0123456789"

    def test_get_at_most_refuses_a_larger_object_naming_the_setting(self, store: Store) -> None:
        store.put("queue/a.json", b"0123456789")
        with pytest.raises(ObjectTooLarge, match="MAILSPOOL_MAX_BATCH_BYTES=9") as caught:
            store.get_at_most("queue/a.json", 9, "MAILSPOOL_MAX_BATCH_BYTES")
        assert (caught.value.size, caught.value.limit) == (10, 9)

    def test_get_at_most_of_a_missing_key_raises_key_not_found(self, store: Store) -> None:
        with pytest.raises(KeyNotFound):
            store.get_at_most("queue/missing.json", 10)

    def test_read_chunks_returns_the_bytes_in_bounded_chunks(self, store: Store) -> None:
        data = bytes(range(256)) * 41  # 10,496 bytes: not a multiple of the chunk
        store.put("quarantine/big.json", data)
        chunks = list(store.read_chunks("quarantine/big.json", chunk_size=1000))
        assert b"".join(chunks) == data
        assert all(0 < len(chunk) <= 1000 for chunk in chunks)
        assert len(chunks) >= 11
        store.put("quarantine/empty.json", b"")
        assert b"".join(store.read_chunks("quarantine/empty.json")) == b""

    def test_read_chunks_of_a_missing_key_raises_key_not_found(self, store: Store) -> None:
        chunks = store.read_chunks("quarantine/missing.json")
        with pytest.raises(KeyNotFound):
            next(chunks)

    def test_read_chunks_closed_early_releases_the_object(self, store: Store) -> None:
        store.put("quarantine/a.json", b"x" * 5000)
        for _ in range(50):  # a leak of a descriptor or a connection would show here
            chunks = store.read_chunks("quarantine/a.json", chunk_size=100)
            assert next(chunks) == b"x" * 100
            chunks.close()
        store.delete("quarantine/a.json")
        assert keys(store, "quarantine/") == []

    # -- listing ---------------------------------------------------------------------

    def test_list_matches_a_prefix_ending_inside_a_name(self, store: Store) -> None:
        for key in ("queue/20261127-b.json", "queue/2025.json", "queue/20261127-a.json"):
            store.put(key, b"x")
        assert keys(store, "queue/2026") == ["queue/20261127-a.json", "queue/20261127-b.json"]

    def test_list_orders_by_key_across_folders(self, store: Store) -> None:
        # "-" < "." < "/" < "x": a folder's keys sort by its name followed by "/"
        for key in ("queuex.json", "queue/sub/x.json", "queue.json", "queue-a.json", "done/y"):
            store.put(key, b"x")
        store.put("queue/a.json", b"x")
        assert keys(store, "queue") == [
            "queue-a.json",
            "queue.json",
            "queue/a.json",
            "queue/sub/x.json",
            "queuex.json",
        ]
        assert keys(store, "queue/") == ["queue/a.json", "queue/sub/x.json"]

    def test_list_reports_size_and_modification_time(self, store: Store) -> None:
        store.put("queue/a.json", b"12345")
        (info,) = store.list("queue/")
        assert (info.key, info.size) == ("queue/a.json", 5)
        assert info.modified > 0

    def test_list_with_an_empty_prefix_lists_everything(self, store: Store) -> None:
        assert keys(store, "") == []
        store.put("b/c.json", b"x")
        store.put("a.json", b"x")
        assert keys(store, "") == ["a.json", "b/c.json"]

    def test_list_of_an_unknown_prefix_is_empty(self, store: Store) -> None:
        store.put("queue/a.json", b"x")
        assert keys(store, "nothing/") == []
        assert keys(store, "queue/b") == []

    def test_unicode_and_spaces_in_keys(self, store: Store) -> None:
        store.put("queue/ä b.json", b"x")
        assert store.get("queue/ä b.json") == b"x"
        assert keys(store, "queue/ä") == ["queue/ä b.json"]

    # -- record logs -----------------------------------------------------------------

    def test_read_log_returns_records_in_order(self, store: Store) -> None:
        for record in (b'{"i": 0}', b'{"i": 1}', b'{"i": 2}'):
            store.append("ledger/b1", record)
        assert store.read_log("ledger/b1") == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}']

    def test_read_log_of_a_missing_log_is_empty(self, store: Store) -> None:
        assert store.read_log("ledger/none") == []

    def test_delete_log(self, store: Store) -> None:
        store.delete_log("ledger/none")
        store.append("ledger/b1", b"one")
        store.delete_log("ledger/b1")
        assert store.read_log("ledger/b1") == []
        store.append("ledger/b1", b"two")
        assert store.read_log("ledger/b1") == [b"two"]

    def test_a_record_with_a_newline_is_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="line break"):
            store.append("ledger/b1", b"one\ntwo")
        assert store.read_log("ledger/b1") == []

    def test_concurrent_appends_keep_every_record_once_and_in_order(self, store: Store) -> None:
        threads, records = self.log_threads, self.log_records

        def append_all(thread: int) -> None:
            for number in range(records):
                store.append("ledger/busy", f"{thread}:{number}".encode())

        race(threads, append_all)
        log = [tuple(map(int, line.split(b":"))) for line in store.read_log("ledger/busy")]
        assert sorted(log) == [(t, n) for t in range(threads) for n in range(records)]
        for thread in range(threads):
            assert [n for t, n in log if t == thread] == list(range(records))

    # -- claims ----------------------------------------------------------------------

    def test_a_claim_is_exclusive(self, store: Store) -> None:
        lease = store.claim("queue/a.json", "worker-a", 30)
        assert lease is not None
        assert (lease.name, lease.owner) == ("queue/a.json", "worker-a")
        assert store.claim("queue/a.json", "worker-b", 30) is None
        assert store.claim("queue/b.json", "worker-b", 30) is not None

    def test_release_frees_the_claim(self, store: Store) -> None:
        lease = store.claim("queue/a.json", "worker-a", 30)
        assert lease is not None
        store.release(lease)
        store.release(lease)
        again = store.claim("queue/a.json", "worker-b", 30)
        assert again is not None
        assert again.owner == "worker-b"

    def test_claim_race_has_exactly_one_winner(self, store: Store) -> None:
        leases = race(self.racers, lambda i: store.claim("queue/race.json", f"worker-{i}", 30))
        winners = [lease for lease in leases if lease is not None]
        assert len(winners) == 1
        assert winners[0].owner == f"worker-{leases.index(winners[0])}"

    def test_renew_keeps_the_claim(self, store: Store) -> None:
        lease = store.claim("queue/a.json", "worker-a", 30)
        assert lease is not None
        renewed = store.renew(lease, 60)
        assert (renewed.name, renewed.owner) == (lease.name, lease.owner)
        assert renewed.expires >= lease.expires
        assert store.claim("queue/a.json", "worker-b", 30) is None
        store.release(renewed)
        assert store.claim("queue/a.json", "worker-b", 30) is not None
