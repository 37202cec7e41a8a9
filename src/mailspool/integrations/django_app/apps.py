"""The app's configuration: the management command, and the SES event signals."""

from __future__ import annotations

from django.apps import AppConfig


class MailspoolConfig(AppConfig):
    """``INSTALLED_APPS += ["mailspool.integrations.django_app"]``."""

    name = "mailspool.integrations.django_app"
    label = "mailspool"
    verbose_name = "mailspool"

    def ready(self) -> None:
        from mailspool.feedback import hooks
        from mailspool.integrations.django_signals import send_signals

        hooks.register(send_signals)
