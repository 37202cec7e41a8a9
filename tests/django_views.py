"""The views of the Django tests (the URLconf ``tests.django_settings`` configures)."""

from __future__ import annotations

from email.mime.text import MIMEText
from typing import Any

from django.contrib.auth.forms import PasswordResetForm
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import include, path

from tests import framework_common as common


class PriorityPasswordResetForm(PasswordResetForm):
    """Django's password reset form, its e-mail marked ``X-Mailspool-Priority: now``."""

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        subject = "".join(render_to_string(subject_template_name, context).splitlines())
        body = render_to_string(email_template_name, context)
        email = EmailMultiAlternatives(
            subject, body, from_email, [to_email], headers={"X-Mailspool-Priority": "now"}
        )
        if html_email_template_name is not None:
            email.attach_alternative(
                render_to_string(html_email_template_name, context), "text/html"
            )
        email.send()


def django_notification(i: int) -> EmailMultiAlternatives:
    """The follower e-mail as Django builds it: both bodies, two kinds of attachment."""
    email = EmailMultiAlternatives(
        subject=f"New post {i}",
        body=f"Read post {i}",
        from_email=common.SENDER,
        to=[common.follower(i)],
        cc=["editor@example.com"],
        bcc=["archive@example.com"],
        reply_to=["replies@example.com"],
        headers={"X-Campaign": "posts"},
    )
    email.attach_alternative(f"<p>Read post {i}</p>", "text/html")
    email.attach(*common.ATTACHMENT)
    return email


def notify(request: HttpRequest) -> HttpResponse:
    count = int(request.GET.get("n", common.FOLLOWERS))
    get_connection().send_messages([django_notification(i) for i in range(count)])
    reset = EmailMessage(
        "Reset your password",
        "reset",
        to=[common.PRIORITY_TO],
        headers={"X-Mailspool-Priority": "now"},
    )
    reset.send()
    return HttpResponse(f"notified {count}")


def in_transaction(request: HttpRequest) -> HttpResponse:
    """Sends five deferred e-mails in a transaction that commits or rolls back."""
    try:
        with transaction.atomic():
            for i in range(5):
                django_notification(i).send()
            if request.GET.get("outcome") == "rollback":
                raise RuntimeError("roll back")
    except RuntimeError:
        return HttpResponse("rolled back")
    return HttpResponse("committed")


def boom(request: HttpRequest) -> HttpResponse:
    """Sends three deferred e-mails outside any transaction, then fails."""
    for i in range(3):
        django_notification(i).send()
    raise RuntimeError("the view failed")


def password_reset(request: HttpRequest) -> HttpResponse:
    form = PriorityPasswordResetForm({"email": request.GET["email"]})
    assert form.is_valid()
    form.save(domain_override="blog.example.com", use_https=True)
    return HttpResponse("sent")


def mime_attachment(request: HttpRequest) -> HttpResponse:
    email = EmailMessage("Notes", "see the notes", to=["notes@example.com"])
    part = MIMEText("the notes", "plain", "utf-8")
    part.add_header("Content-Disposition", "attachment", filename="notes.txt")
    email.attach(part)
    email.send()
    return HttpResponse("ok")


urlpatterns = [
    path("notify/", notify),
    path("transaction/", in_transaction),
    path("boom/", boom),
    path("password-reset/", password_reset),
    path("mime/", mime_attachment),
]


def notify_each(request: HttpRequest) -> HttpResponse:
    """The article's naive view: one ``send_mail`` per follower (the benchmark's view)."""
    from django.core.mail import send_mail

    count = int(request.GET.get("n", "20"))
    for i in range(count):
        send_mail(
            "New post",
            f"Read the new post, reader {i}",
            None,
            [f"reader{i}@example.com"],
            html_message=f"<p>Read the new post, reader {i}</p>",
        )
    return HttpResponse(f"notified {count}")


urlpatterns.append(path("notify-each/", notify_each))
urlpatterns.append(path("mail/", include("mailspool.integrations.django_feedback")))
urlpatterns.append(path("ops/mail/", include("mailspool.integrations.django_dashboard")))


def traced(request: HttpRequest) -> HttpResponse:
    """Three deferred e-mails queued inside the request's span (``SERVER``), as an
    OpenTelemetry instrumentation of Django would open it (tests/test_tracing.py)."""
    from opentelemetry import trace

    tracer = trace.get_tracer("tests.django")
    with tracer.start_as_current_span("GET /traced/", kind=trace.SpanKind.SERVER):
        for i in range(3):
            EmailMessage(
                f"Private subject {i}",
                f"Private body {i}",
                to=[f"reader{i}@example.com"],
                cc=["copy@example.com"],
                bcc=["hidden@example.com"],
            ).send()
    return HttpResponse("queued 3")


urlpatterns.append(path("traced/", traced))
