"""The feedback endpoints in a Flask app::

    from mailspool.integrations.flask_feedback import feedback_blueprint
    app.register_blueprint(feedback_blueprint(), url_prefix="/mail")
    # POST /mail/events/ses (SNS), GET|POST /mail/unsubscribe (one-click)

Settings come from ``app.config`` (``MAILSPOOL_SNS_TOPICS``, ``MAILSPOOL_UNSUBSCRIBE_URL``
...), then the environment, read on the first request.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, request

from mailspool.feedback.endpoints import SES_PATH, UNSUBSCRIBE_PATH, FeedbackEndpoints
from mailspool.feedback.settings import endpoints_from_settings
from mailspool.integrations.flask_settings import load_settings

__all__ = ["feedback_blueprint"]


def feedback_blueprint(
    endpoints: FeedbackEndpoints | Callable[[], FeedbackEndpoints] | None = None,
) -> Blueprint:
    """A blueprint with the two endpoints (built from the app's config unless given)."""
    blueprint = Blueprint("mailspool_feedback", __name__)
    built: list[FeedbackEndpoints] = []

    def current() -> FeedbackEndpoints:
        if isinstance(endpoints, FeedbackEndpoints):
            return endpoints
        if not built:
            built.append(
                endpoints()
                if endpoints
                else endpoints_from_settings(load_settings(current_app.config))
            )
        return built[0]

    def view() -> Response:
        answer = current().handle(
            request.method,
            request.path,
            request.query_string.decode("latin-1"),
            {k.lower(): v for k, v in request.headers.items()},
            request.get_data(cache=False),
        )
        return Response(answer.body, status=answer.status, headers=answer.headers)

    blueprint.add_url_rule(SES_PATH, "ses_events", view, methods=["POST"])
    blueprint.add_url_rule(UNSUBSCRIBE_PATH, "unsubscribe", view, methods=["GET", "POST"])
    return blueprint
