"""What a benchmark run leaves behind: ``benchmarks/results/<name>.json``.

Each file holds the figures a benchmark returned, every line it printed, the command,
the date and the machine's state (its cores and load average): the docs' marked blocks
are rendered from these files only (``benchmarks/blocks.py``), so a figure in a block
is one a benchmark produced.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

RESULTS = Path(__file__).resolve().parent / "results"


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy."""

    def __init__(self, terminal: TextIO) -> None:
        self._terminal = terminal
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self._terminal.write(text)
        return self.kept.write(text)

    def flush(self) -> None:
        self._terminal.flush()


@contextmanager
def printed() -> Iterator[io.StringIO]:
    """Everything printed inside the block, still shown as it is printed."""
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield tee.kept
    finally:
        sys.stdout = tee._terminal


def plain(value: object) -> Any:
    """``value`` as JSON can hold it: dataclasses as objects, lists of them as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def run_and_record(name: str, main: Callable[[], object], folder: Path = RESULTS) -> Path | None:
    """Run one benchmark's ``main`` and write what it returned and printed; ``None`` when
    it measured nothing (an empty result: ``bench field`` without Postfix), so the last
    record stays."""
    started = datetime.now(UTC)
    with printed() as output:
        figures = main()
    if figures is not None and not figures:
        return None
    document = {
        "benchmark": name,
        "command": f"{_before_env()}python3 dev.py bench {name}",
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "figures": plain(figures) if figures is not None else {},
        "output": output.getvalue(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path


def _before_env() -> str:
    """The checkout compared with, when ``BENCH_BEFORE_SRC`` names one (``bench field``,
    ``bench delivery``)."""
    before = os.environ.get("BENCH_BEFORE_SRC")
    return f"BENCH_BEFORE_SRC={before} " if before else ""


def load(name: str, folder: Path = RESULTS) -> dict[str, Any]:
    """The recorded run of benchmark ``name``; raises ``FileNotFoundError`` without one."""
    document: dict[str, Any] = json.loads((folder / f"{name}.json").read_text())
    return document
