"""CloudWatch metrics from the Lambda handler, as Embedded Metric Format log lines.

One JSON line per batch run on stdout: CloudWatch Logs turns it into metrics without an
API call (no ``PutMetricData`` cost, nothing to wait for). Namespace
``MAILSPOOL_METRICS_NAMESPACE`` (the template sets ``mailspool/<stack>``; default
``mailspool``), dimension ``Function``, metrics:

- ``Sent``, ``Failed``, ``Suppressed`` (Count): e-mails of the batch in this run;
- ``Throttled`` (Count): sends the provider answered with a transient error (SES's
  throttling, an SMTP 4xx), each retried later (counted by the worker's
  ``delivery.steps.ThrottleCount`` step);
- ``BatchLatency`` (Milliseconds): from the batch's creation to the end of this run,
  the time a queued e-mail waited;
- ``QuotaHeadroom`` (Percent): the share of SES's 24-hour quota (``Max24HourSend``)
  still free after the run, when the worker knows the quota (``delivery.quota``); the
  template's alarm fires below 20% (80% used).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from mailspool.config import default_of
from mailspool.delivery.worker import BatchReport
from mailspool.spool import layout

__all__ = [
    "DEFAULT_NAMESPACE",
    "METRIC_NAMES",
    "batch_metrics",
    "write_batch_metrics",
]

#: the ``metrics_namespace`` setting's default; the handler passes the one it loaded
DEFAULT_NAMESPACE: str = default_of("metrics_namespace")
METRIC_NAMES = ("Sent", "Failed", "Suppressed", "Throttled", "BatchLatency")


def batch_metrics(
    report: BatchReport,
    *,
    throttled: int,
    function: str,
    now: float | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    headroom: float | None = None,
) -> dict[str, Any]:
    """The EMF document of one batch run, in ``namespace`` (the settings' namespace);
    ``headroom``: the 24-hour quota still free, 0 to 1 (None: no quota known)."""
    moment = time.time() if now is None else now
    created = layout.id_time(report.batch_id)
    latency = max(moment - created, 0.0) * 1000 if created is not None else 0.0
    units = {"BatchLatency": "Milliseconds", "QuotaHeadroom": "Percent"}
    names = METRIC_NAMES if headroom is None else (*METRIC_NAMES, "QuotaHeadroom")
    quota = {} if headroom is None else {"QuotaHeadroom": round(headroom * 100, 2)}
    return {
        "_aws": {
            "Timestamp": int(moment * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Function"]],
                    "Metrics": [{"Name": name, "Unit": units.get(name, "Count")} for name in names],
                }
            ],
        },
        "Function": function,
        "Sent": report.sent,
        "Failed": report.failed,
        "Suppressed": int(getattr(report, "suppressed", 0) or 0),
        "Throttled": throttled,
        "BatchLatency": round(latency, 1),
        **quota,
        "batch": report.batch_id,
        "status": str(report.status),
    }


def write_batch_metrics(document: dict[str, Any], out: TextIO | None = None) -> None:
    """Print one batch run's EMF document (``batch_metrics``) as a line: Lambda sends
    stdout to CloudWatch Logs."""
    stream = sys.stdout if out is None else out
    stream.write(json.dumps(document) + "\n")
    stream.flush()
