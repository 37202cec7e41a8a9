"""Run the benchmarks: ``python3 dev.py bench [NAME ...]`` (default: all), NAME one of
handoff, delivery, request, overview, suppression, peers, limits, ses, field.

Each prints figures measured side by side in one run, as ratios: the machines these run
on are shared and noisy, so absolute times move while ratios hold. Each run is recorded
in ``benchmarks/results/NAME.json`` and the marked blocks of ``README.md``,
``docs/benchmarks.md`` and ``docs/comparison.md`` are rendered again from those records.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import blocks  # noqa: E402 - after the path is set
from benchmarks.results import run_and_record  # noqa: E402

BENCHMARKS = {
    "handoff": "benchmarks.bench_handoff",
    "delivery": "benchmarks.bench_delivery",
    "request": "benchmarks.bench_request",
    "overview": "benchmarks.bench_overview",
    "suppression": "benchmarks.bench_suppression",
    "peers": "benchmarks.bench_peers",
    "limits": "benchmarks.bench_limits",
    "ses": "benchmarks.bench_ses_bulk",
    "field": "benchmarks.bench_field",
}


def main(names: list[str]) -> None:
    for name in names or list(BENCHMARKS):
        if name not in BENCHMARKS:
            sys.exit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as err:
            print(f"== {name}: not available ({err})")
            continue
        print(f"== {name}")
        recorded = run_and_record(name, module.main)
        print(f"recorded in {recorded.relative_to(ROOT)}" if recorded else "nothing recorded")
        print()
    for page in blocks.rewrite(ROOT):
        print(f"rewrote the marked blocks of {page}")


if __name__ == "__main__":
    main(sys.argv[1:])
