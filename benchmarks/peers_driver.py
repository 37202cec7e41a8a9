"""The peers' side of ``bench_peers``: runs in the peers' own virtualenv, never mailspool's.

    python peers_driver.py setup   PEER   # create the peer's tables (untimed)
    python peers_driver.py enqueue PEER N # queue N e-mails; prints microseconds per e-mail
    python peers_driver.py deliver PEER   # the peer's own sending command, with its defaults

PEER is ``post_office`` (django-post-office, ``send_queued_mail``), ``mailer``
(django-mailer, ``send_mail``) or ``celery`` (django-celery-email: a Celery worker on
Redis). The environment gives ``PEERS_DB`` (SQLite file), ``PEERS_SMTP_PORT`` and
``PEERS_REDIS_PORT``. Each e-mail is the ~2 KB HTML post of the other benchmarks.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import HEADERS, HTML, SUBJECT

SENDER = HEADERS["From"]


def configure() -> None:
    import django
    from django.conf import settings

    smtp = "django.core.mail.backends.smtp.EmailBackend"
    settings.configure(
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PEERS_DB"]}
        },
        INSTALLED_APPS=["django.contrib.contenttypes", "post_office", "mailer", "djcelery_email"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        USE_TZ=True,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=int(os.environ["PEERS_SMTP_PORT"]),
        EMAIL_BACKEND="djcelery_email.backends.CeleryEmailBackend",
        CELERY_EMAIL_BACKEND=smtp,
        MAILER_EMAIL_BACKEND=smtp,
        POST_OFFICE={"BACKENDS": {"default": smtp}, "DEFAULT_PRIORITY": "medium"},
        CELERY_BROKER_URL=f"redis://127.0.0.1:{os.environ.get('PEERS_REDIS_PORT', '6379')}/0",
    )
    django.setup()


def celery_app():  # type: ignore[no-untyped-def]
    from celery import Celery

    app = Celery("peers")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks(["djcelery_email"])
    return app


def enqueue(peer: str, count: int) -> float:
    """Seconds per e-mail to queue ``count`` e-mails with the peer's own API."""
    if peer == "post_office":
        from post_office import mail

        def one(i: int) -> None:
            mail.send(
                [f"f{i}@example.com"], SENDER, subject=SUBJECT, html_message=HTML.format(name=i)
            )
    elif peer == "mailer":
        import mailer

        def one(i: int) -> None:
            mailer.send_html_mail(SUBJECT, "", HTML.format(name=i), SENDER, [f"f{i}@example.com"])
    else:
        from django.core.mail import send_mail

        celery_app()

        def one(i: int) -> None:
            send_mail(SUBJECT, "", SENDER, [f"f{i}@example.com"], html_message=HTML.format(name=i))

    from django.db import transaction

    started = time.perf_counter()
    with transaction.atomic():  # one request, one transaction (ATOMIC_REQUESTS)
        for i in range(count):
            one(i)
    return (time.perf_counter() - started) / count


def deliver(peer: str) -> None:
    from django.core.management import call_command

    if peer == "post_office":
        call_command("send_queued_mail")
    elif peer == "mailer":
        call_command("send_mail")
    else:  # runs until stopped: the benchmark counts at the sink
        celery_app().worker_main(["worker", "--loglevel=WARNING", "--without-gossip"])


def main(command: str, peer: str, *rest: str) -> None:
    configure()
    if command == "setup":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    elif command == "enqueue":
        print(f"{enqueue(peer, int(rest[0])) * 1e6:.1f}")
    else:
        deliver(peer)


if __name__ == "__main__":
    main(*sys.argv[1:])
