"""The docs followed as written, in ONE fresh virtualenv built from a clean clone (pip's
cache is warm): every line of docs/installation.md's "From a clone" and "From a wheel"
blocks, the Flask and Django pages' local set-ups (one request, the worker with ``--drain``,
delivery to a local aiosmtpd), and ``mailspool aws package`` after that normal install
making a zip that imports the handler in a clean Python."""

from __future__ import annotations

import os
import re
import subprocess
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.smtp_server import SMTPSink

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLONE_URL = "https://github.com/mailspool/mailspool.git"


@dataclass(frozen=True)
class Fresh:
    clone: Path
    bin: Path
    installed: subprocess.CompletedProcess[str]


def code_blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text("utf-8"), flags=re.S)


def shell(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={**_clean_environ(), **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _clean_environ() -> dict[str, str]:
    drop = ("MAILSPOOL_", "VIRTUAL_ENV", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="session")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    """docs/installation.md's "From a clone" block run as written, the clone URL served
    by this repository (git's insteadOf), in an empty folder."""
    work = tmp_path_factory.mktemp("fresh")
    [from_clone, *_] = code_blocks(DOCS / "installation.md", "sh")
    assert from_clone.startswith(f"git clone {CLONE_URL}\ncd mailspool\n")
    installed = shell(
        from_clone,
        work,
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0=f"url.{ROOT}.insteadOf",
        GIT_CONFIG_VALUE_0=CLONE_URL,
    )
    assert installed.returncode == 0, installed.stderr
    return Fresh(work / "mailspool", work / "mailspool" / ".venv" / "bin", installed)


def test_the_clone_install_lines_work_as_written(fresh: Fresh) -> None:
    assert fresh.installed.stdout.strip().endswith("mailspool, version 0.1.0")
    freeze = subprocess.run(
        [fresh.bin / "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("Django", "Flask", "boto3", "mailspool"):
        assert re.search(rf"^{name}[=@ ]", freeze, flags=re.M | re.I), freeze


def test_the_wheel_install_lines_work_as_written(fresh: Fresh) -> None:
    [_, from_wheel] = code_blocks(DOCS / "installation.md", "sh")
    script = from_wheel.replace("pip install", f"{fresh.bin}/pip install")
    result = shell(script, fresh.clone)
    assert result.returncode == 0, result.stderr
    assert (fresh.clone / "dist" / "mailspool-0.1.0-py3-none-any.whl").is_file()


def test_the_flask_page_local_set_up(fresh: Fresh, smtp_server: SMTPSink, tmp_path: Path) -> None:
    """The page's blog.py and commands; only the SMTP port and the spool folder differ
    (a free port, and a folder of this test's own rather than /tmp/mailspool)."""
    page = (DOCS / "frameworks.md").read_text("utf-8")
    [app_code] = [
        block for block in code_blocks(DOCS / "frameworks.md", "python") if "# blog.py" in block
    ]
    spool = f"file://{tmp_path / 'spool'}"
    app_code = app_code.replace("smtp://localhost:1025", smtp_server.url)
    (tmp_path / "blog.py").write_text(app_code.replace("file:///tmp/mailspool/spool", spool))
    request = "import blog; print(blog.app.test_client().post('/publish').status_code)"
    env = {"PATH": f"{fresh.bin}:{os.environ['PATH']}"}
    assert shell(f'python -c "{request}"', tmp_path, **env).stdout == "200\n"
    for command in (
        "flask --app blog mailspool worker --drain",
        "flask --app blog mailspool status",
    ):
        assert command in page
    drained = shell("flask --app blog mailspool worker --drain", tmp_path, **env)
    assert drained.returncode == 0, drained.stderr
    assert f"1 sent, 0 failed, 0 quarantined (store {spool})" in drained.stdout
    status = shell("flask --app blog mailspool status", tmp_path, **env)
    assert "sent         1\n" in status.stdout
    assert f"store: {spool}" in status.stderr
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [("follower@example.com",)]


def test_aws_package_after_a_normal_install_imports_the_handler(
    fresh: Fresh, tmp_path: Path
) -> None:
    built = subprocess.run(
        [fresh.bin / "mailspool", "aws", "package", "--platform", "native", "--output", "f.zip"],
        cwd=tmp_path,
        env=_clean_environ(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    with zipfile.ZipFile(tmp_path / "f.zip") as zipped:
        zipped.extractall(tmp_path / "task")
    venv.EnvBuilder(with_pip=False).create(tmp_path / "clean")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path / 'task')!r}); import mailspool.aws; "
        "print(mailspool.aws.handler.__module__, mailspool.__file__)"
    )
    result = subprocess.run(
        [tmp_path / "clean" / "bin" / "python", "-I", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    module, location = result.stdout.split()
    assert module == "mailspool.aws.lambda_handler"
    assert location.startswith(str(tmp_path / "task"))


DJANGO_VIEW = """
from django.core.mail import send_mail
from django.http import HttpResponse
from django.urls import path


def publish(request):
    send_mail("New post", "Read it", "blog@example.com", ["follower@example.com"])
    return HttpResponse("published")


urlpatterns = [path("publish", publish)]
"""


def test_the_django_page_local_set_up(fresh: Fresh, smtp_server: SMTPSink, tmp_path: Path) -> None:
    """A new project with the page's settings block pasted in, one request through the
    middleware, then the page's worker and status commands; only the SMTP port and the
    spool folder differ (a free port, and a folder of this test's own)."""
    page = (DOCS / "frameworks.md").read_text("utf-8")
    [settings_block] = [
        block for block in code_blocks(DOCS / "frameworks.md", "python") if "# settings.py" in block
    ][:1]
    spool = f"file://{tmp_path / 'spool'}"
    settings_block = settings_block.replace("smtp://localhost:1025", smtp_server.url)
    settings_block = settings_block.replace("file:///tmp/mailspool/spool", spool)
    env = {"PATH": f"{fresh.bin}:{os.environ['PATH']}"}
    assert shell("django-admin startproject blogsite .", tmp_path, **env).returncode == 0
    with (tmp_path / "blogsite" / "settings.py").open("a", encoding="utf-8") as settings:
        settings.write(settings_block)
    (tmp_path / "blogsite" / "urls.py").write_text(DJANGO_VIEW)
    request = (
        "from django.test import Client; "
        "print(Client(HTTP_HOST='localhost').get('/publish').status_code)"
    )
    answered = shell(f'python manage.py shell -c "{request}"', tmp_path, **env)
    assert answered.stdout.strip().splitlines()[-1:] == ["200"], answered.stderr
    assert smtp_server.envelopes == []  # deferred: nothing sent during the request
    for command in ("python manage.py mailspool_worker", f"mailspool status --store {spool}"):
        assert command.replace(spool, "file:///tmp/mailspool/spool") in page
    drained = shell("python manage.py mailspool_worker --drain", tmp_path, **env)
    assert drained.returncode == 0, drained.stderr
    status = shell(f"mailspool status --store {spool}", tmp_path, **env)
    assert "sent         1\n" in status.stdout, status.stdout
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [("follower@example.com",)]


def test_the_readme_demo_line_works_as_written(fresh: Fresh, tmp_path: Path) -> None:
    """The README's first command, run as written in the fresh clone (last, since it
    re-installs the clone's venv the way dev.py does)."""
    [readme_block, *_] = code_blocks(ROOT / "README.md", "sh")
    [demo_line] = [line for line in readme_block.splitlines() if "dev.py demo" in line]
    result = shell(demo_line, fresh.clone, XDG_DATA_HOME=str(tmp_path / "xdg"))
    assert result.returncode == 0, result.stderr
    outbox = tmp_path / "xdg" / "mailspool" / "outbox"
    emails = list(outbox.glob("*.eml"))
    envelopes = list(outbox.glob("*.envelope.json"))
    assert len(emails) == len(envelopes) > 500, result.stdout
    assert re.search(rf"this run: +{len(emails)} e-mails", result.stdout), result.stdout
    # the lines it ends with, pasted into a new shell of the clone (no venv on PATH)
    printed = re.findall(
        r"^(?:then:)? +(\.venv/bin/mailspool (?:status|trace) .*)$", result.stdout, re.M
    )
    assert len(printed) == 2, result.stdout
    newcomer = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    for line in printed:
        pasted = subprocess.run(
            ["bash", "-c", line], cwd=fresh.clone, env=newcomer, capture_output=True, text=True
        )
        assert pasted.returncode == 0, (line, pasted.stderr)
