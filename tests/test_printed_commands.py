"""Every command the project prints for a newcomer runs as printed.

The demo's last lines, and each ```sh block that a page marks ``<!-- try -->``, are run
line by line in a fresh ``bash`` with a clean environment (no virtualenv active, no
``MAILSPOOL_*``, and no folder on PATH that holds a ``mailspool`` program), from a folder
shaped like a clone after ``python3 dev.py demo``: ``.venv`` (the virtualenv running these
tests, with this checkout's ``src`` on PYTHONPATH) and ``examples/``. A line fails the test
when it exits non-zero or its shell says ``command not found``.

- A line whose comment says ``keeps running`` (a server, a worker: "in another terminal")
  is started apart and stopped when its block ends; the port it names is waited for. It
  fails the test when it ends by itself before that.
- ``export`` lines carry over to the block's later lines, as in one terminal.
- A block marked ``<!-- file: PATH -->`` (or ``append: PATH``) is written to that file
  (or added at its end) before the next block runs.
- ``.venv/bin/pip install ...`` lines only check that pip is there: installing is
  tests/test_fresh_install.py's part (a fresh clone and virtualenv, from the index).
- The ports 1025, 5000, 8000 and 8025 become free ports, and ``/tmp/mailspool`` a
  folder of the test's own: other runs on this machine may use them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import mailspool

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(mailspool.__file__).resolve().parent.parent
PAGES = [
    "README.md",
    "docs/frameworks.md",
    "docs/dashboard.md",
    "docs/feedback.md",
    "docs/aws.md",
]
_MARK = re.compile(
    r"<!-- (try|file: (?P<file>\S+)|append: (?P<append>\S+)) -->\n```\w*\n(.*?)```", re.S
)
_PORTS = ("1025", "5000", "8000", "8025")
#: What a page says its lines print (their stdout and stderr, one after the other).
SAID = {
    "docs/feedback.md": [
        "4 event(s), 4 new, 2 address(es) suppressed",
        "bounce rate  0.20%, complaint rate 0.20% (last 501 sends); 2 suppressed",
        "{'batches': 0, 'sent': 0, 'retry': 0, 'events': 1}",
    ],
    "docs/aws.md": ["{'batches': 1, 'sent': 1, 'retry': 0}", "sent         1\n"],
    "docs/frameworks.md": ["queued", "1 sent, 0 failed, 0 quarantined"],
}
#: A line a page's programs that keep running print, and how many times (the store of
#: the application's settings, not the default one).
KEPT_SAYING = {
    "docs/frameworks.md": ("for file:///tmp/mailspool/spool (Ctrl-C to stop)", 2),
    "docs/dashboard.md": ("for file:///tmp/mailspool/spool (Ctrl-C to stop)", 1),
}
_PORT_IN = re.compile(r"(?:127\.0\.0\.1|localhost):(\d+)|(?:-p|--port|runserver)\s+(\d+)")


@dataclass(frozen=True)
class Step:
    kind: str  # "try", "file" or "append"
    text: str
    path: str = ""


def steps(page: str) -> list[Step]:
    found = []
    for match in _MARK.finditer((ROOT / page).read_text("utf-8")):
        if match["file"]:
            found.append(Step("file", match[4], match["file"]))
        elif match["append"]:
            found.append(Step("append", match[4], match["append"]))
        else:
            found.append(Step("try", match[4]))
    return found


def lines(block: str) -> list[str]:
    """The block's commands: a trailing backslash joins a line to the next."""
    return [
        line.strip()
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


class Clone:
    """The folder the commands run in, and what replaces fixed ports and /tmp/mailspool."""

    def __init__(self, base: Path) -> None:
        self.folder = base / "clone"
        self.folder.mkdir()
        (self.folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        (self.folder / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
        self.own_tmp = base / "tmp"
        self.ports = {port: str(free_port()) for port in _PORTS}
        home = base / "home"
        home.mkdir()
        path = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        self.env = {
            "PATH": os.pathsep.join(d for d in path if d and not Path(d, "mailspool").exists()),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(SRC),  # the venv's mailspool may be another checkout's
        }
        self.exports: list[str] = []
        self.background_said = ""  # what the lines that kept running printed

    def own(self, text: str) -> str:
        text = text.replace("/tmp/mailspool", str(self.own_tmp))
        return re.sub(r"(?<![\d.])(1025|5000|8000|8025)(?!\d)", lambda m: self.ports[m[1]], text)

    def write(self, step: Step) -> None:
        target = self.folder / step.path
        target.parent.mkdir(parents=True, exist_ok=True)
        before = target.read_text("utf-8") + "\n" if step.kind == "append" else ""
        target.write_text(before + self.own(step.text), "utf-8")

    def script(self, line: str) -> str:
        return "\n".join([*self.exports, line])

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        line = self.own(line)
        if line.startswith(".venv/bin/pip install"):
            line = "test -x .venv/bin/pip"
        if line.startswith("export "):
            self.exports.append(line)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.script(line)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        said = f"{line}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        assert "command not found" not in result.stderr, said
        assert result.returncode == 0, said
        return result

    @contextmanager
    def running(self, line: str) -> Iterator[None]:
        """A line that keeps running, started apart, ready once its port answers."""
        line = self.own(line)
        log = self.folder.parent / f"background-{free_port()}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                ["bash", "-c", self.script(f"exec {line}")],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            port = _PORT_IN.search(line)
            if port is not None:
                wait_for(int(port[1] or port[2]), process, line, log)
            yield
            ended = process.poll()
            assert ended is None, f"{line}\nended by itself ({ended}):\n{log.read_text()}"
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            self.background_said += log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(port: int, process: subprocess.Popen[bytes], line: str, log: Path) -> None:
    """Until the port takes a connection; the process ending first fails the test."""
    deadline = time.monotonic() + 120  # a guard against hanging, not a measure
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{line}\nended ({process.returncode}):\n{log.read_text()}"
        try:
            with socket.create_connection(("localhost", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{line}\nnever listened on {port}:\n{log.read_text()}")


def run_block(clone: Clone, commands: list[str]) -> str:
    """The block run; what its lines printed, one after the other."""
    printed = []
    with _background(clone, commands) as foreground:
        for line in foreground:
            result = clone.run(line)
            printed.append(result.stdout + result.stderr)
    return "".join(printed)


@contextmanager
def _background(clone: Clone, commands: list[str]) -> Iterator[Iterator[str]]:
    """The block's lines in order: those that keep running are started (and stopped when
    the block ends), the others handed back to run."""

    with ExitStack() as stack:

        def each() -> Iterator[str]:
            for line in commands:
                if "# keeps running" in line:
                    stack.enter_context(clone.running(line))
                else:
                    yield line

        yield each()


@pytest.mark.parametrize("page", PAGES)
def test_every_marked_command_of_the_page_runs_as_printed(page: str, tmp_path: Path) -> None:
    found = steps(page)
    assert any(step.kind == "try" for step in found), f"{page} marks no block <!-- try -->"
    clone = Clone(tmp_path)
    printed = ""
    for step in found:
        if step.kind == "try":
            clone.exports = []  # a block is one terminal
            printed += run_block(clone, lines(step.text))
        else:
            clone.write(step)
    for words in SAID.get(page, []):
        assert words in printed, f"{page}: {words!r} not in\n{printed}"
    if page in KEPT_SAYING:
        words, times = KEPT_SAYING[page]
        said = clone.background_said
        assert said.count(clone.own(words)) == times, f"{page}: {words!r}, {times}x?\n{said}"


def test_the_demo_s_last_lines_run_as_printed(tmp_path: Path) -> None:
    """`python3 dev.py demo` runs `.venv/bin/mailspool demo` in the caller's folder."""
    clone = Clone(tmp_path)
    port = clone.ports["8025"]
    shown = clone.run(f".venv/bin/mailspool demo --no-serve --followers 5 --port {port}").stdout
    [tail] = re.findall(r"^then: +(.*(?:\n {11}.*)*)", shown, flags=re.M)
    printed = [line.strip() for line in tail.splitlines()]
    assert len(printed) == 3, shown
    assert all(line.startswith(".venv/bin/mailspool ") for line in printed), printed
    assert (
        f"--port {port}    # keeps running: the dashboard on http://127.0.0.1:{port}/"
        in (printed[-1])
    )
    run_block(clone, printed)


def test_a_bare_mailspool_is_not_found_in_that_shell(tmp_path: Path) -> None:
    """The shell the test gives is a newcomer's: nothing put .venv/bin on PATH."""
    clone = Clone(tmp_path)
    with pytest.raises(AssertionError, match="command not found"):
        clone.run("mailspool --version")
