"""The app's configuration: the management command, the SES event signals, and the
system check of ``settings.MAILSPOOL`` (``manage.py check``, and every server start)."""

from __future__ import annotations

from django.apps import AppConfig


class MailspoolConfig(AppConfig):
    """``INSTALLED_APPS += ["mailspool.integrations.django_app"]``."""

    name = "mailspool.integrations.django_app"
    label = "mailspool"
    verbose_name = "mailspool"

    def ready(self) -> None:
        from django.core import checks

        from mailspool.feedback import hooks
        from mailspool.integrations.django import check_settings
        from mailspool.integrations.django_signals import send_signals

        hooks.register(send_signals)
        checks.register(check_settings, "mailspool")
