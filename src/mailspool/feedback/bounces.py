"""Bounces and complaints that come back as e-mail, read into what they report.

Three shapes, tried in this order:

- an RFC 3464 delivery status notification (``multipart/report;
  report-type=delivery-status``), read with the stdlib ``email`` package: one finding
  per recipient whose ``Action`` is ``failed``, hard when its ``Status`` is ``5.x.x``,
  soft when ``4.x.x``, with its ``Diagnostic-Code``; ``delayed``, ``delivered``,
  ``relayed`` and ``expanded`` are not bounces;
- an RFC 5965 abuse report (``report-type=feedback-report``, ARF): a complaint about
  ``Original-Rcpt-To``, else the ``To`` of the returned message;
- anything else that is not an auto-reply (``Auto-Submitted: auto-replied`` or a
  vacation notice from a person rather than a mailer daemon): GNU Mailman's
  ``flufl.bounce`` detectors, which know the non-standard bounces of many MTAs
  (``pip install mailspool[bounces]``); its permanent failures are hard, its
  temporary ones soft.

Everything here reads hostile input: nothing is fetched or executed, and a message
that cannot be read reports nothing. Verifying what a bounce claims (the VERP token)
and recording it is ``feedback.mailbox``'s part.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message as StdMessage
from email.utils import getaddresses
from typing import Any

__all__ = ["Finding", "Parsed", "parse_bounce", "read_message"]

_MAX_TEXT = 1000
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|vacation|abwesenheit)",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (subsystem|system)", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True, slots=True)
class Finding:
    """One recipient a returned message reports on."""

    recipient: str
    complaint: bool = False
    permanent: bool = False
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a returned message says: ``kind`` is ``dsn``, ``arf``, ``mta`` (found by
    ``flufl.bounce``), ``delayed``, ``auto-reply`` or ``unknown``; the addresses it was
    sent to (``Delivered-To``...) and the headers of the message it returns, where a
    VERP address or our Message-ID may be found."""

    kind: str
    findings: tuple[Finding, ...] = ()
    message_id: str = ""
    date: str = ""
    envelope: tuple[str, ...] = ()
    returned_ids: tuple[str, ...] = ()
    returned_paths: tuple[str, ...] = ()


def read_message(raw: bytes) -> StdMessage:
    """The message as the stdlib reads it (compat32: lenient with what MTAs write)."""
    return email.message_from_bytes(raw)


def parse_bounce(raw: bytes | StdMessage) -> Parsed:
    """What ``raw`` reports; see the module docstring."""
    message = read_message(raw) if isinstance(raw, bytes) else raw
    kind, findings = _read(message)
    return Parsed(
        kind,
        tuple(findings),
        message_id=_header(message, "Message-ID"),
        date=_header(message, "Date"),
        envelope=_envelope(message),
        returned_ids=tuple(_returned(message, "Message-ID")),
        returned_paths=tuple(_returned(message, "Return-Path")),
    )


def _read(message: StdMessage) -> tuple[str, list[Finding]]:
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type == "delivery-status":
            findings, delayed = _dsn(message)
            if findings:
                return "dsn", findings
            if delayed:
                return "delayed", []
            # a report that names no recipient the standard way: the MTA detectors try
        if report_type == "feedback-report":
            return "arf", list(_arf(message))
    if _is_auto_reply(message):
        return "auto-reply", []
    findings = _mta(message)
    return ("mta" if findings else "unknown"), findings


def _dsn(message: StdMessage) -> tuple[list[Finding], bool]:
    findings: list[Finding] = []
    delayed = False
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _blocks(part)[1:]:  # the first block holds the per-message fields
            action = _header(block, "Action").lower()  # some MTAs comment it, or say "error"
            if action.startswith("delayed"):
                delayed = True
            if not action.startswith(("fail", "error")):
                continue
            # Original-Recipient is the RCPT TO we gave; Final-Recipient may be an alias.
            named = _header(block, "Original-Recipient") or _header(block, "Final-Recipient")
            recipient = _address(_untyped(named))
            if not recipient:
                continue
            status = _header(block, "Status")
            diagnostic = _untyped(_header(block, "Diagnostic-Code")) or status
            found = _STATUS.search(status) or _STATUS.search(diagnostic)
            code = found.group(0) if found else status
            findings.append(
                Finding(
                    recipient,
                    permanent=not code.startswith("4"),  # failed without a 4.x.x: hard
                    status=code,
                    diagnostic=_clean(diagnostic),
                )
            )
    return findings, delayed


