"""A one-file Django blog: publishing a post notifies every follower; password reset is
priority. Settings, models, views and URLs are here; ``run.py`` starts it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django
from django.conf import settings

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("BLOG_DATA", HERE / ".data"))

settings.configure(
    DEBUG=True,
    SECRET_KEY=os.environ.get("BLOG_SECRET_KEY", "example-only"),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "mailspool.integrations.django_app",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA / "blog.sqlite3"}},
    MIDDLEWARE=["mailspool.integrations.django.MailspoolMiddleware"],
    EMAIL_BACKEND="mailspool.integrations.django.EmailBackend",
    DEFAULT_FROM_EMAIL="Blog <blog@example.com>",
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [HERE]}],
    MAILSPOOL={"STORE": f"file://{DATA / 'spool'}", "TRANSPORT": f"file://{DATA / 'outbox'}"},
    USE_TZ=True,
)
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.mail import EmailMessage, send_mail  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

PAGE = """<h1>Blog</h1>
<form method=post action=/publish><input name=title value="Hello"><button>Publish</button></form>
<form method=post action=/forgot><input name=email value="author@example.com">
<button>Forgot password</button></form><p>{message}</p>"""


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE.format(message=""))


@csrf_exempt
def publish(request: HttpRequest) -> HttpResponse:
    """Notify every follower: deferred, handed off in one write when the request ends."""
    title = request.POST.get("title", "A new post")
    followers = list(User.objects.exclude(username="author").values_list("email", flat=True))
    for email in followers:
        send_mail(
            f"New post: {title}",
            f"Read {title!r} now.",
            None,
            [email],
            html_message=f"<p>Read <b>{title}</b> now.</p>",
        )
    return HttpResponse(PAGE.format(message=f"published; {len(followers)} followers notified"))


@csrf_exempt
def forgot(request: HttpRequest) -> HttpResponse:
    """The user waits for this one: priority, sent before the response."""
    email = EmailMessage(
        "Reset your password",
        "Follow this link: https://blog.example/reset/x",
        to=[request.POST.get("email", "author@example.com")],
        headers={"X-Mailspool-Priority": "now"},
    )
    email.send()
    return HttpResponse(PAGE.format(message="reset link sent"))


urlpatterns = [path("", home), path("publish", publish), path("forgot", forgot)]


def seed(followers: int) -> None:
    """Create the tables and the author with ``followers`` followers, once."""
    from django.core.management import call_command

    DATA.mkdir(parents=True, exist_ok=True)
    call_command("migrate", run_syncdb=True, verbosity=0)
    if not User.objects.filter(username="author").exists():
        User.objects.create_user("author", "author@example.com", "author")
        User.objects.bulk_create(
            User(username=f"reader{i}", email=f"reader{i}@example.com") for i in range(followers)
        )


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
