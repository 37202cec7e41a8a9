"""A real Postfix (Debian's) for the field benchmark and the tests: an instance of its own.

``running_postfix()`` writes a config directory of its own (``postfix -c DIR``), its queue
on tmpfs (``/dev/shm``) when there is one, listening on 127.0.0.1 only, with a self-signed
certificate for STARTTLS and every e-mail handed to the ``discard`` transport; started on
enter, stopped and removed on exit. ``restrictions`` are extra ``main.cf`` lines (a test
refuses a recipient, defers a sender). It needs root (Postfix's master) and the
``postfix`` package; ``ensure_postfix`` installs it with apt-get when missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.sinks import free_port

POSTFIX = "/usr/sbin/postfix"
SMTP_SOURCE = "/usr/sbin/smtp-source"

_SERVICES = """\
{listen} inet n - n - - smtpd
{listen_smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_MAIN = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.localhost
mydomain = localhost
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
default_transport = discard
relay_transport = discard
local_transport = discard
smtpd_peername_lookup = no
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
default_process_limit = 256
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_tls_security_level = {tls}
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_session_cache_database =
in_flow_delay = 0
"""


@dataclass(frozen=True, slots=True)
class Postfix:
    """A running instance: where it listens and its config directory."""

    host: str
    port: int
    folder: Path
    cafile: str
    #: the same server with TLS from the first byte (smtps), when ``tls``
    smtps_port: int = 0

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""


def available() -> bool:
    """Postfix is installed and this process may start it (root)."""
    return Path(POSTFIX).exists() and hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_postfix() -> bool:
    """Install Debian's postfix with apt-get when missing (root only); True when usable."""
    if Path(POSTFIX).exists() or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return available()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "postfix"],
    ):
        if subprocess.call(command, env=env, stdout=subprocess.DEVNULL) != 0:
            return False
    return available()


@contextmanager
def running_postfix(*, tls: bool = True, restrictions: str = "") -> Iterator[Postfix]:
    """A started Postfix on 127.0.0.1 (STARTTLS offered when ``tls``), removed on exit."""
    from tests.fixtures.smtp_server import self_signed_certificate

    tmpfs = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = Path(tempfile.mkdtemp(prefix="mailspool-postfix-", dir=tmpfs))
    folder.chmod(0o755)  # read by the postfix user
    port, smtps_port = free_port(), free_port()
    cert, key = self_signed_certificate()
    shutil.copy(cert, folder / "cert.pem")
    shutil.copy(key, folder / "key.pem")
    main = _MAIN.format(
        queue=folder / "queue",
        data=folder / "data",
        folder=folder,
        tls="may" if tls else "none",
        cert=folder / "cert.pem",
        key=folder / "key.pem",
    )
    (folder / "main.cf").write_text(main + restrictions + "\n")
    services = _SERVICES.format(listen=f"127.0.0.1:{port}", listen_smtps=f"127.0.0.1:{smtps_port}")
    if not tls:  # no certificate to offer: no smtps
        services = "\n".join(line for line in services.splitlines() if "wrappermode" not in line)
    (folder / "master.cf").write_text(services + "\n")
    for name in ("queue", "data"):
        (folder / name).mkdir()
    shutil.chown(folder / "data", "postfix", "postfix")
    _postfix(folder, "start")
    try:
        _wait_listening(port, folder)
        yield Postfix("127.0.0.1", port, folder, str(folder / "cert.pem"), smtps_port if tls else 0)
    finally:
        _postfix(folder, "stop", check=False)
        _wait_stopped(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _postfix(folder: Path, action: str, *, check: bool = True) -> None:
    done = subprocess.run(
        [POSTFIX, "-c", str(folder), action], capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"postfix {action} failed: {done.stdout}{done.stderr}")


def _wait_listening(port: int, folder: Path) -> None:
    import socket

    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"postfix did not listen on {port}: {(folder / 'maillog').read_text()}")


def _wait_stopped(folder: Path) -> None:
    pid_file = folder / "queue" / "pid" / "master.pid"
    for _ in range(200):
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return
        time.sleep(0.05)


def smtp_source(host: str, port: int, messages: int, sessions: int, size: int) -> float:
    """Seconds Postfix's own ``smtp-source`` takes to send ``messages`` in ``sessions``
    parallel sessions (PIPELINING, connections reused; no TLS: smtp-source has none)."""
    command = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    command += ["-f", "blog@example.com", "-t", "follower@example.net"]
    started = time.perf_counter()
    subprocess.run([*command, f"{host}:{port}"], check=True, capture_output=True)
    return time.perf_counter() - started
