#!/usr/bin/env python3
"""Set up and run mailspool from a fresh checkout, with nothing but Python 3.11+.

    python3 dev.py demo     # a virtualenv in .venv, then `mailspool demo` on the embedded default
    python3 dev.py test     # the same virtualenv, then ruff, mypy --strict and the whole test suite
    python3 dev.py build    # the wheel in dist/ (pip install 'dist/mailspool-*.whl[django]')
    python3 dev.py bench    # the benchmarks under benchmarks/: ratios measured side by side, recorded
                            # in benchmarks/results/ and written into the docs' marked blocks
    python3 dev.py docs     # regenerate the settings table in docs/configuration.md

The virtualenv is (re)built when pyproject.toml changes. Extra arguments go to the tool:
`python3 dev.py test -k worker`, `python3 dev.py demo --followers 2000`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
CHROMIUM = "/usr/bin/chromium"


def ensure_venv(extras: str, covered_by: tuple[str, ...] = ()) -> None:
    """Create .venv and install the package with ``extras`` unless already done (with
    them, or with extras ``covered_by`` that include them)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may run on an older Python
        sys.exit(f"mailspool needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if PYTHON.exists() and any(_installed(name) for name in (extras, *covered_by)):
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print(f"installing mailspool[{extras}] into {VENV} (once)", flush=True)
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", f".[{extras}]"])
    _stamp(extras).write_text(_digest(extras))


def _stamp(extras: str) -> Path:
    return VENV / f".mailspool-installed-{extras}"


def _digest(extras: str) -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()


def _installed(extras: str) -> bool:
    stamp = _stamp(extras)
    return stamp.exists() and stamp.read_text() == _digest(extras)


def run(command: list[str], env: dict[str, str] | None = None) -> int:
    code = subprocess.call(command, cwd=ROOT, env=env)
    if code != 0:
        sys.exit(code)
    return code


def ensure_tool(name: str) -> Path:
    """A command-line tool in a virtualenv of its own (checkov pins versions that clash
    with the test dependencies), installed once under .venv-tools/."""
    folder = ROOT / ".venv-tools" / name
    binary = folder / ("Scripts" if os.name == "nt" else "bin") / name
    if not binary.exists():
        print(f"installing {name} into {folder} (once)", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        run([str(binary.with_name("python")), "-m", "pip", "install", "--quiet", name])
    return binary


def ensure_chromium() -> None:
    """Debian's chromium for the dashboard's browser test (Playwright cannot download
    its own build here); installed with apt-get when missing, which needs root."""
    if Path(CHROMIUM).exists():
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        sys.exit(f"the browser test needs {CHROMIUM}: run `apt-get install chromium` as root")
    print("installing chromium with apt-get (once)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "chromium"], env=env)


def ensure_postfix() -> None:
    """Debian's postfix for the tests and benchmarks that run a real Postfix of their
    own (``tests/fixtures/postfix.py``); installed with apt-get when missing, as root."""
    if Path("/usr/sbin/postfix").exists():
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        print("the Postfix tests need /usr/sbin/postfix (apt-get install postfix, as root)")
        return
    print("installing postfix with apt-get (once)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "postfix"], env=env)


def test(args: list[str]) -> None:
    ensure_venv("test")
    ensure_chromium()
    ensure_postfix()
    checkov = ensure_tool("checkov")
    run([str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "dev.py"])
    run([str(BIN / "ruff"), "format", "--check", "src", "tests", "benchmarks", "dev.py"])
    run([str(BIN / "mypy")])
    env = {**os.environ, "CHECKOV": str(checkov)}
    code = subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=env)
    if code == 5:
        sys.exit("pytest collected no tests: that is a failure")
    sys.exit(code)


def demo(args: list[str]) -> None:
    # the package and its dashboard (serve) only; a venv set up for the tests has both
    ensure_venv("serve", covered_by=("test",))
    # in the caller's folder: the commands the demo prints last are paths from there
    sys.exit(subprocess.call([str(BIN / "mailspool"), "demo", *args]))


def build(args: list[str]) -> None:
    """The wheel, built by pip from this clone (no tool to install first), in dist/."""
    dist = ROOT / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist)]
    run([*command, *args, str(ROOT)])
    for wheel in sorted(dist.glob("mailspool-*.whl")):
        print(wheel.relative_to(ROOT))


def bench(args: list[str]) -> None:
    ensure_venv("bench")
    sys.exit(subprocess.call([str(PYTHON), "benchmarks/run.py", *args], cwd=ROOT))


def docs(args: list[str]) -> None:
    ensure_venv("test")
    page = "docs/configuration.md"
    sys.exit(subprocess.call([str(PYTHON), "-m", "mailspool.settings_docs", page], cwd=ROOT))


def main() -> None:
    commands = {"test": test, "demo": demo, "bench": bench, "docs": docs, "build": build}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
