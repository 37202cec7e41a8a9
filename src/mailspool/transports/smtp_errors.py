"""What an SMTP server's answers and the network's failures mean for one e-mail: the
``DeliveryError`` for each (``PermanentError`` for a 5xx, ``TransportUnavailable`` for
what concerns the server rather than the e-mail, ``TransientError`` for the rest), with
the server's code and text as it gave them."""

from __future__ import annotations

import smtplib
import ssl

from mailspool.errors import (
    ContentUnanswered,
    DeliveryError,
    PermanentError,
    TransientError,
    TransportUnavailable,
)
from mailspool.transports.smtp_pipeline import NoAnswer, UnreadableReply

__all__ = [
    "SESSION_CODES",
    "all_refused",
    "answer_text",
    "answered",
    "check_advertised_size",
    "error_for",
    "network_error",
    "session_goes_on",
    "translate",
]


def answer_text(code: int, text: bytes | str) -> str:
    """``"550 5.1.1 no such user"``: one line, as the server said it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


#: Answers that close or refuse the whole session, whatever the e-mail (RFC 5321 421,
#: RFC 3207 454 "TLS not available due to temporary reason").
SESSION_CODES = frozenset({421, 454})


def error_for(code: int, message: str, answer: str) -> DeliveryError:
    if 500 <= code < 600:
        return PermanentError(message, response=answer)
    if code in SESSION_CODES:
        return TransportUnavailable(message, response=answer)
    return TransientError(message, response=answer)


def answered(where: str, err: smtplib.SMTPResponseException) -> DeliveryError:
    answer = answer_text(err.smtp_code, err.smtp_error)
    if err.smtp_code == 552 or "5.3.4" in answer:
        what = "refused the message as too large"
    elif isinstance(err, smtplib.SMTPSenderRefused):
        what = f"refused the sender {err.sender!r}"
    elif isinstance(err, smtplib.SMTPDataError):
        what = "refused the message"
    elif isinstance(err, smtplib.SMTPConnectError):
        what = "refused the connection"
    else:
        what = "answered"
    return error_for(err.smtp_code, f"{where} {what}: {answer}", answer)


def all_refused(where: str, err: smtplib.SMTPRecipientsRefused) -> DeliveryError:
    answers = {address: answer_text(code, text) for address, (code, text) in err.recipients.items()}
    listed = "; ".join(f"{address}: {answer}" for address, answer in answers.items())
    codes = [code for code, _ in err.recipients.values()]
    error: type[DeliveryError] = TransientError
    if any(code in SESSION_CODES for code in codes):
        error = TransportUnavailable
    elif all(500 <= code < 600 for code in codes):
        error = PermanentError
    return error(f"{where} refused every recipient: {listed}", response=listed, refused=answers)


def network_error(where: str, err: Exception, timeout: float, data_started: bool) -> DeliveryError:
    """Before the content, a network failure is the server's, not the e-mail's
    (``TransportUnavailable``); once the content has started to travel, the e-mail may
    have arrived, and a retry of it is counted."""
    error: type[TransientError] = ContentUnanswered if data_started else TransportUnavailable
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        reason = getattr(err, "verify_message", None) or getattr(err, "reason", None) or err
        return error(f"TLS with {where} failed: {reason}")
    if isinstance(err, TimeoutError):
        return error(f"{where} did not answer within {timeout:g} s")
    if isinstance(err, ConnectionRefusedError):
        return error(f"{where} refused the connection (nothing listening?)")
    if isinstance(err, OSError):
        return error(f"cannot talk to {where}: {err.strerror or err}")
    return error(f"{where}: {type(err).__name__}: {err}")


def session_goes_on(connection: smtplib.SMTP, err: smtplib.SMTPException) -> bool:
    """True when the server answered this e-mail (sender, recipients or content refused)
    and the transaction was ended (smtplib and ``smtp_pipeline`` send RSET): the
    connection can carry the next e-mail. A 421 closes the session."""
    if connection.sock is None or isinstance(err, UnreadableReply):
        return False
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return all(code != 421 for code, _ in err.recipients.values())
    return isinstance(err, smtplib.SMTPResponseException) and err.smtp_code != 421


def translate(
    err: Exception, where: str, username: str | None, timeout: float, data_started: bool
) -> DeliveryError:
    """The mailspool error for what smtplib, ssl or the socket raised."""
    if isinstance(err, smtplib.SMTPAuthenticationError):
        answer = answer_text(err.smtp_code, err.smtp_error)
        return PermanentError(
            f"authentication failed at {where} as {username!r}: {answer}", response=answer
        )
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return all_refused(where, err)
    if isinstance(err, smtplib.SMTPResponseException):
        return answered(where, err)
    if isinstance(err, NoAnswer):
        return network_error(where, TimeoutError(), timeout, data_started)
    if isinstance(err, smtplib.SMTPServerDisconnected):
        if data_started:
            return ContentUnanswered(
                f"connection to {where} lost during DATA (the message may have arrived): {err}"
            )
        return TransportUnavailable(f"connection to {where} lost: {err}")
    if isinstance(err, smtplib.SMTPException):  # not supported, no common AUTH method
        return PermanentError(f"{where} cannot be used as configured: {err}")
    return network_error(where, err, timeout, data_started)


def check_advertised_size(features: dict[str, str], size: int, where: str) -> None:
    """Refuse, before sending anything, a message larger than the SIZE the server
    advertises in its EHLO answer (RFC 1870)."""
    advertised = features.get("size", "").strip()
    if advertised.isdigit() and 0 < int(advertised) < size:
        raise PermanentError(
            f"the message is {size} bytes, more than the SIZE {advertised} that "
            f"{where} advertises; not sent"
        )
