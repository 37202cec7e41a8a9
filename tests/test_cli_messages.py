"""What the store commands say: which store, headers, empty listings, "not found" naming
the id, durations with a unit, and the quarantine commands (list, show, requeue after a
fix, delete). The real CLI on a real file store; the worker delivers to a file outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

import mailspool
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.spool import layout
from mailspool.stores.file import FileStore


@pytest.fixture
def store_url(spool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"file://{spool}"
    monkeypatch.setenv("MAILSPOOL_STORE", url)
    monkeypatch.setenv("MAILSPOOL_TRANSPORT", f"file://{tmp_path / 'outbox'}")
    return url


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result


def as_json(*args: str) -> Any:
    return orjson.loads(run(*args).stdout)


def quarantined_batch(spool: Path) -> str:
    """Queue one e-mail, break its ``to`` field and let the worker quarantine it."""
    with mailspool.request(settings=Settings.load(store=f"file://{spool}")):
        mailspool.send_mail("ana@example.com", "Hello", "<p>Hi</p>")
    store = FileStore(spool)
    [key] = list(store.keys(layout.QUEUE))
    document = orjson.loads(store.get(key))
    document["emails"][0]["to"] = 42
    store.put(key, orjson.dumps(document))
    run("worker", "--drain", "--processes", "1")
    return layout.batch_id_from_key(key)


def test_store_commands_name_their_store(store_url: str) -> None:
    assert f"store: {store_url}" in run("status").stderr
    assert as_json("status", "--json")["store"] == store_url
    assert as_json("failed", "list", "--json") == {"store": store_url, "failed": []}
    assert as_json("quarantine", "list", "--json") == {"store": store_url, "quarantined": []}
    assert f"store: {store_url}" in run("gc", "--older-than", "7d").stderr


def test_empty_listings_say_so(store_url: str) -> None:
    assert run("failed", "list").stdout == "no failed e-mails\n"
    assert run("quarantine", "list").stdout == "no quarantined files\n"


@pytest.mark.parametrize(
    "command",
    [
        ("failed", "show"),
        ("failed", "retry"),
        ("quarantine", "show"),
        ("quarantine", "requeue"),
        ("quarantine", "delete"),
    ],
)
def test_not_found_names_the_id_and_the_store(store_url: str, command: tuple[str, ...]) -> None:
    result = run(*command, "20261127T181348123456Z-1a2b3c4d.3", code=1)
    what = "failed e-mail" if command[0] == "failed" else "quarantined file"
    assert f"no {what} '20261127T181348123456Z-1a2b3c4d.3' in {store_url}" in result.stderr
    assert f"see 'mailspool {command[0]} list'" in result.stderr
    assert "failed/" not in result.stderr
    assert "quarantine/" not in result.stderr


@pytest.mark.parametrize("age", ["7", "7 days", "d", "-1h", "7x"])
def test_gc_refuses_a_duration_without_a_unit(store_url: str, age: str) -> None:
    result = run("gc", "--older-than", age, code=2)
    assert "--older-than" in result.stderr
    assert "unit" in result.stderr or "0 or more" in result.stderr


def test_quarantine_list_show_requeue_after_a_fix(store_url: str, spool: Path) -> None:
    batch_id = quarantined_batch(spool)
    listing = run("quarantine", "list").stdout.splitlines()
    assert listing[0] == "ID\tEMAILS\tBYTES\tERROR"
    assert listing[1].startswith(f"{batch_id}\t1\t")
    assert "to" in listing[1]
    [entry] = as_json("quarantine", "list", "--json")["quarantined"]
    assert entry["id"] == batch_id
    assert entry["emails"] == 1
    assert as_json("status", "--json")["quarantined"] == 1

    raw = run("quarantine", "show", batch_id, "--raw").stdout.encode()
    broken = run("quarantine", "requeue", batch_id, code=1)
    assert "to" in broken.stderr  # still unreadable: refused, naming the field
    document = orjson.loads(raw)
    document["emails"][0]["to"] = ["ana@example.com"]
    fixed = spool.parent / "fixed.json"
    fixed.write_bytes(orjson.dumps(document))
    assert (
        f"re-queued {batch_id}"
        in run("quarantine", "requeue", batch_id, "--file", str(fixed)).stdout
    )

    assert as_json("quarantine", "list", "--json")["quarantined"] == []
    drained = run("worker", "--drain", "--processes", "1").stdout
    assert "1 sent" in drained
    assert f"(store {store_url})" in drained
    assert as_json("status", "--json")["sent"] == 1


def test_quarantine_delete_drops_the_file_and_its_error(store_url: str, spool: Path) -> None:
    batch_id = quarantined_batch(spool)
    assert run("quarantine", "delete", batch_id).stdout == f"deleted {batch_id}\n"
    assert list(FileStore(spool).keys(layout.QUARANTINE)) == []
    assert as_json("status", "--json")["quarantined"] == 0


def test_failed_list_has_a_header(store_url: str, spool: Path) -> None:
    store = FileStore(spool)
    record = {
        "batch": "b", "index": 0, "reason": "550 no such user", "attempts": 1,
        "retryable": False, "failedAt": "2026-11-27T18:13:48Z", "partial": False,
        "refused": None, "meta": {}, "email": {"to": ["ana@example.com"]},
    }  # fmt: skip
    store.put(f"{layout.FAILED}b.0.json", orjson.dumps(record))
    assert run("failed", "list").stdout.splitlines() == [
        "ID\tATTEMPTS\tRECIPIENTS\tREASON",
        "b.0\t1\tana@example.com\t550 no such user",
    ]
    assert as_json("failed", "show", "b.0")["id"] == "b.0"


def test_a_wrong_setting_met_by_every_worker_process_is_said_once(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_TRANSPORT", "failover(smtp://a failover(smtp://b))")
    result = run("worker", "--drain", "--no-progress", "--processes", "2", code=1)
    assert result.output.count("failover chains do not nest") == 1, result.output
