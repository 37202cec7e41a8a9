"""Every setting, defined once, and one lookup in a documented order.

Each field of ``Settings`` is one row of the settings table: its name (the variable is
``MAILSPOOL_<NAME>``), its type and parser, its default, one line of help and, for the
settings a worker uses, the ``WorkerOptions`` field it fills. ``docs/configuration.md``
and ``mailspool --help`` are generated from these rows (``mailspool.settings_docs``).

For every setting the first of these that gives a value wins:

1. an explicit argument (``Settings.load(store=...)``, a CLI flag);
2. framework settings passed in by the glue (Django's ``MAILSPOOL`` dict, Flask's
   ``app.config["MAILSPOOL_..."]``), as a mapping keyed by the setting's name;
3. the environment variable ``MAILSPOOL_<NAME>``;
4. the default.

Nothing is read at import time: ``Settings.load()`` reads the environment when called.
A bad value raises ``ConfigurationError`` naming the variable and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mailspool.errors import ConfigurationError
from mailspool.producer.classify import Priority
from mailspool.spool.limits import Limits

__all__ = ["SETTINGS", "SETTINGS_HELP", "Setting", "Settings", "data_dir", "default_of"]

_LIMITS = Limits()  # the limits' defaults: one source, the limits themselves

#: Turns a text value into the setting's type; raises ``ConfigurationError`` naming ``name``.
Parser = Callable[[str, str], Any]
#: Computes a default from the settings resolved before it (in table order).
Default = Callable[[Mapping[str, Any]], Any]


def data_dir() -> Path:
    """Where the embedded default keeps its spool and outbox: ``$XDG_DATA_HOME/mailspool``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailspool"


# -- parsers: (variable name, text) -> value -----------------------------------------------------


def _text(name: str, value: str) -> str:
    if not value.strip():
        raise ConfigurationError(f"{name} must not be empty")
    return value


def _any_text(name: str, value: str) -> str:
    return value


def _non_negative_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ConfigurationError(f"{name} must be 0 or more, not {number}")
    return number


def _positive_int(name: str, value: str) -> int:
    number = _non_negative_int(name, value)
    if number == 0:
        raise ConfigurationError(f"{name} must be at least 1")
    return number


def _number(name: str, value: str, unit: str = "") -> float:
    """A number; ``unit`` (`` seconds``) only words the error."""
    try:
        return float(value)
    except ValueError:
        kind = f"a number of{unit}" if unit else "a number"
        raise ConfigurationError(f"{name} must be {kind}, not {value!r}") from None


def _seconds(name: str, value: str) -> float:
    seconds = _number(name, value, " seconds")
    if seconds < 0:
        raise ConfigurationError(f"{name} must be 0 seconds or more, not {value!r}")
    return seconds


def _positive_number(name: str, value: str, unit: str = "") -> float:
    number = _number(name, value, unit)
    if number <= 0:
        raise ConfigurationError(f"{name} must be more than 0{unit}, not {value!r}")
    return number


def _positive_seconds(name: str, value: str) -> float:
    return _positive_number(name, value, " seconds")


def _names(name: str, value: str) -> frozenset[str]:
    """A comma-separated list (of SNS topic ARNs, say)."""
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _optional_rate(name: str, value: str) -> float | None:
    if value.lower() in ("", "none", "unlimited"):
        return None
    try:
        rate = float(value)
    except ValueError:
        raise ConfigurationError(
            f"{name} must be e-mails per second (a number), not {value!r}"
        ) from None
    if rate <= 0:
        raise ConfigurationError(f"{name} must be more than 0 (or 'unlimited'), not {value!r}")
    return rate


