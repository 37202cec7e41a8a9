"""The suppression list on the file store and on S3 (moto in server mode), and its CLI."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mailspool.cli import cli
from mailspool.cli.suppression import read_entries
from mailspool.errors import InvalidMessage
from mailspool.feedback import layout
from mailspool.feedback.suppression import Reason, Suppression, SuppressionList
from mailspool.stores import Store, open_store
from tests.fixtures.moto_server import MotoServer
from tests.strategies import addresses


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "file":
        with open_store(f"file://{tmp_path / 'spool'}") as the_store:
            yield the_store
        return
    moto: MotoServer = request.getfixturevalue("aws")
    boto3.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="suppressed")
    with open_store("s3://suppressed/spool") as the_store:
        yield the_store


def test_an_added_address_is_suppressed_in_any_spelling(store: Store) -> None:
    suppressions = SuppressionList(store)
    suppressions.add("Ana <Ana@Example.COM>", Reason.COMPLAINT, diagnostic="abuse")
    other_process = SuppressionList(store)  # nothing cached: reads the store
    entry = other_process.get("ana@example.com")
    assert entry is not None
    assert (entry.address, entry.reason, entry.diagnostic) == (
        "ana@example.com",
        Reason.COMPLAINT,
        "abuse",
    )
    assert not other_process.is_suppressed("bob@example.com")


def test_a_check_reads_one_object_whatever_the_list_holds(store: Store) -> None:
    suppressions = SuppressionList(store)
    suppressions.import_entries(
        Suppression(f"user{i}@example.com", Reason.BOUNCE, "2026-01-01T00:00:00Z")
        for i in range(50)
    )
    key = layout.suppression_key("user7@example.com")
    assert store.get(key)  # one object per address, under its own key
    assert orjson.loads(store.get(key))["address"] == "user7@example.com"
    assert SuppressionList(store).count() == 50


def test_add_keeps_the_first_entry_and_remove_lifts_it(store: Store) -> None:
    suppressions = SuppressionList(store)
    first = suppressions.add("c@example.com", Reason.COMPLAINT, since="2026-01-01T00:00:00Z")
    again = suppressions.add("c@example.com", Reason.MANUAL)
    assert again == first
    assert suppressions.remove("c@example.com") is True
    assert suppressions.remove("c@example.com") is False
    assert not SuppressionList(store).is_suppressed("c@example.com")


def test_split_separates_suppressed_recipients(store: Store) -> None:
    suppressions = SuppressionList(store)
    suppressions.add("gone@example.com", Reason.BOUNCE)
    allowed, suppressed = suppressions.split(["Ok <ok@example.com>", "gone@example.com"])
    assert allowed == ["Ok <ok@example.com>"]
    assert list(suppressed) == ["gone@example.com"]


def test_an_unreadable_entry_counts_as_suppressed(store: Store) -> None:
    store.put(layout.suppression_key("x@example.com"), b"{not json")
    entry = SuppressionList(store).get("x@example.com")
    assert entry is not None
    assert "unreadable" in entry.diagnostic


def test_an_invalid_address_is_refused_with_the_field(store: Store) -> None:
    with pytest.raises(InvalidMessage, match="address"):
        SuppressionList(store).add("not an address")


@given(st.lists(addresses(), min_size=1, max_size=5), st.sampled_from(list(Reason)))
def test_import_reads_what_export_writes(entries: list[str], reason: Reason) -> None:
    written = [
        Suppression(layout.normalize_address(a), reason, "2026-01-02T03:04:05Z") for a in entries
    ]
    text = "".join(e.encode().decode() + "\n" for e in written)
    assert list(read_entries(io.StringIO(text), Reason.MANUAL)) == written


def test_import_names_the_file_line_and_field() -> None:
    lines = io.StringIO('ok@example.com\n{"address": "b@example.com", "reason": "angry"}\n')
    lines.name = "list.jsonl"
    with pytest.raises(Exception, match=r"list.jsonl, line 2: field 'reason'"):
        list(read_entries(lines, Reason.MANUAL))


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_add_list_export_import_remove(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'spool'}"
    assert run("suppression", "add", "a@example.com", "--store", store).exit_code == 0
    run("suppression", "add", "b@example.com", "--reason", "complaint", "--store", store)
    listed = orjson.loads(run("suppression", "list", "--json", "--store", store).output)
    assert [(e["address"], e["reason"]) for e in listed] == [
        ("a@example.com", "manual"),
        ("b@example.com", "complaint"),
    ]
    assert all(e["since"].endswith("Z") for e in listed)
    exported = run("suppression", "export", "--store", store).output
    other = f"file://{tmp_path / 'other'}"
    source = tmp_path / "list.jsonl"
    source.write_text(exported + "c@example.com\n")
    imported = run("suppression", "import", str(source), "--reason", "bounce", "--store", other)
    assert "imported 3" in imported.output
    again = orjson.loads(run("suppression", "list", "--json", "--store", other).output)
    assert {e["address"]: e["reason"] for e in again} == {
        "a@example.com": "manual",
        "b@example.com": "complaint",
        "c@example.com": "bounce",
    }
    assert "removed" in run("suppression", "remove", "a@example.com", "--store", store).output
    assert "a@example.com" not in run("suppression", "list", "--store", store).output


def test_cli_refuses_a_bad_address_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["suppression", "add", "nobody", "--store", f"file://{tmp_path}"]
    )
    assert result.exit_code == 1
    assert "not an e-mail address" in result.output
