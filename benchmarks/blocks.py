"""The docs' marked blocks, rendered from the recorded runs (``benchmarks/results/``).

A block is ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->`` on a page of ``PAGES``;
``RENDERERS[NAME]`` writes its content from the records alone, so every figure between
the marks is one a benchmark printed or returned. ``python3 dev.py bench`` rewrites the
blocks after each run; ``tests/test_bench_blocks.py`` fails when a page's block is not
what its renderer gives, or has no record behind it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS, load

PAGES = ("README.md", "docs/benchmarks.md", "docs/comparison.md", "docs/frameworks.md")
BLOCK = re.compile(r"(<!-- bench:([a-z-]+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.DOTALL)

Records = Callable[[str], dict[str, Any]]
#: The pages' line width, for the prose a block holds.
WIDTH = 90


def provenance(record: dict[str, Any]) -> str:
    """Where a record's figures come from: the run (command, date, cores, load average),
    or the page they were transcribed from."""
    if "source" in record:
        said = f"{record['source']} (`{record['command']}`; {record['machine']})"
        return said[0].upper() + said[1:]
    load = " ".join(f"{value:.2f}" for value in record["load_average"])
    return (
        f"`{record['command']}`, {record['date']}, {record['cores']} cores, "
        f"load average {load} (1, 5, 15 minutes)"
    )


def paragraph(text: str) -> str:
    """``text`` folded at the pages' width, as one paragraph."""
    return _fill(text, WIDTH, break_on_hyphens=False, break_long_words=False)


def bullet(text: str) -> str:
    """``text`` as an item of a list, folded at the pages' width."""
    return _fill(text, WIDTH, initial_indent="- ", subsequent_indent="  ")


#: A figure and its unit ("3.0 ms"), kept on one line.
_FIGURE_UNIT = re.compile(r"(\d) (us|ms|msg/s|s\b)")


def _fill(text: str, width: int, **options: Any) -> str:
    held = _FIGURE_UNIT.sub("\\1\u00a0\\2", text)  # textwrap does not break at U+00A0
    return textwrap.fill(held, width, **options).replace("\u00a0", " ") + "\n"


def output_block(name: str) -> Callable[[Records], str]:
    """A benchmark's printed output as it was printed, under the line saying which run."""

    def render(records: Records) -> str:
        record = records(name)
        return f"{paragraph(provenance(record) + ':')}\n```\n{record['output']}```\n"

    return render


def delivery(records: Records) -> str:
    record = records("delivery")
    fig = record["figures"]
    return (
        output_block("delivery")(records)
        + "\n"
        + bullet(
            f"Loopback, 5000 e-mails: **{fig['cli_per_s'] / fig['smtplib_loop_per_s']:.2f}x** "
            "the plain `smtplib` loop (target 3x) and "
            f"**{fig['cli_per_s'] / fig['smtp_source_per_s']:.2f}x** Postfix's own C client "
            "`smtp-source` at the same concurrency (aim 0.25)."
        )
        + bullet(
            "A server 50 ms away, 1000 e-mails: "
            f"**{fig['far_cli_per_s'] / fig['far_loop_per_s']:.1f}x** the loop (target 30x) with "
            f"{fig['far_round_trips']:.2f} round trips per e-mail (`smtp-sink` offers PIPELINING, "
            "not CHUNKING: see the field section for one round trip per e-mail with BDAT against "
            "a real Postfix)."
        )
        + _delivery_before(fig)
    )


def _delivery_before(fig: dict[str, Any]) -> str:
    """The side-by-side line of a run made with ``BENCH_BEFORE_SRC``; nothing otherwise."""
    if "before_cli_per_s" not in fig:
        return ""
    return bullet(
        "Side by side with the other checkout's CLI (`BENCH_BEFORE_SRC`, alternating runs, "
        f"medians): loopback **{fig['cli_after_before']:.2f}x** its rate "
        f"({fig['after_cli_per_s']:.0f} against {fig['before_cli_per_s']:.0f} msg/s), 50 ms "
        f"away **{fig['far_cli_after_before']:.2f}x** ({fig['after_far_cli_per_s']:.1f} "
        f"against {fig['before_far_cli_per_s']:.1f} msg/s); target: no lower than 1."
    )


def request_sentence(records: Records) -> str:
    times = records("request")["figures"]
    return paragraph(
        f"With mailspool the 5000-follower request (about {times['mailspool-file']['5000']:.2f} "
        "s) is faster than the 20-follower request with Django's SMTP backend "
        f"({times['django-smtp']['20']:.1f} s); {provenance(records('request'))}."
    )


