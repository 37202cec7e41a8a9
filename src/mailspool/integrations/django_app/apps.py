"""The app's configuration: it only carries the management command."""

from __future__ import annotations

from django.apps import AppConfig


class MailspoolConfig(AppConfig):
    """``INSTALLED_APPS += ["mailspool.integrations.django_app"]``."""

    name = "mailspool.integrations.django_app"
    label = "mailspool"
    verbose_name = "mailspool"
