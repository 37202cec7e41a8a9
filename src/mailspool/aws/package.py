"""The function zip: ``mailspool aws package``.

mailspool and its dependencies, installed for Lambda's platform and Python by pip
(``--platform manylinux2014_aarch64 --only-binary=:all:``), then zipped. boto3 is
included: the copy bundled with Lambda's runtime lags behind and may lack the
conditional writes (``If-None-Match``) the S3 store's claims need.
``platform="native"`` installs for this machine instead (tests, or a Lambda-like host).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mailspool.errors import ConfigurationError

__all__ = ["build_package", "project_root"]

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
    python_version: str = "3.11",
    platform: str = "manylinux2014_aarch64",
    source: str | None = None,
    boto3: bool = True,
) -> Path:
    """Build the zip at ``output``; ``source`` is a path or requirement for mailspool
    (default: this source tree, else the released version)."""
    with tempfile.TemporaryDirectory(prefix="mailspool-package-") as tmp:
        build = Path(tmp) / "build"
        requirement = _requirement(source, Path(tmp), boto3)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"]
        command += ["--target", str(build)]
        if platform != "native":
            command += ["--platform", platform, "--implementation", "cp"]
            command += ["--python-version", python_version, "--only-binary=:all:"]
        _run([*command, requirement])
        _zip(build, output)
    return output


def _requirement(source: str | None, tmp: Path, boto3: bool) -> str:
    extras = "[aws]" if boto3 else ""
    root = project_root() if source is None else None
    if root is None and source is None:
        from mailspool._version import __version__

        return f"mailspool{extras}=={__version__}"
    path = Path(source) if source is not None else root
    if path is None or not path.exists():
        return f"{source}{extras}"
    wheels = tmp / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(path)]
    )
    [wheel] = sorted(wheels.glob("mailspool-*.whl"))
    return f"{wheel}{extras}"


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigurationError(f"{' '.join(command[:5])}... failed:\n{result.stderr[-2000:]}")


def _zip(build: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(build.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                info = zipfile.ZipInfo(str(path.relative_to(build)), _EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
