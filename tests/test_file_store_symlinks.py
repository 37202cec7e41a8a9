"""The file store never follows a symbolic link: a writer who can reach the store's
folder cannot turn a lease, a ledger or a batch write into a write somewhere else."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailspool.errors import KeyNotFound, StoreError
from mailspool.spool import layout
from mailspool.spool.ledger import Ledger
from mailspool.spool.records import LedgerEntry
from mailspool.stores.file import FileStore

VICTIM = b"precious: must not change\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileStore]:
    store = FileStore(tmp_path / "spool")
    store.put("queue/x.json", b"{}")  # the folders exist, as in a live spool
    yield store
    store.close()


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_bytes(VICTIM)
    return path


def test_a_ledger_that_is_a_link_is_refused_and_its_target_kept(
    store: FileStore, victim: Path
) -> None:
    ledger = store.root / layout.ledger_key("b")
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.symlink_to(victim)
    with pytest.raises(StoreError, match="symbolic link"):
        Ledger(store, "b").record(LedgerEntry.sent(0, "<id@x>", 1, None))
    assert victim.read_bytes() == VICTIM


def test_a_lease_file_that_is_a_link_is_refused_and_its_target_kept(
    store: FileStore, victim: Path
) -> None:
    leases = store.root / ".leases"
    leases.mkdir(exist_ok=True)
    (leases / "b").symlink_to(victim)
    with pytest.raises(StoreError, match="symbolic link"):
        store.claim("b", "me", 60)
    assert victim.read_bytes() == VICTIM
    assert store.claims() == []


def test_a_folder_that_is_a_link_is_refused(store: FileStore, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store.root / "failed").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StoreError, match="not a folder"):
        store.put("failed/b.0.json", b"{}")
    with pytest.raises(StoreError, match="not a folder"):
        store.append("failed/log", b"[]")
    assert list(elsewhere.iterdir()) == []


def test_a_key_that_is_a_link_is_not_read_and_put_replaces_the_link(
    store: FileStore, victim: Path
) -> None:
    link = store.root / "done" / "b.json"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(victim)
    with pytest.raises(StoreError, match="symbolic link"):
        store.get("done/b.json")
    store.put("done/b.json", b"new")
    assert store.get("done/b.json") == b"new"
    assert not link.is_symlink()
    assert victim.read_bytes() == VICTIM


def test_a_dangling_link_reads_as_a_refusal_not_as_a_missing_key(
    store: FileStore, tmp_path: Path
) -> None:
    (store.root / "queue" / "gone.json").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StoreError) as info:
        store.get("queue/gone.json")
    assert not isinstance(info.value, KeyNotFound)
    assert os.path.lexists(store.root / "queue" / "gone.json")
