"""send_mail and the request scope: classification, buffering, grouping, bad input."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import orjson
import pytest

import mailspool
from mailspool.config import Settings
from mailspool.errors import ConfigurationError, InvalidMessage
from mailspool.spool import batch, layout
from mailspool.stores import open_store
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport


@pytest.fixture
def settings(spool: Path) -> Settings:
    return Settings.load(store=f"file://{spool}", priority_transport="memory:priority")


@pytest.fixture
def outbox() -> MemoryTransport:
    transport = MemoryTransport.named("priority")
    transport.clear()
    return transport


def batches(spool: Path) -> list[batch.Batch]:
    store = FileStore(spool)
    return [batch.decode(store.get(key), source=key) for key in store.keys(layout.QUEUE)]


def test_deferred_mail_waits_for_the_end_of_the_scope(spool: Path, settings: Settings) -> None:
    with mailspool.request(settings=settings) as scope:
        for i in range(3):
            assert mailspool.send_mail(f"f{i}@example.com", "New post", "<p>hi</p>") is True
        assert batches(spool) == []
        assert len(scope) == 3
    [written] = batches(spool)
    assert [written.message(i).to for i in range(3)] == [(f"f{i}@example.com",) for i in range(3)]
    assert written.message(0).html == "<p>hi</p>"
    assert written.meta["from"] == settings.sender


def test_one_file_per_meta_group(spool: Path, settings: Settings) -> None:
    with mailspool.request(settings=settings) as scope:
        for i in range(10):
            mailspool.send_mail(f"a{i}@example.com", "s", "m", {"From": "A <a@example.com>"})
            mailspool.send_mail(
                f"b{i}@example.com", "s", "m", "From: B <b@example.com>\r\nCc: c@example.com"
            )
    assert len(scope.keys) == 2
    groups = sorted((b.meta["from"], len(b), tuple(b.meta.get("cc", ()))) for b in batches(spool))
    assert groups == [("A <a@example.com>", 10, ()), ("B <b@example.com>", 10, ("c@example.com",))]


def test_emails_per_file_splits_like_the_article(spool: Path) -> None:
    settings = Settings.load(store=f"file://{spool}", emails_per_file=25)
    with mailspool.request(settings=settings) as scope:
        for i in range(60):
            mailspool.send_mail(f"f{i}@example.com", "s", "m")
    assert sorted(len(b) for b in batches(spool)) == [10, 25, 25]
    assert len(scope.keys) == 3


def test_outside_a_scope_deferred_mail_is_written_at_once(
    spool: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    assert mailspool.send_mail("a@example.com", "s", "m", priority=False)
    assert [len(b) for b in batches(spool)] == [1]


def test_priority_mail_goes_out_at_once(
    spool: Path, settings: Settings, outbox: MemoryTransport
) -> None:
    with mailspool.request(settings=settings):
        mailspool.send_mail("user@example.com", "Reset your password", "<p>link</p>", priority=True)
        assert [m.envelope_recipients for m in outbox.outbox] == [("user@example.com",)]
    assert batches(spool) == []


class TestClassifier:
    @pytest.mark.parametrize(
        ("kwargs", "priority", "subject", "to"),
        [
            ({}, False, "Hello", ("a@example.com",)),
            ({"headers": {"X-Mailspool-Priority": "now"}}, True, "Hello", ("a@example.com",)),
            (
                {"headers": "X-Mailspool-Priority: deferred", "priority": True},
                True,
                "Hello",
                ("a@example.com",),
            ),
            (
                {"subject": "[Non-priority!] Hello", "headers": {"X-Mailspool-Priority": "now"}},
                True,
                "Hello",
                ("a@example.com",),
            ),
            ({"subject": "[Non-priority!] Hello"}, False, "Hello", ("a@example.com",)),
        ],
    )
    def test_markers_decide_in_order_and_are_removed(
        self,
        spool: Path,
        outbox: MemoryTransport,
        monkeypatch: pytest.MonkeyPatch,
        kwargs: dict[str, object],
        priority: bool,
        subject: str,
        to: tuple[str, ...],
    ) -> None:
        monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
        monkeypatch.setenv("MAILSPOOL_PRIORITY_TRANSPORT", "memory:priority")
        monkeypatch.setenv("MAILSPOOL_DEFAULT_PRIORITY", "now")
        args = {"subject": "Hello", "priority": None, "headers": None} | kwargs
        if not kwargs.get("headers") and "subject" not in kwargs and "priority" not in kwargs:
            args["priority"] = False
        mailspool.send_mail(
            "a@example.com", args["subject"], "m", args["headers"], priority=args["priority"]
        )  # type: ignore[arg-type]
        if priority:
            [sent] = outbox.outbox
            assert sent.message.subject == subject
            assert sent.message.header("X-Mailspool-Priority") is None
        else:
            [written] = batches(spool)
            message = written.message(0)
            assert (message.subject, message.to) == (subject, to)
            assert "headers" not in written.meta

    def test_marker_recipient_is_removed(
        self, spool: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
        monkeypatch.setenv("MAILSPOOL_DEFAULT_PRIORITY", "now")
        monkeypatch.setenv("MAILSPOOL_MARKER_RECIPIENT", "async@example.com")
        mailspool.send_mail(["a@example.com", "Async <async@example.com>"], "s", "m")
        # the marker in another spelling of the same mailbox is the marker too
        mailspool.send_mail(["b@example.com", '"ASYNC"@Example.COM'], "s", "m")
        written = batches(spool)
        assert sorted(batch.message(0).to for batch in written) == [
            ("a@example.com",),
            ("b@example.com",),
        ]

    def test_bad_priority_header_is_refused(self, settings: Settings) -> None:
        with (
            mailspool.request(settings=settings),
            pytest.raises(InvalidMessage, match="now' or 'deferred"),
        ):
            mailspool.send_mail("a@example.com", "s", "m", {"X-Mailspool-Priority": "soon"})


class TestHeadersLikeWpMail:
    def test_a_wp_mail_header_string(self, spool: Path, settings: Settings) -> None:
        headers = (
            "From: Jürgen Groß <j@example.de>\r\nCc: c1@example.com, C Two <c2@example.com>\r\n"
            "Bcc: hidden@example.com\r\nReply-To: r@example.com\r\n"
            "Content-Type: text/plain; charset=ISO-8859-1\r\nX-Campaign: spring\r\n"
        )
        with mailspool.request(settings=settings):
            mailspool.send_mail("a@example.com, b@example.com", "Subject", "body", headers)
        [written] = batches(spool)
        message = written.message(0)
        assert message.sender == "Jürgen Groß <j@example.de>"
        assert message.to == ("a@example.com", "b@example.com")
        assert message.cc == ("c1@example.com", "C Two <c2@example.com>")
        assert message.bcc == ("hidden@example.com",)
        assert message.reply_to == ("r@example.com",)
        assert (message.text, message.html, message.charset) == ("body", None, "iso-8859-1")
        assert message.headers == (("X-Campaign", "spring"),)


class TestBadInput:
    @pytest.mark.parametrize(
        ("call", "field"),
        [
            (lambda: mailspool.send_mail([], "s", "m"), "to"),
            (lambda: mailspool.send_mail("not an address", "s", "m"), "to"),
            (
                lambda: mailspool.send_mail("a@example.com", "s\r\nBcc: x@evil.example", "m"),
                "subject",
            ),
            (
                lambda: mailspool.send_mail(
                    "a@example.com", "s", "m", {"X-A": "v\r\nBcc: x@evil.example"}
                ),
                "X-A",
            ),
            (
                lambda: mailspool.send_mail(
                    "a@example.com", "s", "m", {"From": "a@example.com\nBcc: x@evil.example"}
                ),
                "From",
            ),
            (
                lambda: mailspool.send_mail("a@example.com", "s", "m", None, ["/no/such/file.pdf"]),
                "attachments",
            ),
            (
                lambda: mailspool.send_mail("a@example.com", "s", "m", "this is no header"),
                "headers",
            ),
        ],
    )
    def test_a_clear_error_and_nothing_written(
        self, spool: Path, settings: Settings, call: object, field: str
    ) -> None:
        with mailspool.request(settings=settings) as scope:
            mailspool.send_mail("good@example.com", "kept", "m")
            with pytest.raises(InvalidMessage) as caught:
                call()  # type: ignore[operator]
            assert len(scope) == 1
        assert caught.value.field is not None
        assert (
            field.lower() in caught.value.field.lower()
            or field.lower() in str(caught.value).lower()
        )
        [written] = batches(spool)
        assert len(written) == 1  # the bad e-mail was refused; the good one kept

    def test_unknown_store_scheme(self) -> None:
        with pytest.raises(ConfigurationError, match=r"ftp://x.*file://DIR"):
            open_store("ftp://x")

    def test_missing_attachment_names_the_path(self, settings: Settings) -> None:
        with (
            mailspool.request(settings=settings),
            pytest.raises(InvalidMessage, match=r"/no/such/file\.pdf"),
        ):
            mailspool.send_mail("a@example.com", "s", "m", attachments=["/no/such/file.pdf"])


class TestScopeEnd:
    def test_an_exception_can_write(self, spool: Path, settings: Settings) -> None:
        def view() -> None:
            with mailspool.request(settings=settings, on_error="write"):
                mailspool.send_mail("a@example.com", "s", "m")
                raise RuntimeError("view failed")

        with pytest.raises(RuntimeError):
            view()
        assert [len(b) for b in batches(spool)] == [1]

    def test_an_exception_discards_by_default(self, spool: Path, settings: Settings) -> None:
        def view() -> None:
            with mailspool.request(settings=settings):
                mailspool.send_mail("a@example.com", "s", "m")
                raise RuntimeError("view failed")

        with pytest.raises(RuntimeError):
            view()
        assert batches(spool) == []

    def test_a_5xx_response_is_a_failed_request(self, spool: Path, settings: Settings) -> None:
        with mailspool.request(settings=settings) as scope:
            mailspool.send_mail("a@example.com", "s", "m")
            scope.respond(503)
        assert batches(spool) == []
        with mailspool.request(settings=settings) as scope:
            mailspool.send_mail("a@example.com", "s", "m")
            scope.respond(404)  # the client's mistake, not a failed request
        assert [len(b) for b in batches(spool)] == [1]

    def test_a_nested_scope_joins_the_outer_one(self, spool: Path, settings: Settings) -> None:
        with mailspool.request(settings=settings) as outer:
            mailspool.send_mail("a@example.com", "s", "m")
            with mailspool.request(settings=settings):
                mailspool.send_mail("b@example.com", "s", "m")
            assert batches(spool) == []
        assert len(outer.keys) == 1
        assert [len(b) for b in batches(spool)] == [2]

    def test_async_with(self, spool: Path, settings: Settings) -> None:
        async def view() -> None:
            async with mailspool.request(settings=settings):
                mailspool.send_mail("a@example.com", "s", "m")
                await asyncio.sleep(0)
                mailspool.send_mail("b@example.com", "s", "m")

        asyncio.run(view())
        assert [len(b) for b in batches(spool)] == [2]

    def test_bad_on_error(self, settings: Settings) -> None:
        with pytest.raises(ConfigurationError, match="on_error"):
            mailspool.request(settings=settings, on_error="maybe")


def test_threads_and_tasks_never_mix_their_mail(spool: Path, settings: Settings) -> None:
    """8 threads and 50 asyncio tasks, each in its own scope, 5000 e-mails in all."""
    per_thread, per_task = 250, 60  # 8 * 250 + 50 * 60 = 5000
    barrier = threading.Barrier(9)

    def thread_request(number: int) -> None:
        barrier.wait()
        with mailspool.request(settings=settings):
            for i in range(per_thread):
                mailspool.send_mail(f"t{number}-{i}@example.com", f"scope thread-{number}", "m")

    async def task_request(number: int) -> None:
        async with mailspool.request(settings=settings):
            for i in range(per_task):
                mailspool.send_mail(f"a{number}-{i}@example.com", f"scope task-{number}", "m")
                if i % 10 == 0:
                    await asyncio.sleep(0)  # let the other tasks interleave

    async def all_tasks() -> None:
        await asyncio.gather(*(task_request(n) for n in range(50)))

    threads = [threading.Thread(target=thread_request, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    barrier.wait()
    asyncio.run(all_tasks())
    for thread in threads:
        thread.join()

    files = batches(spool)
    assert len(files) == 58  # one write per scope: none lost, none merged
    seen: set[str] = set()
    for written in files:
        subjects = {written.message(i).subject for i in range(len(written))}
        assert len(subjects) == 1  # no e-mail of another scope in this file
        scope_name = subjects.pop().removeprefix("scope ")
        expected = per_thread if scope_name.startswith("thread") else per_task
        addresses = {written.message(i).to[0] for i in range(len(written))}
        assert len(addresses) == len(written) == expected
        kind, number = scope_name.split("-")
        prefix = ("t" if kind == "thread" else "a") + number + "-"
        assert all(a.startswith(prefix) for a in addresses)
        seen |= addresses
    assert len(seen) == 5000


def test_files_are_private(spool: Path, settings: Settings) -> None:
    with mailspool.request(settings=settings) as scope:
        mailspool.send_mail("a@example.com", "s", "m")
    path = spool / scope.keys[0]
    assert path.stat().st_mode & 0o777 == 0o600
    assert spool.stat().st_mode & 0o777 == 0o700
    assert orjson.loads(path.read_bytes())["version"] == 1


def test_a_from_with_two_addresses_is_refused_not_cut(tmp_path: Path) -> None:
    settings = Settings.load(store=f"file://{tmp_path / 'spool'}")
    with (
        pytest.raises(InvalidMessage, match="From names 2 addresses") as info,
        mailspool.request(settings=settings),
    ):
        mailspool.send_mail("a@example.com", "s", "m", "From: a@example.com, b@example.com")
    assert info.value.field == "From"
