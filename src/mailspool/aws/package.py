"""The function zip: ``mailspool aws package``.

mailspool as installed here (the package folder this code runs from: a normal install or
a clone), and its dependencies only, fetched for Lambda's platform and Python by pip
(``--platform manylinux2014_aarch64 --only-binary=:all:``), then zipped; nothing is
downloaded for mailspool itself, so it works before any release on a package index. boto3 is
included: the copy bundled with Lambda's runtime lags behind and may lack the
conditional writes (``If-None-Match``) the S3 store's claims need. So is ``cryptography``
(the ``encryption`` extra): the template's ``EncryptionKeyArn`` seals files with it.
``platform="native"`` installs for this machine instead (tests, or a Lambda-like host).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from mailspool.aws.template import default_runtime
from mailspool.errors import ConfigurationError

__all__ = ["DEFAULT_PYTHON", "build_package", "dependencies", "project_root"]

#: the template's Runtime default, so the zip and the stack agree unless told otherwise
DEFAULT_PYTHON = default_runtime().removeprefix("python")

_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same input gives the same zip


def project_root() -> Path | None:
    """The source tree this mailspool runs from (its ``pyproject.toml``), if any."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "mailspool").is_dir():
            return folder
    return None


def build_package(
    output: Path,
    *,
    python_version: str = DEFAULT_PYTHON,
    platform: str = "manylinux2014_aarch64",
    source: str | None = None,
    boto3: bool = True,
) -> Path:
    """Build the zip at ``output``: mailspool as installed here (or ``source``, a path or
    requirement), and its dependencies fetched by pip for ``platform``."""
    with tempfile.TemporaryDirectory(prefix="mailspool-package-") as tmp:
        build = Path(tmp) / "build"
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"]
        command += ["--target", str(build)]
        if platform != "native":
            command += ["--platform", platform, "--implementation", "cp"]
            command += ["--python-version", python_version, "--only-binary=:all:"]
        if source is None:
            _run([*command, *dependencies(boto3)], _fetch_failed(platform, python_version))
            _copy_installed(build / "mailspool")
        else:
            requirement = _requirement(source, Path(tmp), boto3)
            _run([*command, requirement], _fetch_failed(platform, python_version))
        _zip(build, output)
    return output


#: extras every function zip carries: a function configured with MAILSPOOL_WEBHOOK_URL
#: must be able to sign, and one with MAILSPOOL_ENCRYPTION_KEY to seal and open
_ZIP_EXTRAS = ("webhooks", "encryption")


def dependencies(boto3: bool) -> list[str]:
    """mailspool's own requirements and those of ``_ZIP_EXTRAS`` (with boto3: its
    ``aws`` extra's too), as installed."""
    try:
        declared = metadata.requires("mailspool") or []
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            "mailspool is not installed (no package metadata): install it "
            "(pip install -e . in a clone, or its wheel), or pass --source PATH"
        ) from None
    wanted = []
    for line in declared:
        requirement, _, marker = line.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra is None or extra.group(1) in _ZIP_EXTRAS or (boto3 and extra.group(1) == "aws"):
            wanted.append(requirement.strip())
    return wanted


def _copy_installed(target: Path) -> None:
    """This mailspool's package folder, as installed (or as in the clone it runs from)."""
    here = Path(__file__).resolve().parents[1]
    shutil.copytree(here, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _requirement(source: str, tmp: Path, boto3: bool) -> str:
    extras = f"[{','.join(('aws', *_ZIP_EXTRAS) if boto3 else _ZIP_EXTRAS)}]"
    path = Path(source)
    if not path.exists():
        return f"{source}{extras}"
    wheels = tmp / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(path),
        ],
        f"cannot build a wheel of {path}",
    )
    [wheel] = sorted(wheels.glob("mailspool-*.whl"))
    return f"{wheel}{extras}"


def _fetch_failed(platform: str, python_version: str) -> str:
    target = "this machine" if platform == "native" else f"{platform}, Python {python_version}"
    return (
        f"pip cannot fetch mailspool's dependencies for Lambda ({target}); check the "
        "network or the package index (PIP_INDEX_URL), or build with --platform native "
        "on a Linux host of Lambda's architecture with that Python"
    )


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        detail = lines[-1] if lines else (result.stderr.strip().splitlines() or [""])[-1]
        raise ConfigurationError(f"{what}. pip said: {detail}")


def _zip(build: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(build.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                info = zipfile.ZipInfo(str(path.relative_to(build)), _EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