def _arf(message: StdMessage) -> Iterator[Finding]:
    kind = ""
    recipients: list[str] = []
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _feedback_fields(part)
            kind = next((v for k, v in fields if k == "feedback-type"), kind)
            recipients += [_address(v) for k, v in fields if k == "original-rcpt-to"]
    if not recipients:
        recipients = [a for _, a in getaddresses(_returned(message, "To")) if a]
    for recipient in dict.fromkeys(r for r in recipients if r):
        yield Finding(recipient, complaint=True, diagnostic=_clean(kind or "abuse"))


def _feedback_fields(part: StdMessage) -> list[tuple[str, str]]:
    """The fields of a ``message/feedback-report`` part (a body of header lines)."""
    if part.is_multipart():  # some parsers read it as a message
        return [(k.lower(), _header(block, k)) for block in _blocks(part) for k in block]
    text = part.get_payload(decode=True) or b""
    parsed = email.message_from_bytes(bytes(text))
    return [(k.lower(), " ".join(str(v).split())) for k, v in parsed.items()]


def _mta(message: StdMessage) -> list[Finding]:
    """The first of flufl.bounce's detectors (most specific first) that names an address;
    one that names only non-addresses (``c=US;a=`` from an X.400 gateway) is passed over."""
    said = _clean(_header(message, "Subject"))
    for detector in _detectors():
        try:
            temporary, permanent = detector().process(message)
        except Exception:  # noqa: S112 - a detector tripping on hostile input
            continue
        hard = {_text(a) for a in permanent if "@" in _text(a)}
        soft = {_text(a) for a in temporary if "@" in _text(a)} - hard
        if hard or soft:
            return [Finding(a, permanent=True, diagnostic=said) for a in sorted(hard)] + [
                Finding(a, permanent=False, diagnostic=said) for a in sorted(soft)
            ]
    return []


def _detectors() -> list[Any]:
    """flufl.bounce's detector classes in its own order (empty without the extra)."""
    try:
        from flufl.bounce import _scan
    except ImportError:
        return []
    return list(_scan._find_detectors())


def _is_auto_reply(message: StdMessage) -> bool:
    if _DAEMON.search(_header(message, "From")):
        return False
    auto = _header(message, "Auto-Submitted").lower()
    if auto.startswith("auto-replied") or _header(message, "X-Autoreply"):
        return True
    if _header(message, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.search(_header(message, "Subject")))


def _returned(message: StdMessage, name: str) -> Iterator[str]:
    """``name`` in every returned message or header block inside ``message``."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            for item in _blocks(part):
                if _header(item, name):
                    yield _header(item, name)
        elif content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            value = _header(email.message_from_bytes(bytes(text)), name)
            if value:
                yield value


def _blocks(part: StdMessage) -> list[StdMessage]:
    """The header blocks of a delivery-status part, or the message of a message/rfc822."""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, StdMessage)] if isinstance(payload, list) else []


def _envelope(message: StdMessage) -> tuple[str, ...]:
    """The addresses the message was delivered to, as delivery agents record them."""
    found: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"):
        for value in message.get_all(name) or []:
            found += [a for _, a in getaddresses([str(value)]) if a]
    return tuple(dict.fromkeys(found))


def _header(message: StdMessage, name: str) -> str:
    value = message.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _untyped(value: str) -> str:
    """``rfc822; user@example.com`` -> ``user@example.com``; ``smtp; 550 ...`` likewise."""
    kind, semicolon, rest = value.partition(";")
    return rest.strip() if semicolon and " " not in kind.strip() else value.strip()


def _address(value: str) -> str:
    return value.strip().strip("<>").strip()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:_MAX_TEXT]
