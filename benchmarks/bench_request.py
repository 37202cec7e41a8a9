"""The request a follower notification costs: Django's SMTP backend against mailspool.

A Django view sends one e-mail per follower with ``django.core.mail.send_mail`` (the
article's view). The SMTP server waits 50 ms before each answer (a distant provider).
Measured side by side in one run:

- Django's SMTP backend, N = 20 and N = 50; N = 5000 is extrapolated from N = 50 (a
  real run would take about 20 minutes), and the output says so;
- mailspool's backend and middleware, on the file store and on ``s3://`` (moto server),
  N = 20 ... 5000, the median of three requests.

Prints the table and the ratios, and saves ``docs/img/request-time.png``.
Run: ``python benchmarks/bench_request.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import median_of  # noqa: E402 - after the path is set

PLOT = ROOT / "docs" / "img" / "request-time.png"
SMTP_SIZES = (20, 50)
MAILSPOOL_SIZES = (20, 100, 500, 1000, 5000)
DELAY = 0.05


def _request(n: int) -> None:
    from django.test import Client

    response = Client().get("/notify-each/", {"n": str(n)})
    assert response.status_code == 200, response.status_code


def _django_smtp(port: int) -> dict[int, float]:
    from django.test import override_settings

    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        MIDDLEWARE=[],
    ):
        return {n: median_of(1, lambda n=n: _request(n)) for n in SMTP_SIZES}


def _mailspool(store_url: str) -> dict[int, float]:
    os.environ["MAILSPOOL_STORE"] = store_url
    _request(5)  # open the store's client once, as a running process has
    return {n: median_of(3, lambda n=n: _request(n)) for n in MAILSPOOL_SIZES}


def _s3_store_url() -> tuple[str, Callable[[], None]]:
    import boto3
    from tests.fixtures.moto_server import AWS_TEST_ENVIRONMENT, running_moto_server

    context = running_moto_server()
    moto = context.__enter__()
    os.environ.update(moto.environment())
    os.environ.update(AWS_TEST_ENVIRONMENT)
    boto3.client("s3").create_bucket(Bucket="bench-mailspool")
    return "s3://bench-mailspool/spool", lambda: context.__exit__(None, None, None)


def measure() -> dict[str, dict[int, float]]:
    """Request time in seconds by variant and N."""
    from tests import django_settings
    from tests.fixtures.smtp_server import running_smtp_server

    os.environ.setdefault("XDG_DATA_HOME", tempfile.mkdtemp(prefix="mailspool-bench-"))
    django_settings.configure()
    results: dict[str, dict[int, float]] = {}
    with running_smtp_server() as server:
        server.slow_down(DELAY)
        port = server.port
        os.environ["MAILSPOOL_PRIORITY_TRANSPORT"] = server.url
        results["django-smtp"] = _django_smtp(port)
        spool = Path(tempfile.mkdtemp(prefix="mailspool-bench-spool-"))
        results["mailspool-file"] = _mailspool(f"file://{spool}")
        s3_url, stop_moto = _s3_store_url()
        try:
            results["mailspool-s3"] = _mailspool(s3_url)
        finally:
            stop_moto()
    return results


def report(results: dict[str, dict[int, float]]) -> None:
    """Print the table and the ratios against Django's SMTP backend."""
    smtp = results["django-smtp"]
    per_email = smtp[50] / 50
    smtp_5000 = per_email * 5000
    print(f"slow SMTP server: {DELAY * 1000:.0f} ms before each answer")
    print(f"{'variant':<18}{'N=20':>12}{'N=5000':>14}")
    print(
        f"{'django smtp':<18}{smtp[20] * 1000:>10.0f}ms{smtp_5000:>12.1f}s   (N=5000 extrapolated "
        f"from N=50: {smtp[50]:.2f} s)"
    )
    for name in ("mailspool-file", "mailspool-s3"):
        row = results[name]
        print(f"{name:<18}{row[20] * 1000:>10.1f}ms{row[5000] * 1000:>12.0f}ms")
    for name in ("mailspool-file", "mailspool-s3"):
        row = results[name]
        print(
            f"{name}: N=20 {smtp[20] / row[20]:.0f}x faster than django smtp N=20; "
            f"N=5000 {smtp_5000 / row[5000]:.0f}x faster than django smtp N=5000 (extrapolated); "
            f"N=5000 with mailspool / N=20 with django smtp = {row[5000] / smtp[20]:.2f}"
        )


def plot(results: dict[str, dict[int, float]]) -> None:
    """Request time against N, log-log, to ``docs/img/request-time.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    smtp = results["django-smtp"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(list(smtp), list(smtp.values()), "o-", color="tab:red", label="Django SMTP backend")
    axes.plot(
        [50, 5000],
        [smtp[50], smtp[50] / 50 * 5000],
        "--",
        color="tab:red",
        label="Django SMTP backend (extrapolated)",
    )
    for name, color in (("mailspool-file", "tab:blue"), ("mailspool-s3", "tab:green")):
        row = results[name]
        axes.plot(list(row), list(row.values()), "o-", color=color, label=name.replace("-", ", "))
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("followers notified in the request (N)")
    axes.set_ylabel("request time (s)")
    axes.set_title(f"One request, SMTP server {DELAY * 1000:.0f} ms per answer")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT, dpi=110)
    print(f"plot: {PLOT.relative_to(ROOT)}")


def main() -> dict[str, dict[int, float]]:
    """Measure, print, plot; the request times in seconds, by variant and N."""
    results = measure()
    report(results)
    plot(results)
    return results


if __name__ == "__main__":
    main()
