"""``mailspool demo``: the article's scenario on the embedded default, end to end.

One request publishes a post: it notifies every follower (deferred), attaches the post
as a PDF to one e-mail, and sends one password reset (priority, at once). The request's
time is printed, then the worker drains the queue into the outbox. What this run did is
reported apart from the store's totals: the store and the outbox keep earlier runs, so
their counts add up from run to run.

The commands it prints last run as printed in the shell that started it: ``mailspool``
when that name finds this program, else the path it was started by (``.venv/bin/mailspool``
after ``python3 dev.py demo`` in a clone, where nothing has put ``.venv/bin`` on PATH).
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

import click

from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.delivery.steps import OutcomeCallback
from mailspool.ops.status import collect_status
from mailspool.producer import api
from mailspool.producer.scope import request
from mailspool.spool.sealed_store import sealed
from mailspool.stores import open_store
from mailspool.stores.base import Store
from mailspool.triggers.local import drain

__all__ = ["next_commands", "program", "run_demo"]

_POST = (
    "<html><body><h1>{title}</h1><p>Hello {name},</p>"
    '<p>{author} just published <a href="https://example.com/posts/42">{title}</a>. '
    + "Here is how it starts: sending e-mail inside a web request is slow, because every "
    "message waits on a distant SMTP server. "
    * 8
    + "</p><p>You receive this because you follow {author}.</p></body></html>"
)


def run_demo(settings: Settings, *, followers: int) -> None:
    """Hand off the burst in one request, deliver it, and say where to look."""
    with sealed(open_store(settings.store), settings.encryption_key) as store:
        click.echo(f"store:     {store.url}")
        click.echo(f"outbox:    {settings.transport}")
        queued = _request(store, settings, followers)
        sent = _deliver(store, settings)
        status = collect_status(store)
    click.echo(
        f"this run:  {queued + 1} e-mails: {queued} queued and {sent} of them delivered by "
        "the worker, 1 priority e-mail sent at once"
    )
    click.echo(
        f"store:     {status.pending} pending, {status.sent} sent, {status.failed} failed, "
        f"{status.quarantined} quarantined (queued e-mails of every run on this store: "
        "counts add up from run to run; --store for a fresh one)"
    )
    outbox = _outbox_dir(settings.transport)
    if outbox is not None and outbox.is_dir():
        files = sorted(outbox.glob("*.eml"))
        example = f" (e.g. {files[-1].name})" if files else ""
        click.echo(
            f"look at:   {outbox}: {len(files)} .eml files (every run's){example}, each "
            "with a .envelope.json beside it (sender, every recipient, Bcc included, Message-ID)"
        )


def _request(store: Store, settings: Settings, followers: int) -> int:
    """The article's request: a notification per follower, a PDF, a password reset."""
    headers = {"From": "Blog <blog@example.com>", "Reply-To": "Ana Author <ana@example.com>"}
    title = "Sending e-mail asynchronously"
    started = time.perf_counter()
    with request(store=store, settings=settings) as scope:
        for number in range(followers):
            name = f"Follower {number}"
            body = _POST.format(title=title, name=name, author="Ana")
            api.send_mail(
                f"{name} <follower{number}@example.com>", f"New post: {title}", body, headers
            )
        api.send_mail(
            "Editor <editor@example.com>",
            "The post as PDF",
            "<p>The post is attached.</p>",
            headers,
            [("post-42.pdf", _tiny_pdf(), "application/pdf")],
        )
        api.send_mail(
            "Jürgen Groß <jurgen@example.com>",
            "Reset your password",
            "<p>Follow this link to choose a new password.</p>",
            headers,
            priority=True,
        )
        handed_off = len(scope)
    request_ms = (time.perf_counter() - started) * 1000
    click.echo(
        f"request:   {request_ms:.1f} ms to hand off {handed_off} e-mails in "
        f"{len(scope.keys)} file(s), and send 1 priority e-mail at once"
    )
    return handed_off


def _deliver(store: Store, settings: Settings) -> int:
    """Drain the queue into the outbox with the worker every trigger uses."""
    pending = collect_status(store).pending
    with open_delivery_transport(settings) as transport:
        worker = build_worker(settings, store, transport)
        started = time.perf_counter()
        try:
            if sys.stderr.isatty():
                with click.progressbar(length=pending, label="delivering", file=sys.stderr) as bar:
                    worker.steps.append(OutcomeCallback(lambda *_: bar.update(1)))
                    report = drain(worker, fallback_base=settings.fallback_store)
            else:
                report = drain(worker, fallback_base=settings.fallback_store)
        finally:
            worker.close()
    seconds = time.perf_counter() - started
    sent = report.sent
    click.echo(f"delivered: {sent} e-mails in {seconds:.2f} s ({sent / max(seconds, 1e-9):.0f}/s)")
    return sent


def _outbox_dir(url: str) -> Path | None:
    if not url.startswith("file:"):
        return None
    path = url[len("file://") :] if url.startswith("file://") else url[len("file:") :]
    return Path(path).expanduser()


def _tiny_pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    ) * 40


def next_commands(store_url: str, port: int = 8025) -> list[str]:
    """What to run next, each line as it can be pasted into the shell that ran the demo."""
    me, store = program(), shlex.quote(store_url)
    where = "" if port == 8025 else f" --port {port}"
    url = f"http://127.0.0.1:{port}/"
    return [
        f"{me} status --store {store}",
        f"{me} trace follower1@example.com --store {store}",
        f"{me} serve --store {store}{where}    # keeps running: the dashboard on {url}",
    ]


def program() -> str:
    """How this shell reaches the running ``mailspool``: its name when PATH finds this very
    program, else the path it was started by (relative to the current folder when inside
    it), or ``python -m mailspool`` when it was started that way."""
    started = Path(sys.argv[0])
    if started.name == "__main__.py" or not started.is_file():
        return f"{_shown(Path(sys.executable))} -m mailspool"
    found = shutil.which("mailspool")
    if found is not None and Path(found).resolve() == started.resolve():
        return "mailspool"
    return _shown(started)


def _shown(path: Path) -> str:
    absolute = path.absolute()  # not resolved: a virtualenv's bin/ may be symlinks
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(absolute))
    text = str(relative)
    return shlex.quote(text if "/" in text else f"./{text}")
