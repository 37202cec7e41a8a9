"""The file store: the store contract, plus what only a local folder has: modes, temp
files, key checks, flock claims across processes, torn log lines."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailspool.errors import ConfigurationError, LeaseLost
from mailspool.stores.file import FileStore
from tests.store_contract import StoreContract, keys, race


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def store(root: Path) -> Iterator[FileStore]:
    store = FileStore(root)
    yield store
    store.close()


class TestFileStore(StoreContract):
    """Every promise of ``Store``, kept by a local folder."""


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# -- the folder on disk ------------------------------------------------------------------


@pytest.fixture(params=[0o000, 0o277], ids=["permissive-umask", "narrow-umask"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_are_0600_and_folders_0700_whatever_the_umask(root: Path, umask: int) -> None:
    store = FileStore(root)
    store.put("queue/sub/a.json", b"x")
    store.put_new("blobs/b", b"x")
    store.append("ledger/c", b"x")
    lease = store.claim("queue/sub/a.json", "me", 30)
    assert lease is not None
    for folder in (root, root / "queue", root / "queue/sub", root / "blobs", root / ".leases"):
        assert mode(folder) == 0o700, folder
    leases = list((root / ".leases").iterdir())
    for path in (root / "queue/sub/a.json", root / "blobs/b", root / "ledger/c", *leases):
        assert mode(path) == 0o600, path
    store.close()


def test_writes_leave_no_temp_files(store: FileStore, root: Path) -> None:
    store.put("queue/a.json", b"1")
    store.put("queue/a.json", b"2")
    store.put_new("queue/b.json", b"1")
    store.put_new("queue/b.json", b"2")
    assert store.move("queue/b.json", "done/b.json")
    assert files_under(root) == ["done/b.json", "queue/a.json"]


def test_url_is_the_absolute_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileStore("spool")
    assert store.root == tmp_path / "spool"
    assert store.url == f"file://{tmp_path}/spool"
    assert FileStore.from_url(store.url).root == store.root


def test_opening_a_store_creates_nothing(root: Path) -> None:
    store = FileStore(root)
    assert list(store.list("")) == []
    assert store.read_log("ledger/x") == []
    assert not root.exists()


# -- keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside",
        "queue/../../outside",
        "queue/./a.json",
        "queue\\a.json",
        "queue/a\0.json",
        ".leases/queue",
        "queue/.tmp-1234",
        "queue//a.json",
        "queue/",
    ],
)
def test_bad_keys_are_refused_by_name(store: FileStore, key: str) -> None:
    for operation in (store.get, store.delete, store.exists, store.read_log):
        with pytest.raises(ConfigurationError, match="invalid store key") as caught:
            operation(key)
        assert repr(key) in str(caught.value)
    with pytest.raises(ValueError, match="invalid store key"):
        store.put(key, b"x")
    with pytest.raises(ValueError, match="invalid store claim name"):
        store.claim(key, "me", 30)


@pytest.mark.parametrize("prefix", ["/etc", "../", "queue/../", ".leases/", "a\\b"])
def test_bad_prefixes_are_refused(store: FileStore, prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid store prefix"):
        store.list(prefix)


# -- listing -------------------------------------------------------------------------


def test_list_skips_temp_files_and_leases(store: FileStore, root: Path) -> None:
    store.put("queue/a.json", b"x")
    (root / "queue/.tmp-left-by-a-crash").write_bytes(b"partial")
    lease = store.claim("queue/a.json", "me", 30)
    assert lease is not None
    assert keys(store, "") == ["queue/a.json"]
    assert keys(store, "queue/") == ["queue/a.json"]


def test_list_reads_only_the_folder_of_the_prefix(
    store: FileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("queue/2026/a.json", b"x")
    store.put("done/b.json", b"x")
    scanned: list[Path] = []
    real_scandir = os.scandir

    def spy(path: Path) -> object:
        scanned.append(Path(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    assert keys(store, "queue/20") == ["queue/2026/a.json"]
    assert scanned == [root / "queue", root / "queue/2026"]


def test_list_tolerates_folders_removed_while_listing(store: FileStore, root: Path) -> None:
    for key in ("queue/a/1.json", "queue/b/1.json", "queue/c.json"):
        store.put(key, b"x")
    listing = store.list("queue/")
    assert next(listing).key == "queue/a/1.json"
    shutil.rmtree(root / "queue/b")
    assert [info.key for info in listing] == ["queue/c.json"]


# -- move ----------------------------------------------------------------------------


def test_a_move_cut_short_by_a_crash_completes(store: FileStore, root: Path) -> None:
    """A crash between link and unlink (how this store used to move) left one file under
    both names; rename() alone would leave both, the move removes the source's."""
    store.put("queue/a.json", b"batch")
    (root / "done").mkdir(mode=0o700)
    os.link(root / "queue/a.json", root / "done/a.json")
    assert store.move("queue/a.json", "done/a.json") is True
    assert keys(store, "") == ["done/a.json"]
    assert store.get("done/a.json") == b"batch"


def test_a_folder_is_not_an_object_to_move(store: FileStore) -> None:
    store.put("queue/sub/a.json", b"batch")
    assert store.move("queue/sub", "done/sub") is False
    assert keys(store, "") == ["queue/sub/a.json"]


def test_concurrent_moves_leave_one_copy(store: FileStore) -> None:
    store.put("queue/a.json", b"batch")
    results = race(8, lambda i: store.move("queue/a.json", f"done/{i}.json"))
    assert results.count(True) == 1
    assert keys(store, "") == [f"done/{results.index(True)}.json"]


