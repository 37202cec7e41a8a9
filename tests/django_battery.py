"""Django's own e-mail backend tests, taken from Django's source distribution.

Django ships the tests every e-mail backend should pass (``BaseEmailBackendTests`` in
``tests/mail/tests.py``), in its sdist only, not in the wheel that is installed.
``load()`` gets that file for the installed Django: ``pip download --no-binary :all:
django==<installed version>`` once into a cache folder, the file extracted beside the
archive, then imported under a name of its own. Nothing of Django's is copied into this
project: the battery always matches the Django under test.

The cache folder is ``$MAILSPOOL_TESTS_CACHE`` when set, else ``.mailspool-tests-cache``
in the virtualenv (``sys.prefix``), so CI downloads once per virtualenv. A failure to
download raises: the battery never turns into a skip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

import django

__all__ = ["battery_file", "cache_folder", "load"]

MEMBER = "tests/mail/tests.py"


def cache_folder() -> Path:
    """Where the sdist and its extracted test file are kept."""
    given = os.environ.get("MAILSPOOL_TESTS_CACHE")
    return Path(given) if given else Path(sys.prefix) / ".mailspool-tests-cache"


def battery_file(version: str = django.__version__) -> Path:
    """``tests/mail/tests.py`` of Django ``version``'s sdist, downloaded once."""
    folder = cache_folder() / f"django-{version}"
    target = folder / "mail_tests.py"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    archive = _download(version, folder)
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"/{MEMBER}"))
        extracted = tar.extractfile(member)
        assert extracted is not None, f"{MEMBER} is not a file in {archive}"
        data = extracted.read()
    with tempfile.NamedTemporaryFile(dir=folder, delete=False) as temporary:
        temporary.write(data)
    os.replace(temporary.name, target)  # atomic: a concurrent run sees all of it or none
    return target


def _download(version: str, folder: Path) -> Path:
    existing = sorted(folder.glob(f"[dD]jango-{version}.tar.gz"))
    if existing:
        return existing[0]
    command = [
        *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
        *("--no-binary", ":all:", "--dest", str(folder)),
        f"django=={version}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    found = sorted(folder.glob(f"[dD]jango-{version}.tar.gz"))
    if result.returncode != 0 or not found:
        raise RuntimeError(
            f"cannot download Django {version}'s sdist for its e-mail backend tests "
            f"({' '.join(command)}): {result.stderr.strip()[-2000:]}"
        )
    return found[0]


def load() -> ModuleType:
    """Django's ``tests/mail/tests.py`` as a module (Django must be configured)."""
    path = battery_file()
    name = f"django_mail_tests_{django.__version__.replace('.', '_')}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
