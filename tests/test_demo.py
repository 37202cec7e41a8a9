"""`mailspool demo`, the README's first command, on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_demo(data: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
    env["XDG_DATA_HOME"] = str(data)
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "demo", "--followers", "120"],
        env=env,
        cwd=data,  # the interpreter is printed by its path from here: absolute
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_hands_off_delivers_and_leaves_readable_files(tmp_path: Path) -> None:
    output = run_demo(tmp_path)
    assert "hand off 121 e-mails in 1 file(s)" in output
    assert "this run:  122 e-mails: 121 queued and 121 of them delivered" in output
    assert "1 priority e-mail sent at once" in output
    assert "store:     0 pending, 121 sent, 0 failed, 0 quarantined" in output
    outbox = tmp_path / "mailspool" / "outbox"
    assert len(list(outbox.glob("*.eml"))) == 122  # 121 delivered + the priority one
    assert len(list(outbox.glob("*.envelope.json"))) == 122
    assert f"{outbox}: 122 .eml files" in output
    assert ".envelope.json beside it" in output
    assert len(list((tmp_path / "mailspool" / "spool" / "done").glob("*.json"))) == 1
    store = f"file://{tmp_path / 'mailspool' / 'spool'}"
    python = f"{sys.executable} -m mailspool"  # started as python -m: printed that way
    assert f"then:      {python} status --store {store}\n" in output  # offered, never waited for
    assert (
        f"           {python} serve --store {store}    # keeps running: the dashboard on" in output
    )


def test_a_second_run_reports_its_own_count_and_says_the_store_adds_up(tmp_path: Path) -> None:
    run_demo(tmp_path)
    output = run_demo(tmp_path)
    assert "this run:  122 e-mails: 121 queued and 121 of them delivered" in output
    assert "store:     0 pending, 242 sent" in output
    assert "counts add up from run to run" in output
    assert f"{tmp_path / 'mailspool' / 'outbox'}: 244 .eml files (every run's)" in output
