"""The operator's view: ``mailspool serve`` (pages and ``/metrics``), with ``mailspool[serve]``.

``Dashboard(store).asgi()`` (or ``.wsgi()``) is the application; ``mailspool.web.metrics``
has the Prometheus gauges and the worker's counters.
"""

from mailspool.web.app import Dashboard

__all__ = ["Dashboard"]
