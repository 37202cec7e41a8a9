"""`mailspool demo`, the README's first command, on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_hands_off_delivers_and_leaves_readable_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "demo", "--followers", "120"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "hand off 121 e-mails in 1 file(s)" in result.stdout
    assert "status:    0 pending, 121 sent, 0 failed, 0 quarantined" in result.stdout
    outbox = tmp_path / "mailspool" / "outbox"
    assert len(list(outbox.glob("*.eml"))) == 122  # 121 delivered + the priority one
    assert len(list((tmp_path / "mailspool" / "spool" / "done").glob("*.json"))) == 1
    assert str(outbox) in result.stdout
    assert "dashboard: mailspool serve --store" in result.stdout  # offered, never waited for
