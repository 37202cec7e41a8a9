"""What an HTTP endpoint of the feedback loop answers (SES events, unsubscribe links),
apart from the endpoints themselves: the worker's unsubscribe step needs the type, not
the event ingestion behind ``feedback.http``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Response"]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "text/plain; charset=utf-8")]
    )

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode() + b"\n")