# -- logs ----------------------------------------------------------------------------


def test_a_torn_last_line_is_ignored_and_not_glued_to_the_next(
    store: FileStore, root: Path
) -> None:
    store.append("ledger/b1", b"one")
    store.append("ledger/b1", b"two")
    with open(root / "ledger/b1", "ab") as log:
        log.write(b'{"torn')
    assert store.read_log("ledger/b1") == [b"one", b"two"]
    store.append("ledger/b1", b"three")
    assert store.read_log("ledger/b1") == [b"one", b"two", b'{"torn', b"three"]


def test_an_empty_record_is_refused(store: FileStore) -> None:
    with pytest.raises(ValueError, match="empty"):
        store.append("ledger/b1", b"")


# -- claims --------------------------------------------------------------------------

CHILD = """
import sys
from mailspool.stores.file import FileStore

store = FileStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[2] == "claim":
    lease = store.claim(sys.argv[3], "child", 60)
    print("held" if lease else "refused", flush=True)
    sys.stdin.readline()
else:
    print(store.put_new(sys.argv[3], sys.argv[4].encode()), flush=True)
"""


def start_child(*args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    return child


def go(child: subprocess.Popen[str]) -> str:
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    return child.stdout.readline().strip()


def stop(child: subprocess.Popen[str]) -> None:
    if child.returncode is None:
        child.kill()
        child.communicate()


def test_a_claim_held_by_a_process_is_freed_when_it_is_killed(store: FileStore, root: Path) -> None:
    child = start_child(str(root), "claim", "queue/a.json")
    try:
        assert go(child) == "held"
        assert store.claim("queue/a.json", "parent", 30) is None
        assert [(c.name, c.owner) for c in store.claims()] == [("queue/a.json", "child")]
        child.send_signal(signal.SIGKILL)
        child.communicate()
        assert child.returncode == -signal.SIGKILL
        assert store.claims() == []
        lease = store.claim("queue/a.json", "parent", 30)
        assert lease is not None
        assert lease.owner == "parent"
    finally:
        stop(child)


def test_a_claim_held_here_is_refused_to_another_process(store: FileStore, root: Path) -> None:
    lease = store.claim("queue/a.json", "parent", 30)
    assert lease is not None
    child = start_child(str(root), "claim", "queue/a.json")
    try:
        assert go(child) == "refused"
    finally:
        stop(child)


def test_processes_racing_put_new_have_one_winner(store: FileStore, root: Path) -> None:
    children = [start_child(str(root), "put_new", "blobs/race", f"child-{i}") for i in range(4)]
    try:
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        answers = [child.stdout.readline().strip() for child in children if child.stdout]
    finally:
        for child in children:
            stop(child)
    assert sorted(answers) == ["False", "False", "False", "True"]
    assert store.get("blobs/race") == f"child-{answers.index('True')}".encode()


def test_claims_lists_the_held_claims_with_their_owners(store: FileStore) -> None:
    first = store.claim("queue/b.json", "worker-1", 30)
    second = store.claim("queue/a.json", "worker-2", 60)
    assert first is not None
    assert second is not None
    held = store.claims()
    assert [(c.name, c.owner, c.expires) for c in held] == [
        ("queue/a.json", "worker-2", second.expires),
        ("queue/b.json", "worker-1", first.expires),
    ]
    store.release(second)
    assert [c.name for c in store.claims()] == ["queue/b.json"]


def test_renew_is_seen_in_claims(store: FileStore) -> None:
    lease = store.claim("queue/a.json", "worker-1", 30)
    assert lease is not None
    renewed = store.renew(lease, 3600)
    assert renewed.expires > lease.expires
    assert [c.expires for c in store.claims()] == [renewed.expires]


def test_release_removes_the_lease_file(store: FileStore, root: Path) -> None:
    lease = store.claim("queue/a.json", "me", 30)
    assert lease is not None
    assert [p.name for p in (root / ".leases").iterdir()] == ["queue%2Fa.json"]
    store.release(lease)
    assert list((root / ".leases").iterdir()) == []


def test_renew_after_release_or_removal_raises_lease_lost(store: FileStore, root: Path) -> None:
    released = store.claim("queue/a.json", "me", 30)
    assert released is not None
    store.release(released)
    with pytest.raises(LeaseLost):
        store.renew(released, 30)
    removed = store.claim("queue/b.json", "me", 30)
    assert removed is not None
    (root / ".leases/queue%2Fb.json").unlink()
    with pytest.raises(LeaseLost):
        store.renew(removed, 30)


def test_a_long_claim_name_gets_a_short_file(store: FileStore) -> None:
    name = "queue/" + "x" * 300 + ".json"
    lease = store.claim(name, "me", 30)
    assert lease is not None
    assert store.claim(name, "other", 30) is None
    assert [c.name for c in store.claims()] == [name]


def test_close_releases_every_claim(root: Path) -> None:
    first = FileStore(root)
    assert first.claim("queue/a.json", "me", 30) is not None
    second = FileStore(root)
    assert second.claim("queue/a.json", "other", 30) is None
    first.close()
    assert second.claim("queue/a.json", "other", 30) is not None


def test_a_lease_from_another_store_kind_is_refused(store: FileStore) -> None:
    from mailspool.stores.memory import MemoryStore

    lease = MemoryStore().claim("queue/a.json", "me", 30)
    assert lease is not None
    with pytest.raises(ConfigurationError, match="not made by a file store"):
        store.renew(lease, 30)