def request_table(records: Records) -> str:
    times = records("request")["figures"]
    smtp = times["django-smtp"]
    rows = [
        "| | N = 20 | N = 5000 |",
        "|---|---|---|",
        f"| Django SMTP backend | {smtp['20'] * 1000:.0f} ms | {smtp['50'] / 50 * 5000:.0f} s "
        f"(extrapolated from N = 50: {smtp['50']:.1f} s) |",
    ]
    for key, name in (("mailspool-file", "file store"), ("mailspool-s3", "S3 (moto)")):
        row = times[key]
        rows.append(
            f"| mailspool, {name} | {row['20'] * 1000:.1f} ms ({smtp['20'] / row['20']:.0f}x "
            f"faster) | {row['5000'] * 1000:.0f} ms |"
        )
    return paragraph(provenance(records("request")) + ":") + "\n" + "\n".join(rows) + "\n"


def overview(records: Records) -> str:
    fig = records("overview")["figures"]
    rows = (
        ("`collect_status` (what `status --json` and the overview count)", "collect_status_ms"),
        ("`GET /` on `mailspool serve` (the overview page)", "page_ms"),
        (
            "the first `GET /`, which also counts the bounce and complaint rates and the "
            "suppressed addresses (then once a minute)",
            "first_page_ms",
        ),
        ("`GET /metrics`", "metrics_ms"),
        (
            "`mailspool status --json`, the whole process (Python start, imports and the "
            "rates included)",
            "status_process_ms",
        ),
        ("re-reading every ledger of `done/`, as `status` did before", "reread_ms"),
        (
            "the first `status --json` on that store without `tally/` (counted once in full, "
            "then kept)",
            "no_tally_ms",
        ),
    )
    table = "\n".join(f"| {what} | {_duration(fig[key])} |" for what, key in rows)
    return (
        paragraph(provenance(records("overview")) + ":")
        + f"\n| what | time |\n| --- | --- |\n{table}\n\n"
        + paragraph(
            f"The overview is about {fig['reread_ms'] / fig['page_ms']:,.0f} times faster than "
            "the re-read it replaces."
        )
    )


def _duration(milliseconds: float) -> str:
    if milliseconds >= 1000:
        return f"{milliseconds / 1000:.1f} s"
    return f"{milliseconds:.1f} ms" if milliseconds < 100 else f"{milliseconds:.0f} ms"


def field_case(records: Records, count: int) -> dict[str, Any]:
    """The case of ``count`` e-mails through Postfix with STARTTLS, 50 ms away."""
    cases = records("field")["figures"]
    return next(c for c in cases if c["name"].startswith(f"{count} e-mails, Postfix STARTTLS, 50"))


def readme(records: Records) -> str:
    hand, deliv = records("handoff")["figures"], records("delivery")["figures"]
    field, peers = field_case(records, 1000), records("peers")["figures"]
    times, view = records("overview")["figures"], records("request")["figures"]
    per_email = hand["handoff_5000_s"] / 5000 * 1e6
    rows = [
        "| what | figure |",
        "| --- | --- |",
        f"| hand-off, 5000 deferred e-mails in one request | {per_email:.0f} us per e-mail, "
        f"{hand['writes_5000']:.0f} store write, {hand['ratio_to_floor']:.2f}x the floor "
        "(parse + `json` + one fsync'd write) |",
        "| `mailspool worker --drain` (CLI defaults, whole process), 5000 e-mails to Postfix "
        f"`smtp-sink` | {deliv['cli_per_s'] / deliv['smtplib_loop_per_s']:.2f}x a plain "
        f"`smtplib` loop ({deliv['cli_per_s']:.0f} msg/s), "
        f"{deliv['cli_per_s'] / deliv['smtp_source_per_s']:.2f}x Postfix's `smtp-source` |",
        f"| the same, server 50 ms away, 1000 e-mails | "
        f"{deliv['far_cli_per_s'] / deliv['far_loop_per_s']:.1f}x the loop; "
        f"{deliv['far_round_trips']:.2f} round trips per e-mail (PIPELINING) |",
        "| one post to 1000 followers through a real Postfix, STARTTLS, 50 ms away (`bench "
        f"field`) | {field['ours'] / field['other']:.1f}x a plain `smtplib` loop with "
        f"`starttls()`, {field['trips']:.2f} round trips per e-mail (BDAT) |",
        "| beside django-post-office, django-mailer, Celery + django-celery-email (5000 "
        f"e-mails) | delivery {peers['delivery_vs_fastest']:.2f}x the fastest, enqueue "
        f"{peers['enqueue_vs_cheapest']:.0f}x cheaper than the cheapest "
        "([plot](docs/img/peers.png)) |",
        "| a Django view notifying 5000 followers | faster than 20 followers with Django's "
        f"SMTP backend ({view['mailspool-file']['5000']:.2f} s against "
        f"{view['django-smtp']['20']:.1f} s) |",
        "| batch written to first e-mail sent, running worker | "
        f"{deliv['first_send_median_ms']:.0f} ms median |",
        "| the dashboard's overview of a store of 1,000,000 e-mails | "
        f"{_duration(times['page_ms'])} (re-reading every ledger: "
        f"{_duration(times['reread_ms'])}) |",
    ]
    runs = ", ".join(_run_line(records, name) for name in README_RUNS)
    return "\n".join(rows) + "\n\n" + paragraph(f"From the recorded runs: {runs}.")


