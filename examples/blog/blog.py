"""A one-file Django blog: publishing a post notifies every follower; password reset is
priority. Settings, models, views and URLs are here; ``run.py`` starts it.

It is written to be copied: forms carry Django's CSRF token (``CsrfViewMiddleware``),
inputs go through Django forms (a one-line title of at most 200 characters, a valid
e-mail address) and what reaches HTML is escaped (``format_html``)."""

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
    MIDDLEWARE=[
        "django.middleware.csrf.CsrfViewMiddleware",  # every POST carries the form's token
        "mailspool.integrations.django.MailspoolMiddleware",
    ],
    EMAIL_BACKEND="mailspool.integrations.django.EmailBackend",
    DEFAULT_FROM_EMAIL="Blog <blog@example.com>",
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [HERE]}],
    MAILSPOOL={"STORE": f"file://{DATA / 'spool'}", "TRANSPORT": f"file://{DATA / 'outbox'}"},
    USE_TZ=True,
)
django.setup()

from django import forms  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.mail import EmailMessage, send_mail  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils.html import format_html  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402

PAGE = """<h1>Blog</h1>
<form method=post action=/publish>{token}<input name=title value="Hello" maxlength=200>
<button>Publish</button></form>
<form method=post action=/forgot>{token}<input name=email value="author@example.com">
<button>Forgot password</button></form><p>{message}</p>"""


class PostForm(forms.Form):
    """A title: required, one line, at most 200 characters (it goes into a subject)."""

    title = forms.CharField(max_length=200, strip=True)

    def clean_title(self) -> str:
        title: str = self.cleaned_data["title"]
        if any(not character.isprintable() for character in title):
            raise forms.ValidationError("the title must be one line of printable text")
        return title


class ForgotForm(forms.Form):
    email = forms.EmailField(max_length=254)


def page(request: HttpRequest, message: str = "", status: int = 200) -> HttpResponse:
    """The page, with the CSRF token in each form and the message escaped."""
    token = format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request)
    )
    return HttpResponse(PAGE.format(token=token, message=format_html("{}", message)), status=status)


def refused(request: HttpRequest, form: forms.Form) -> HttpResponse:
    errors = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
    return page(request, f"not sent: {errors}", status=400)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return page(request)


@require_POST
def publish(request: HttpRequest) -> HttpResponse:
    """Notify every follower: deferred, handed off in one write when the request ends."""
    form = PostForm(request.POST)
    if not form.is_valid():
        return refused(request, form)
    title = form.cleaned_data["title"]
    followers = list(User.objects.exclude(username="author").values_list("email", flat=True))
    for email in followers:
        send_mail(
            f"New post: {title}",
            f"Read {title!r} now.",
            None,
            [email],
            html_message=format_html("<p>Read <b>{}</b> now.</p>", title),
        )
    return page(request, f"published; {len(followers)} followers notified")


@require_POST
def forgot(request: HttpRequest) -> HttpResponse:
    """The user waits for this one: priority, sent before the response."""
    form = ForgotForm(request.POST)
    if not form.is_valid():
        return refused(request, form)
    email = EmailMessage(
        "Reset your password",
        "Follow this link: https://blog.example/reset/x",
        to=[form.cleaned_data["email"]],
        headers={"X-Mailspool-Priority": "now"},
    )
    email.send()
    return page(request, "reset link sent")


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
