"""Django for the tests: configured once per process, with a SQLite file database.

``configure()`` is idempotent; test modules that need Django call it at import. The
URLconf is ``tests.django_views``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import django
from django.conf import settings

from tests import framework_common as common

TEMPLATES = Path(__file__).parent / "django_templates"


def configure() -> None:
    """Configure Django and create its tables, once."""
    if settings.configured:
        return
    database = Path(tempfile.mkdtemp(prefix="mailspool-django-")) / "db.sqlite3"
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.django_views",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "mailspool.integrations.django_app",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        MIDDLEWARE=["mailspool.integrations.django.MailspoolMiddleware"],
        EMAIL_BACKEND="mailspool.integrations.django.EmailBackend",
        DEFAULT_FROM_EMAIL=common.SENDER,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [TEMPLATES]}
        ],
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
