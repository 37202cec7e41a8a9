"""The Django app that makes ``manage.py mailspool_worker`` available.

Add ``"mailspool.integrations.django_app"`` to ``INSTALLED_APPS``.
"""