README_RUNS = ("handoff", "delivery", "field", "peers", "request", "overview")


def _run_line(records: Records, name: str) -> str:
    record = records(name)
    if "source" in record:
        return f"`{name}` {record['source']}"
    return f"`{name}` {record['date']} (load {record['load_average'][0]:.2f})"


#: What each peer's row of the comparison says besides its figures.
PEER_ROWS = {
    "django-post-office": (
        "(`mail.send`, `send_queued_mail`)",
        "a database row each",
        "a database",
    ),
    "django-mailer": (
        "(`send_html_mail`, `manage.py send_mail`)",
        "a database row each",
        "a database",
    ),
    "Celery + django-celery-email": (
        "",
        "a task in Redis",
        "a broker (Redis) and a Celery worker",
    ),
    "mailspool": (
        "(`send_mail` in a request, `mailspool worker --drain`)",
        "one store write per request; the recipients' suppression check included",
        "nothing but a folder (or S3)",
    ),
}


def comparison(records: Records) -> str:
    peers = records("peers")["figures"]
    rows = sorted(peers["rows"], key=lambda row: row["name"] != "mailspool")
    table = "\n".join(
        f"| {row['name']}{' ' + PEER_ROWS[row['name']][0] if PEER_ROWS[row['name']][0] else ''}"
        f" | {row['enqueue_us']:.1f} us ({PEER_ROWS[row['name']][1]}) | "
        f"{row['delivered_per_s']:.0f} msg/s | {PEER_ROWS[row['name']][2]} |"
        for row in rows
    )
    hand, deliv = records("handoff")["figures"], records("delivery")["figures"]
    view = records("request")["figures"]
    ours = paragraph(
        f"mailspool delivered {peers['delivery_vs_fastest']:.2f}x the rate of the fastest peer "
        f"({peers['fastest']}) and its enqueue was {peers['enqueue_vs_cheapest']:.0f}x cheaper "
        f"than the cheapest ({peers['cheapest']}) ([plot](img/peers.png)). Without the "
        "suppression check, the request path alone costs "
        f"{hand['handoff_5000_s'] / 5000 * 1e6:.1f} us per e-mail for 5000 e-mails, "
        f"{hand['ratio_to_floor']:.2f}x the floor any design pays (parse, `json`, one fsync'd "
        "write). The worker alone, the CLI with its defaults: "
        f"{deliv['cli_per_s']:.0f} msg/s on loopback "
        f"({deliv['cli_per_s'] / deliv['smtplib_loop_per_s']:.2f}x a plain `smtplib` loop), and "
        f"{deliv['far_cli_per_s']:.1f} msg/s to a server 50 ms away "
        f"({deliv['far_cli_per_s'] / deliv['far_loop_per_s']:.1f}x the loop, "
        f"{deliv['far_round_trips']:.2f} round trips per e-mail)."
    )
    django = paragraph(
        "django-ses and django-anymail send from the request itself, one provider call per "
        "e-mail, like Django's own backends; they were not measured here. Django's SMTP "
        "backend was: a view notifying 20 followers through a server that answers in 50 ms "
        f"takes {view['django-smtp']['20'] * 1000:.0f} ms, against "
        f"{view['mailspool-file']['20'] * 1000:.1f} ms with mailspool "
        "([frameworks](frameworks.md#measured))."
    )
    return (
        paragraph(provenance(records("peers")) + ":")
        + "\n| | enqueue, per e-mail | delivery | needs |\n| --- | --- | --- | --- |\n"
        + f"{table}\n\n{ours}\n{django}"
    )


RENDERERS: dict[str, Callable[[Records], str]] = {
    "handoff": output_block("handoff"),
    "delivery": delivery,
    "field": output_block("field"),
    "peers": output_block("peers"),
    "request": request_sentence,
    "request-table": request_table,
    "suppression": output_block("suppression"),
    "overview": overview,
    "ses": output_block("ses"),
    "readme": readme,
    "comparison": comparison,
}


def render_page(text: str, records: Records) -> str:
    """``text`` with each marked block rendered again; an unknown block raises ``KeyError``."""

    def replace(match: re.Match[str]) -> str:
        opening, name, _, closing = match.groups()
        return f"{opening}{RENDERERS[name](records)}{closing}"

    return BLOCK.sub(replace, text)


def blocks_of(text: str) -> dict[str, str]:
    """Each marked block's name and content."""
    return {match.group(2): match.group(3) for match in BLOCK.finditer(text)}


def rewrite(root: Path, folder: Path = RESULTS) -> list[str]:
    """Render every page's blocks from the records in ``folder``; the pages changed."""
    changed = []
    for name in PAGES:
        page = root / name
        text = page.read_text()
        rendered = render_page(text, lambda bench: load(bench, folder))
        if rendered != text:
            page.write_text(rendered)
            changed.append(name)
    return changed