def _one_of(*words: str) -> Parser:
    quoted = [repr(word) for word in words]
    allowed = ", ".join(quoted[:-1]) + " or " + quoted[-1]

    def parse(name: str, value: str) -> str:
        word = value.lower()
        if word not in words:
            raise ConfigurationError(f"{name} must be {allowed}, not {value!r}")
        return word

    return parse


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table (see the module docstring)."""

    name: str
    parse: Parser
    default: Default
    shown: str
    help: str
    worker_option: str | None = None

    @property
    def env(self) -> str:
        """The environment variable: ``MAILSPOOL_<NAME>``."""
        return f"MAILSPOOL_{self.name.upper()}"


def setting(
    parse: Parser,
    default: Any,
    *,
    shown: str,
    help: str,
    worker_option: str | None = None,
) -> Any:
    """A field of ``Settings``: one row of the table. ``default`` is a value, or a
    ``Default`` callable given the settings before it; ``shown`` is how docs print it."""
    compute: Default = default if callable(default) else (lambda _resolved: default)
    row = Setting("", parse, compute, shown, help, worker_option)
    return field(metadata={"setting": row})


def _under_data_dir(folder: str) -> Default:
    return lambda _resolved: f"file://{data_dir() / folder}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting; ``docs/configuration.md`` is generated from these rows."""

    # One row a setting: parser, default, how the docs show the default, help, and the
    # WorkerOptions field it fills. Kept one line each, as a table (hence fmt: off).
    # fmt: off
    store: str = setting(_text, _under_data_dir("spool"), shown="`file://$XDG_DATA_HOME/mailspool/spool`", help="where batches are written: `file://DIR` (`file:///abs`, `file://rel`), `memory:NAME`, `s3://BUCKET/PREFIX`")
    transport: str = setting(_text, _under_data_dir("outbox"), shown="`file://$XDG_DATA_HOME/mailspool/outbox`", help="how the worker delivers: `smtp://[user:pass@]host[:port]?starttls=auto|always|never&timeout=30&verify=true&max_connections=N&pipelining=true` (the pool follows the concurrency unless `max_connections` is given; a worker's sender threads drive it, plain or TLS alike), `smtps://...`, `ses://REGION?configuration_set=NAME&bulk=true` (e-mails of a batch that share their content go 50 to a `SendBulkEmail`; `bulk=false`: one `SendEmail` each), `file://DIR` (one `.eml` per message), `console:`, `memory:NAME`")
    priority_transport: str = setting(_text, lambda resolved: resolved["transport"], shown="`MAILSPOOL_TRANSPORT`", help="how priority e-mail is sent at once")
    emails_per_file: int = setting(_non_negative_int, 0, shown="`0` (off)", help="the article's `EMAILS_PER_FILE`: split a request's groups into files of at most N")
    max_rate: float | None = setting(_optional_rate, None, shown="unlimited (SES: the account's `MaxSendRate`)", help="e-mails per second, counting every recipient as SES does, shared by every sender (thread or coroutine); unset, the transport's own limit")
    concurrency: int = setting(_positive_int, 32, shown="`32`", help="e-mails in flight in one worker; one SMTP connection each", worker_option="concurrency")
    ledger_commit_ms: int | None = setting(_non_negative_int, None, shown="`1000` on S3 (a PUT costs money), `0` elsewhere", help="milliseconds between the ledger's commits: outcomes recorded meanwhile are written together and a crash can repeat the e-mails sent in the last T ms ([guarantees](guarantees.md)); `0`: each sender waits for the commit once `concurrency` outcomes are waiting", worker_option="ledger_commit_ms")
    max_attempts: int = setting(_positive_int, 5, shown="`5`", help="attempts for a transient failure before the e-mail fails (retryable)", worker_option="max_attempts")
    retry_base: float = setting(_positive_seconds, 1.0, shown="`1` (second)", help="the first retry's delay; each retry doubles it, with jitter, up to a minute", worker_option="retry_base")
    queue_lifetime: float = setting(_positive_seconds, 432000.0, shown="`432000` (5 days, as Postfix's `maximal_queue_lifetime`)", help="seconds from a batch's creation during which the worker keeps trying its e-mails through transient failures and outages; past it an e-mail not yet sent fails (retryable) ([guarantees](guarantees.md))", worker_option="queue_lifetime")
    default_priority: str = setting(_one_of(*(p.value for p in Priority)), Priority.DEFERRED.value, shown="`deferred`", help="`now` or `deferred` when nothing marks an e-mail")
    sender: str = setting(_text, "mailspool <mailspool@localhost>", shown="`mailspool <mailspool@localhost>`", help="From when an e-mail has none (the article's site name and admin address)", worker_option="default_sender")
    subject_marker: str = setting(_any_text, "[Non-priority!]", shown="`[Non-priority!]`", help="a subject prefix marking an e-mail deferred; removed before sending; empty turns it off")
    marker_recipient: str = setting(_any_text, "", shown="none", help="an address marking an e-mail deferred when among its recipients; removed")
    on_error: str = setting(_one_of("write", "discard"), "write", shown="`write`", help="what a request scope does with its e-mails when the request raised: `write` or `discard`")
    write_timeout: float = setting(_positive_seconds, 2.0, shown="`2` (seconds)", help="seconds a request may spend writing its batches to the store, all attempts together, before they go to the fallback store ([frameworks](frameworks.md))")
    write_attempts: int = setting(_positive_int, 3, shown="`3`", help="store write attempts within `MAILSPOOL_WRITE_TIMEOUT` before the fallback")
    fallback_store: str = setting(_text, _under_data_dir("fallback"), shown="`file://$XDG_DATA_HOME/mailspool/fallback`", help="where a request's batches go when the store fails; `mailspool worker` moves them back")
    serve_token: str | None = setting(_text, None, shown="none", help="the token `mailspool serve` asks for on every page but the public endpoints; required to listen on a non-loopback address ([dashboard](dashboard.md))")
    middleware_mode: str = setting(_one_of("before", "after"), "before", shown="`before`", help="Flask (the WSGI and ASGI middleware take `mode=`): write `before` the response completes (durable) or `after` it was sent")
    deadline_margin: float | None = setting(_seconds, None, shown="a quarter of the time left, at most 5 s", help="Lambda: seconds before the deadline at which the handler hands the rest to a continuation batch ([aws](aws.md))")
    metrics_namespace: str = setting(_text, "mailspool", shown="`mailspool` (the template: `mailspool/<stack>`)", help="Lambda: the CloudWatch namespace of the handler's Embedded Metric Format lines ([aws](aws.md))")
    sweep_after: float = setting(_seconds, 300.0, shown="`300` (seconds)", help="the sweeper re-drives queued batches older than this whose claim is free")
    idempotency_window: float = setting(_positive_seconds, 86400.0, shown="`86400` (24 hours)", help="seconds during which an idempotency `key` given to `send_mail` is accepted once ([operations](operations.md))")
    alert_after: float = setting(_seconds, 3600.0, shown="`3600` (seconds)", help="the sweeper reports e-mails waiting longer than this")

    sns_topics: frozenset[str] = setting(_names, frozenset(), shown="none (the endpoint answers 404)", help="SNS topic ARNs, comma-separated, whose SES events `POST /events/ses` accepts ([feedback](feedback.md))")
    unsubscribe_url: str = setting(_any_text, "", shown="none", help="the `https://` URL of the one-click unsubscribe endpoint; with the secret, deferred e-mails carry `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058)")
    unsubscribe_secret: str = setting(_any_text, "", shown="none", help="the key (16 bytes or more) that signs each recipient's unsubscribe token (HMAC-SHA256)")
    unsubscribe_mailto: str = setting(_any_text, "", shown="none", help="an address offered beside the URL in `List-Unsubscribe`")
    bounce_address: str = setting(_any_text, "", shown="none (no VERP)", help="with the secret, the worker's SMTP sends go with the envelope sender `LOCAL+<batch>.<index>.<signature>@DOMAIN` (VERP), so `mailspool bounces` knows what a returned bounce is about ([feedback](feedback.md))")
    bounce_secret: str = setting(_any_text, "", shown="none", help="the key (16 bytes or more) that signs each VERP envelope sender (HMAC-SHA256); a bounce that does not verify is rejected")
    soft_bounce_limit: int = setting(_positive_int, 3, shown="`3`", help="soft bounces within `MAILSPOOL_SOFT_BOUNCE_DAYS` that suppress an address")
    soft_bounce_days: float = setting(_positive_number, 7.0, shown="`7`", help="the window in which soft bounces are counted")
    on_event: str = setting(_any_text, "", shown="none", help="`package.module:function` called once per SES event (beside `mailspool.feedback.hooks.register`)")
    rate_guard: str = setting(_one_of("off", "warn", "hold"), "off", shown="`off`", help="`warn`: the worker logs a warning while the bounce rate passes 5% or the complaint rate 0.1% (SES's review levels); `hold`: it also keeps deferred mail queued meanwhile (batches end `paused`)")
    rate_sends: int = setting(_positive_int, 1000, shown="`1000`", help="the last N sends over which `status` and the guard count the rates")

    attachment_root: str | None = setting(_text, None, shown="none: no path is read", help="the only folder from which a version-0 path attachment (`\"attachments\": [\"/path\"]`) may be read: a regular file whose real path is inside it, opened with no link followed; any other path fails its e-mail ([security](security.md))")
    allowed_senders: str = setting(_any_text, "", shown="any sender", help="addresses and `@domain`s, comma-separated: an e-mail whose From or Sender is not among them fails unsent, on the worker and the priority path (Reply-To is free)")
    max_batch_bytes: int = setting(_positive_int, _LIMITS.batch_bytes, shown="`33554432` (32 MiB)", help="largest batch file the worker reads; its size is checked before its body is read; a larger file is quarantined unread")
    max_emails_per_batch: int = setting(_positive_int, _LIMITS.emails_per_batch, shown="`10000`", help="most e-mails in one batch file; more: quarantined")
    max_recipients: int = setting(_positive_int, _LIMITS.recipients, shown="`50` (SES's own limit)", help="most recipients (to + cc + bcc) of one e-mail")
    max_headers: int = setting(_positive_int, _LIMITS.headers, shown="`50`", help="most extra headers of one e-mail")
    max_header_length: int = setting(_positive_int, _LIMITS.header_length, shown="`2000`", help="longest extra header, name plus value, in characters")
    max_subject_length: int = setting(_positive_int, _LIMITS.subject_length, shown="`998`", help="longest subject, in characters")
    max_attachments: int = setting(_positive_int, _LIMITS.attachments, shown="`20`", help="most attachments of one e-mail")
    max_attachment_bytes: int = setting(_positive_int, _LIMITS.attachment_bytes, shown="`10485760` (10 MiB)", help="largest attachment (inline, blob or path); a larger blob or file is not read")
    max_message_bytes: int = setting(_positive_int, _LIMITS.message_bytes, shown="`41943040` (40 MiB, SES's limit)", help="largest e-mail as sent, estimated before rendering (base64 counted); the senders (threads or coroutines) hold at most twice this at once; an SMTP server's advertised `SIZE` is a further limit")
    # fmt: on

    @classmethod
    def load(
        cls,
        framework: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **explicit: Any,
    ) -> Settings:
        """The settings from arguments, framework settings, environment and defaults."""
        env = os.environ if environ is None else environ
        given = framework or {}
        known = {row.name for row in SETTINGS}
        unknown = sorted(set(explicit) - known) + sorted(set(given) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown mailspool setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        resolved: dict[str, Any] = {}
        for row in SETTINGS:
            resolved[row.name] = _lookup(row, explicit, given, env, resolved)
        return cls(**resolved)

    def worker_options(self) -> dict[str, Any]:
        """The ``WorkerOptions`` fields these settings fill, by field name."""
        return {row.worker_option: getattr(self, row.name) for row in SETTINGS if row.worker_option}


def _lookup(
    row: Setting,
    explicit: Mapping[str, Any],
    framework: Mapping[str, Any],
    env: Mapping[str, str],
    resolved: Mapping[str, Any],
) -> Any:
    for value in (explicit.get(row.name), framework.get(row.name)):
        if value is not None:
            return row.parse(row.env, value) if isinstance(value, str) else value
    raw = env.get(row.env)
    if raw is not None and raw.strip():
        return row.parse(row.env, raw.strip())
    return row.default(resolved)


def _rows() -> tuple[Setting, ...]:
    rows = []
    for item in fields(Settings):
        row: Setting = item.metadata["setting"]
        rows.append(
            Setting(item.name, row.parse, row.default, row.shown, row.help, row.worker_option)
        )
    return tuple(rows)


#: The settings table, in the order of the fields of ``Settings``.
SETTINGS: tuple[Setting, ...] = _rows()

#: Each setting's environment variable and its one line of help.
SETTINGS_HELP: dict[str, str] = {row.env: row.help for row in SETTINGS}


def default_of(name: str) -> Any:
    """A setting's default (for defaults that depend on no other setting)."""
    for row in SETTINGS:
        if row.name == name:
            return row.default({})
    raise KeyError(name)
