"""The figures of README.md, docs/benchmarks.md, docs/comparison.md and the table of
docs/frameworks.md: each stands in a marked block that ``python3 dev.py bench`` renders
from a recorded run (``benchmarks/results/``), and the page holds what the record gives."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from benchmarks import blocks
from benchmarks.results import RESULTS, load, plain, run_and_record
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
#: A measured figure as the pages write one.
FIGURE = re.compile(r"(\d+(?:\.\d+)?)(?: us| ms| msg/s|x)\b")


@pytest.mark.parametrize("page", blocks.PAGES)
def test_every_block_is_what_its_record_renders(page: str) -> None:
    text = (ROOT / page).read_text()
    found = blocks.blocks_of(text)
    assert found, f"{page} has no marked block"
    for name, content in found.items():
        assert name in blocks.RENDERERS, f"{page}: no renderer for the block {name!r}"
        try:
            rendered = blocks.RENDERERS[name](load)
        except FileNotFoundError as missing:
            pytest.fail(f"{page}: the block {name!r} has no record behind it ({missing})")
        assert content == rendered, f"{page}: the block {name!r} was not written by the bench"


def test_every_renderer_has_its_block_on_a_page() -> None:
    used: set[str] = set()
    for page in blocks.PAGES:
        used |= set(blocks.blocks_of((ROOT / page).read_text()))
    assert used == set(blocks.RENDERERS)


def test_every_figure_of_the_comparison_is_inside_a_block() -> None:
    """docs/comparison.md invents no figure: each measured number it gives (us, ms, msg/s,
    a ratio) is in a block rendered from a run."""
    page = (ROOT / "docs" / "comparison.md").read_text()
    outside = blocks.BLOCK.sub("", page)
    inside = "".join(blocks.blocks_of(page).values())
    assert FIGURE.findall(outside) == []
    assert len(FIGURE.findall(inside)) >= 12


def test_the_readme_table_is_a_block_and_its_first_lines_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    numbers = readme[readme.index("## Numbers") : readme.index("## Docs")]
    assert FIGURE.findall(blocks.BLOCK.sub("", numbers)) == []
    assert "python3 dev.py demo" in readme[:1000]
    assert "python3 dev.py test" in readme[:1000]


def test_a_figure_changed_by_hand_is_found() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    content = blocks.blocks_of(page)["handoff"]
    figure = FIGURE.search(content)
    assert figure is not None
    edited = page.replace(content, content.replace(figure.group(), f"{figure.group()}1", 1))
    assert blocks.render_page(edited, load) == page


def test_every_record_says_where_its_figures_come_from() -> None:
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text())
        assert record["benchmark"] == path.stem
        assert record["command"].endswith(f"python3 dev.py bench {path.stem}")
        if "source" in record:  # a run copied from a page, named so the lead runs it again
            assert record["source"].startswith("transcribed from docs/benchmarks.md of ")
            assert record["machine"]
        else:
            assert record["cores"] >= 1
            assert len(record["load_average"]) == 3
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", record["date"])


def test_a_run_records_what_it_returned_and_printed(tmp_path: Path) -> None:
    def bench() -> dict[str, float]:
        print("5000 e-mails: 2.5x the loop")
        return {"ratio": 2.5}

    path = run_and_record("demo", bench, tmp_path)
    record = load("demo", tmp_path)
    assert path == tmp_path / "demo.json"
    assert record["figures"] == {"ratio": 2.5}
    assert record["output"] == "5000 e-mails: 2.5x the loop\n"
    assert record["cores"] >= 1
    assert len(record["load_average"]) == 3
    assert "load average" in blocks.provenance(record)


def test_a_run_that_measured_nothing_keeps_the_last_record(tmp_path: Path) -> None:
    assert run_and_record("field", lambda: {"ratio": 1.0}, tmp_path) is not None
    assert run_and_record("field", list, tmp_path) is None
    assert load("field", tmp_path)["figures"] == {"ratio": 1.0}


def test_an_unknown_block_or_a_missing_record_fails_the_render(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        blocks.render_page("<!-- bench:nothing -->\n<!-- /bench:nothing -->", load)
    with pytest.raises(FileNotFoundError):
        blocks.render_page(
            "<!-- bench:ses -->\n<!-- /bench:ses -->", lambda name: load(name, tmp_path)
        )


_PROSE = st.text(st.characters(blacklist_characters="<"), max_size=200)


@given(before=_PROSE, old=_PROSE, after=_PROSE)
def test_a_render_changes_only_what_is_between_the_marks(before: str, old: str, after: str) -> None:
    text = f"{before}<!-- bench:ses -->\n{old}<!-- /bench:ses -->{after}"
    rendered = blocks.render_page(text, load)
    assert rendered.startswith(f"{before}<!-- bench:ses -->\n")
    assert rendered.endswith(f"<!-- /bench:ses -->{after}")
    assert blocks.blocks_of(rendered) == {"ses": blocks.RENDERERS["ses"](load)}


@dataclass(frozen=True)
class _Case:
    name: str
    ours: float


def test_records_hold_dataclasses_and_nested_figures_as_json() -> None:
    assert plain([_Case("300 e-mails", 177.8)]) == [{"name": "300 e-mails", "ours": 177.8}]
    assert plain({20: (1, 2)}) == {"20": [1, 2]}


def test_a_delivery_run_beside_another_checkout_adds_its_line() -> None:
    """A run with ``BENCH_BEFORE_SRC`` records both checkouts' medians; the delivery block
    then says them, and a run without says nothing of it."""
    recorded = load("delivery")
    side = ("before_cli_per_s", "after_cli_per_s", "cli_after_before")
    side += tuple("far_" + name for name in side)
    figures = {k: v for k, v in recorded["figures"].items() if k not in side}
    record = dict(recorded, command="python3 dev.py bench delivery", figures=figures)
    plain_block = blocks.delivery(lambda name: record)
    assert "- Side by side" not in plain_block
    side_by_side = dict(record, command="BENCH_BEFORE_SRC=/tmp/before/src " + record["command"])
    side_by_side["figures"] = record["figures"] | {
        "before_cli_per_s": 2500.0,
        "after_cli_per_s": 2600.0,
        "cli_after_before": 1.04,
        "before_far_cli_per_s": 400.0,
        "after_far_cli_per_s": 420.5,
        "far_cli_after_before": 1.05125,
    }
    rendered = blocks.delivery(lambda name: side_by_side)
    line = rendered[rendered.index("- Side by side") :].replace("\n  ", " ")
    assert line == (
        "- Side by side with the other checkout's CLI (`BENCH_BEFORE_SRC`, alternating runs, "
        "medians): loopback **1.04x** its rate (2600 against 2500 msg/s), 50 ms away "
        "**1.05x** (420.5 against 400.0 msg/s); target: no lower than 1.\n"
    )
