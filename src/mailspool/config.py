"""Every setting, defined once, checked in one place, and one lookup in a documented order.

Each field of ``Settings`` is one row of the settings table: its name (the variable is
``MAILSPOOL_<NAME>``), its rule (what it accepts), its default, one line of help and, for
the settings a worker uses, the ``WorkerOptions`` field it fills. ``docs/configuration.md``
and ``mailspool --help`` are generated from these rows (``mailspool.settings_docs``).

For every setting the first of these that gives a value wins:

1. an explicit argument (``Settings.load(store=...)``, a CLI flag);
2. framework settings passed in by the glue (Django's ``MAILSPOOL`` dict, Flask's
   ``app.config["MAILSPOOL_..."]``), as a mapping keyed by the setting's name;
3. the environment variable ``MAILSPOOL_<NAME>``;
4. the default.

Every value, whatever its source and whether text or a Python value, passes its row's
``Rule``: a bad one raises ``SettingError`` (a ``ConfigurationError``) naming the setting
as its source spells it and the rule ("max_rate must be a finite number > 0, got 0").
A number setting never takes NaN or an infinity. An unknown name given as an argument or
in a framework's settings raises, with the closest known name; an unknown ``MAILSPOOL_*``
variable is logged once, with the closest known name, since the environment is shared.

Nothing is read at import time: ``Settings.load()`` reads the environment when called,
and is meant to be called once at each entry point (the CLI, the framework glue, the
Lambda handler, ``send_mail`` outside a framework), which passes the settings down.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mailspool.headers import Priority
from mailspool.retention import DEFAULT_RETENTION, Retention
from mailspool.setting_rules import (
    _ANY_SECRET,
    _ATTEMPTS,
    _DAYS,
    _FOLDER,
    _KEYS,
    _RETENTION,
    _SECRET,
    _SHARE,
    POLL_INTERVAL,
    Rule,
    SettingError,
    _any_text,
    _names,
    _non_negative_int,
    _one_of,
    _optional_rate,
    _positive_int,
    _positive_seconds,
    _seconds,
    _text,
)
from mailspool.tenant_options import TenantOptions, parse_tenants
from mailspool.webhook_rules import ALL_EVENTS, WEBHOOK_EVENTS, WEBHOOK_SECRET, WEBHOOK_URL

__all__ = [
    "POLL_INTERVAL",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "SETTINGS_HELP",
    "Rule",
    "Setting",
    "SettingError",
    "Settings",
    "closest",
    "data_dir",
    "default_of",
]

log = logging.getLogger("mailspool")
_PREFIX = "MAILSPOOL_"
_TENANTS = Rule(
    "a JSON object of SES tenant names (1 to 64 ASCII letters, digits, _ or -) to objects "
    "of configuration_set (a name), max_rate (> 0), daily_cap (a whole number >= 1) and "
    "suppression (account or tenant)",
    parse_tenants,
)


#: Computes a default from the settings resolved before it (in table order).
Default = Callable[[Mapping[str, Any]], Any]


def data_dir() -> Path:
    """Where the embedded default keeps its spool and outbox: ``$XDG_DATA_HOME/mailspool``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailspool"


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table (see the module docstring)."""

    name: str
    parse: Rule
    default: Default
    shown: str
    help: str
    worker_option: str | None = None

    @property
    def env(self) -> str:
        """The environment variable: ``MAILSPOOL_<NAME>``."""
        return f"{_PREFIX}{self.name.upper()}"

    @property
    def rule(self) -> str:
        """What it accepts, in words (its column in the docs' table)."""
        return self.parse.words


def setting(
    parse: Rule,
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
    transport: str = setting(_text, _under_data_dir("outbox"), shown="`file://$XDG_DATA_HOME/mailspool/outbox`", help="how the worker delivers: `smtp://[user:pass@]host[:port]?starttls=auto|always|never&timeout=30&verify=true&max_connections=N&pipelining=true` (the pool follows the concurrency unless `max_connections` is given; a worker's sender threads drive it, plain or TLS alike), `smtps://...`, `ses://REGION?configuration_set=NAME&bulk=true` (e-mails of a batch that share their content go 50 to a `SendBulkEmail`; `bulk=false`: one `SendEmail` each), `file://DIR` (one `.eml` per message), `console:`, `memory:NAME`, or a failover chain `failover(URL URL ...)?retry_period=60`: the transports in order, separated by spaces; the next is tried only when the previous provably took nothing (refused, TLS, 421/454, throttling, paused), and one that did not is skipped for `retry_period` seconds")
    priority_transport: str = setting(_text, lambda resolved: resolved["transport"], shown="`MAILSPOOL_TRANSPORT`", help="how priority e-mail is sent at once; the same URLs as `MAILSPOOL_TRANSPORT`, a failover chain included")
    priority_outage: str = setting(_one_of("queue", "raise"), "queue", shown="`queue`", help="a priority e-mail the priority transport cannot take for now (connection refused, timeout, TLS failure, 4xx, throttling): `queue` writes it to the store as a batch the worker delivers first, and `send_mail` returns True; `raise` raises the `TransientError`. A refusal of the e-mail itself (5xx, invalid) always raises")
    emails_per_file: int = setting(_non_negative_int, 0, shown="`0` (off)", help="the article's `EMAILS_PER_FILE`: split a request's groups into files of at most N")
    max_rate: float | None = setting(_optional_rate, None, shown="unlimited (SES: the account's `MaxSendRate`)", help="e-mails per second, counting every recipient as SES does, shared by every sender thread; unset, the transport's own limit")
    priority_share: float = setting(_SHARE, 0.1, shown="`0.1`", help="the share of the provider's limits the worker leaves to priority mail, sent at once by `send_mail`: the worker takes at most (1 - share) of the send rate and of SES's 24-hour quota (`Max24HourSend`) ([aws](aws.md))", worker_option="priority_share")
    rate_senders: int = setting(_positive_int, 1, shown="`1`", help="workers that send at once from the same account's rate (`MAILSPOOL_MAX_RATE`, else SES's `MaxSendRate`): each takes (1 - `MAILSPOOL_PRIORITY_SHARE`) x the rate / N; on Lambda the deliver function's `ReservedConcurrency`, the one sweeper added ([aws](aws.md))")
    ses_tenants: Mapping[str, TenantOptions] = setting(_TENANTS, MappingProxyType({}), shown="none", help="per SES tenant (`send_mail(..., tenant=...)`), a JSON object: `{\"shop-eu\": {\"configuration_set\": \"eu-events\", \"max_rate\": 5, \"daily_cap\": 20000}}`: the configuration set its e-mails go with, its recipients per second and its recipients in 24 hours in each worker (deferred mail waits for its window, no attempt spent); `\"suppression\": \"tenant\"` keeps its bounces and complaints from stopping other tenants' mail (default `account`) ([aws](aws.md#ses-tenants))")
    concurrency: int = setting(_positive_int, 32, shown="`32`", help="e-mails in flight in one worker; one SMTP connection each", worker_option="concurrency")
    ledger_commit_ms: int | None = setting(_non_negative_int, None, shown="`1000` on S3 (a PUT costs money), `0` elsewhere", help="milliseconds between the ledger's commits: outcomes recorded meanwhile are written together and a crash can repeat the e-mails sent in the last T ms ([guarantees](guarantees.md)); `0`: each sender waits for the commit once `concurrency` outcomes are waiting", worker_option="ledger_commit_ms")
    max_attempts: int = setting(_ATTEMPTS, 5, shown="`5`", help="attempts for a transient failure before the e-mail fails (retryable)", worker_option="max_attempts")
    retry_base: float = setting(_positive_seconds, 1.0, shown="`1` (second)", help="the first retry's delay; each retry doubles it, with jitter, up to a minute", worker_option="retry_base")
    queue_lifetime: float = setting(_positive_seconds, 432000.0, shown="`432000` (5 days, as Postfix's `maximal_queue_lifetime`)", help="seconds from a batch's creation during which the worker keeps trying its e-mails through transient failures and outages; past it an e-mail not yet sent fails (retryable) ([guarantees](guarantees.md))", worker_option="queue_lifetime")
    default_priority: str = setting(_one_of(*(p.value for p in Priority)), Priority.DEFERRED.value, shown="`deferred`", help="`now` or `deferred` when nothing marks an e-mail")
    sender: str = setting(_text, "mailspool <mailspool@localhost>", shown="`mailspool <mailspool@localhost>`", help="From when an e-mail has none (the article's site name and admin address)", worker_option="default_sender")
    subject_marker: str = setting(_any_text, "[Non-priority!]", shown="`[Non-priority!]`", help="a subject prefix marking an e-mail deferred; removed before sending; empty turns it off")
    marker_recipient: str = setting(_any_text, "", shown="none", help="an address marking an e-mail deferred when among its recipients; removed")
    on_error: str = setting(_one_of("write", "discard"), "discard", shown="`discard`", help="what a request scope does with its deferred e-mails when the request failed (it raised, or answered 5xx), in every framework: `discard` them, or `write` them anyway ([frameworks](frameworks.md))")
    write_timeout: float = setting(_positive_seconds, 2.0, shown="`2` (seconds)", help="seconds a request may spend writing its batches to the store, all attempts together, before they go to the fallback store ([frameworks](frameworks.md))")
    write_attempts: int = setting(_positive_int, 3, shown="`3`", help="store write attempts within `MAILSPOOL_WRITE_TIMEOUT` before the fallback")
    fallback_store: str = setting(_text, _under_data_dir("fallback"), shown="`file://$XDG_DATA_HOME/mailspool/fallback`", help="where a request's batches go when the store fails; `mailspool worker` moves them back")
    encryption_key: tuple[str, ...] = setting(_KEYS, (), shown="none: files in clear", help="seal batch files, blobs and every record at rest (AES-256-GCM, a fresh data key per file) with these keys: the first seals, all open, so a new key goes first and old ones stay while their files remain; a key is 32 bytes in URL-safe base64, `file:PATH` (a file holding one) or `kms:KEY-ARN` ([security](security.md#encryption-at-rest))")
    serve_token: str | None = setting(_SECRET, None, shown="none", help="the token `mailspool serve` asks for on every page but the public endpoints; required to listen on a non-loopback address ([dashboard](dashboard.md))")
    allowed_hosts: frozenset[str] = setting(_names, frozenset(), shown="none: loopback names only", help="host names (or addresses), comma-separated, that `mailspool serve` and the mounted dashboard answer to beside `localhost`, `127.0.0.1` and `[::1]`; a request naming any other `Host` gets a 400, and a form's `Origin` must be one of them (DNS rebinding; [dashboard](dashboard.md)); `*`: any (the application around checks `Host`)")
    middleware_mode: str = setting(_one_of("before", "after"), "before", shown="`before`", help="Flask (the WSGI and ASGI middleware take `mode=`): write `before` the response completes (durable) or `after` it was sent")
    deadline_margin: float | None = setting(_seconds, None, shown="a quarter of the time left, at most 5 s", help="Lambda: seconds before the deadline at which the handler hands the rest to a continuation batch ([aws](aws.md))")
    metrics_namespace: str = setting(_text, "mailspool", shown="`mailspool` (the template: `mailspool/<stack>`)", help="Lambda: the CloudWatch namespace of the handler's Embedded Metric Format lines ([aws](aws.md))")
    sweep_after: float = setting(_seconds, 300.0, shown="`300` (seconds)", help="the sweeper re-drives queued batches older than this whose claim is free")
    idempotency_window: float = setting(_positive_seconds, 86400.0, shown="`86400` (24 hours)", help="seconds during which an idempotency `key` given to `send_mail` is accepted once ([operations](operations.md))")
    alert_after: float = setting(_seconds, 3600.0, shown="`3600` (seconds)", help="the sweeper reports e-mails waiting longer than this")
    retention: Retention = setting(_RETENTION, DEFAULT_RETENTION, shown="`finished=14d,failed=90d,events=180d`", help="how long `mailspool gc` keeps finished batches (`done/`, `ledger/`), failed e-mails (`failed/`) and feedback events (`events/`, `history/`, `events-seen/`, `complaints-bounces/`); a state left out is kept for ever; pending, scheduled, claimed, paused and fallback records never expire ([operations](operations.md#retention))")  # noqa: RUF009 - Retention is frozen

    sns_topics: frozenset[str] = setting(_names, frozenset(), shown="none (the endpoint answers 404)", help="SNS topic ARNs, comma-separated, whose SES events `POST /events/ses` accepts ([feedback](feedback.md))")
    unsubscribe_url: str = setting(_any_text, "", shown="none", help="the `https://` URL of the one-click unsubscribe endpoint; with the secret, deferred e-mails carry `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058)")
    unsubscribe_secret: str = setting(_ANY_SECRET, "", shown="none", help="the key (16 bytes or more) that signs each recipient's unsubscribe token (HMAC-SHA256)")
    unsubscribe_mailto: str = setting(_any_text, "", shown="none", help="an address offered beside the URL in `List-Unsubscribe`")
    bounce_address: str = setting(_any_text, "", shown="none (no VERP)", help="with the secret, the worker's SMTP sends go with the envelope sender `LOCAL+<batch>.<index>.<signature>@DOMAIN` (VERP), so `mailspool bounces` knows what a returned bounce is about ([feedback](feedback.md))")
    bounce_secret: str = setting(_any_text, "", shown="none", help="the key (16 bytes or more) that signs each VERP envelope sender (HMAC-SHA256); a bounce that does not verify is rejected")
    soft_bounce_limit: int = setting(_positive_int, 3, shown="`3`", help="soft bounces within `MAILSPOOL_SOFT_BOUNCE_DAYS` that suppress an address")
    soft_bounce_days: float = setting(_DAYS, 7.0, shown="`7`", help="the window in which soft bounces are counted")
    on_event: str = setting(_any_text, "", shown="none", help="`package.module:function` called once per SES event (beside `mailspool.feedback.hooks.register`)")
    rate_guard: str = setting(_one_of("off", "warn", "hold"), "off", shown="`off`", help="`warn`: the worker logs a warning while the bounce rate passes 5% or the complaint rate 0.1% (SES's review levels); `hold`: it also keeps deferred mail queued meanwhile (batches end `paused`)")
    rate_sends: int = setting(_positive_int, 1000, shown="`1000`", help="the last N sends over which `status` and the guard count the rates")
    webhook_url: str = setting(WEBHOOK_URL, "", shown="none (no webhooks)", help="the `http(s)://` URL to which every e-mail's state changes are POSTed as signed JSON events (Standard Webhooks), through an outbox in the store ([webhooks](webhooks.md))")
    webhook_secret: str = setting(WEBHOOK_SECRET, "", shown="none", help="the Standard Webhooks secret, `whsec_<base64>`, that signs each event; required with `MAILSPOOL_WEBHOOK_URL`")
    webhook_events: frozenset[str] = setting(WEBHOOK_EVENTS, ALL_EVENTS, shown="`all`", help="the events written to the outbox, comma-separated: queued, sent, failed, deferred, bounced, complained, unsubscribed, suppressed, cancelled")
    webhook_retention: float = setting(_DAYS, 3.0, shown="`3` (days)", help="how long an event the receiver has not answered with a 2xx is retried (with growing delays, at most an hour apart) before it is set aside in `webhooks/failed/`")
    webhook_timeout: float = setting(_positive_seconds, 15.0, shown="`15` (seconds, as the Standard Webhooks specification recommends)", help="seconds to connect to the receiver and to read its answer, for each event")

    attachment_root: str | None = setting(_FOLDER, None, shown="none: no path is read", help="the only folder from which a version-0 path attachment (`\"attachments\": [\"/path\"]`) may be read: a regular file whose real path is inside it, opened with no link followed; any other path fails its e-mail ([security](security.md))")
    allowed_senders: str = setting(_any_text, "", shown="any sender", help="addresses and `@domain`s, comma-separated: an e-mail whose From or Sender is not among them fails unsent, on the worker and the priority path (Reply-To is free)")
    max_batch_bytes: int = setting(_positive_int, 33554432, shown="`33554432` (32 MiB)", help="largest batch file the worker reads; its size is checked before its body is read; a larger file is quarantined unread")
    max_emails_per_batch: int = setting(_positive_int, 10_000, shown="`10000`", help="most e-mails in one batch file; more: quarantined")
    max_recipients: int = setting(_positive_int, 50, shown="`50` (SES's own limit)", help="most recipients (to + cc + bcc) of one e-mail")
    max_headers: int = setting(_positive_int, 50, shown="`50`", help="most extra headers of one e-mail")
    max_header_length: int = setting(_positive_int, 2_000, shown="`2000`", help="longest extra header, name plus value, in characters")
    max_subject_length: int = setting(_positive_int, 998, shown="`998`", help="longest subject, in characters")
    max_attachments: int = setting(_positive_int, 20, shown="`20`", help="most attachments of one e-mail")
    max_attachment_bytes: int = setting(_positive_int, 10485760, shown="`10485760` (10 MiB)", help="largest attachment (inline, blob or path); a larger blob or file is not read")
    max_message_bytes: int = setting(_positive_int, 41943040, shown="`41943040` (40 MiB, SES's limit)", help="largest e-mail as sent, estimated before rendering (base64 counted); the sender threads hold at most twice this at once; an SMTP server's advertised `SIZE` is a further limit")
    # fmt: on

    @classmethod
    def load(
        cls,
        framework: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        framework_key: Callable[[str], str] | None = None,
        glue: Collection[str] = (),
        **explicit: Any,
    ) -> Settings:
        """The settings from arguments, framework settings, environment and defaults,
        each checked by its row's rule; the first problem raises ``SettingError``, whose
        ``problems`` lists every one.

        ``framework_key`` spells a setting's name as the framework's user writes it
        (``MAILSPOOL['STORE']``) in errors; ``glue`` names (in the same form as the
        mapping's keys) the glue reads itself: not settings, but not unknown either.
        """
        resolved, problems = _resolve(framework, environ, framework_key, glue, explicit)
        if problems:
            problems[0].problems = tuple(problems)
            raise problems[0]
        return cls(**resolved)

    def worker_options(self) -> dict[str, Any]:
        """The ``WorkerOptions`` fields these settings fill, by field name."""
        return {row.worker_option: getattr(self, row.name) for row in SETTINGS if row.worker_option}


def _resolve(
    framework: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None,
    framework_key: Callable[[str], str] | None,
    glue: Collection[str],
    explicit: Mapping[str, Any],
) -> tuple[dict[str, Any], list[SettingError]]:
    """Every setting's value (its default where its value was refused) and the problems."""
    env = os.environ if environ is None else environ
    given = {name: value for name, value in (framework or {}).items() if name not in glue}
    spell = framework_key or (lambda name: name)
    problems = _unknown(explicit, lambda name: name) + _unknown(given, spell, glue)
    _warn_unknown(env)
    resolved: dict[str, Any] = {}
    for row in SETTINGS:
        try:
            resolved[row.name] = _lookup(row, explicit, given, env, resolved, spell)
        except SettingError as err:
            problems.append(err)
            resolved[row.name] = row.default(resolved)
    return resolved, problems


def _lookup(
    row: Setting,
    explicit: Mapping[str, Any],
    framework: Mapping[str, Any],
    env: Mapping[str, str],
    resolved: Mapping[str, Any],
    spell: Callable[[str], str],
) -> Any:
    """The first value given (None: not given), checked by the row's rule and named as
    its source names it; else the default, which is not checked (the table's own)."""
    if explicit.get(row.name) is not None:
        return row.parse(row.name, explicit[row.name])
    if framework.get(row.name) is not None:
        return row.parse(spell(row.name), framework[row.name])
    raw = env.get(row.env)
    if raw is not None and raw.strip():
        return row.parse(row.env, raw.strip())
    return row.default(resolved)


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to a misspelt one (``STOER``: ``STORE``), if any is close."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _unknown_error(name: str, known: Iterable[str], spell: Callable[[str], str]) -> SettingError:
    near = closest(name, known)
    hint = f"did you mean {spell(near)}?" if near else "see docs/configuration.md"
    return SettingError(
        f"unknown mailspool setting {spell(name)}; {hint}", setting=spell(name), hint=hint
    )


def _unknown(
    given: Mapping[str, Any], spell: Callable[[str], str], glue: Collection[str] = ()
) -> list[SettingError]:
    """An error for each name that is no setting (nor the glue's), with the closest."""
    known = [*(row.name for row in SETTINGS), *glue]
    return [_unknown_error(name, known, spell) for name in given if name not in _NAMES_KNOWN]


#: the ``MAILSPOOL_*`` variables already warned about: each is logged once per process
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_unknown(env: Mapping[str, str]) -> None:
    """Log each unknown ``MAILSPOOL_*`` variable once, with the closest known name: a
    misspelt variable would otherwise be ignored silently. Only a warning:
    the environment is shared with other programs, and mailspool's own tools."""
    for name in env:
        if not name.startswith(_PREFIX) or name in _ENVS_KNOWN:
            continue
        with _warned_lock:  # two requests loading at once still warn once
            if name in _warned:
                continue
            _warned.add(name)
        near = closest(name, _ENVS_KNOWN)
        log.warning(
            "unknown environment variable %s is ignored%s",
            name,
            f"; did you mean {near}?" if near else "",
        )


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

#: The rows by setting name (``max_rate``).
SETTINGS_BY_NAME: dict[str, Setting] = {row.name: row for row in SETTINGS}
_NAMES_KNOWN = frozenset(SETTINGS_BY_NAME)
_ENVS_KNOWN = frozenset(row.env for row in SETTINGS)

#: Each setting's environment variable and its one line of help.
SETTINGS_HELP: dict[str, str] = {row.env: row.help for row in SETTINGS}


def default_of(name: str) -> Any:
    """A setting's default (for defaults that depend on no other setting)."""
    return SETTINGS_BY_NAME[name].default({})
