"""The benchmarks beside another checkout (``BENCH_BEFORE_SRC``): the CLI that runs is the
checkout asked for, ahead of the one the virtualenv has installed, and ``bench delivery``
records both checkouts' runs side by side, on real sinks and real processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.bench_delivery import against_before, alternate
from benchmarks.common import before_src, mailspool_drain

import mailspool
from mailspool.stores.file import FileStore
from tests.fixtures.smtp_server import running_smtp_server

#: The ``src`` folder of this checkout, standing in for "another checkout" where the
#: test needs a real CLI on both sides.
SRC = str(Path(mailspool.__file__).resolve().parent.parent)


def _other_checkout(root: Path, says: str) -> Path:
    """The ``src`` folder of a checkout whose CLI only prints ``says`` and its arguments."""
    package = root / "src" / "mailspool"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(f"import sys\nprint({says!r}, *sys.argv[1:5])\n")
    return root / "src"


def test_the_other_checkouts_cli_runs_ahead_of_the_installed_one(tmp_path: Path) -> None:
    other = _other_checkout(tmp_path, "other checkout:")
    run = mailspool_drain("file:///nowhere", "smtp://127.0.0.1:9", src=str(other))
    assert run.output == "other checkout: worker --drain --no-progress --store\n"


def test_without_src_the_cli_is_the_one_this_process_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another package first on PYTHONPATH does not replace this checkout's CLI, the one
    that wrote the queue."""
    monkeypatch.setenv("PYTHONPATH", str(_other_checkout(tmp_path, "other checkout:")))
    store = FileStore(tmp_path / "spool")
    store.check()
    with running_smtp_server() as server:
        run = mailspool_drain(store.url, server.url)
    assert "other checkout" not in run.output
    assert " 0 sent" in run.output


def test_a_folder_without_mailspool_stops_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_BEFORE_SRC", str(tmp_path))
    with pytest.raises(SystemExit, match=r"BENCH_BEFORE_SRC=.*no mailspool/__init__\.py"):
        before_src()
    monkeypatch.setenv("BENCH_BEFORE_SRC", SRC)
    assert before_src() == SRC
    monkeypatch.delenv("BENCH_BEFORE_SRC")
    assert before_src() is None


def test_the_checkouts_take_turns_on_one_server_and_each_sends_every_email() -> None:
    with running_smtp_server() as server:
        rates = alternate(server.url, 5, SRC, rounds=2)
        assert len(server.messages) == 20
    assert {side: len(runs) for side, runs in rates.items()} == {"before": 2, "after": 2}
    assert all(rate > 0 for runs in rates.values() for rate in runs)


def test_the_side_by_side_run_prints_and_returns_both_medians_and_the_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results: dict[str, float] = {}
    against_before(results, SRC, near=(10, 1), far=(4, 1))
    assert set(results) == {
        f"{side}_{key}" for key in ("cli_per_s", "far_cli_per_s") for side in ("before", "after")
    } | {"cli_after_before", "far_cli_after_before"}
    assert results["cli_after_before"] == results["after_cli_per_s"] / results["before_cli_per_s"]
    printed = capsys.readouterr().out
    assert f"before = the CLI of {SRC} (BENCH_BEFORE_SRC),\n  after = the CLI of {SRC}:" in printed
    assert "10 e-mails to " in printed
    assert "4 e-mails, the same sink 50 ms away" in printed
    assert printed.count("after / before: ") == 2
