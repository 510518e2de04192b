"""A real Dovecot IMAP server for the tests: loopback, a free port, a temporary configuration.

Dovecot runs in the foreground (``dovecot -F``) in its own process group, so a test can
kill it the hard way (the whole group, as a crashed server) and start it again on the same
port with the same mail. Mail lives in Maildirs under the temporary folder, the users in a
passwd-file with plaintext passwords. Run as root, the login processes use ``dovenull``
and the mail processes ``nobody`` (Dovecot refuses uid 0 for mail); run as another user,
everything runs as that user.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "s3cret-imap"

CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
mail_location = maildir:{root}/mail/%u
disable_plaintext_auth = no
auth_failure_delay = 0
ssl = no
{users}
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    """One Dovecot instance; ``users`` get the password :data:`PASSWORD`."""

    def __init__(self, users: tuple[str, ...] = ("support",)):
        if not Path(DOVECOT).exists():
            pytest.skip(f"{DOVECOT} is missing (bash tests/run installs Debian dovecot-imapd)")
        # Not pytest's tmp_path: its parents are private to root, and Dovecot's auth and mail
        # processes run as other users that must reach the passwd file and the Maildirs.
        root = self.root = Path(tempfile.mkdtemp(prefix="triage-dovecot-"))
        self.port = free_port()
        self.users = users
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(exist_ok=True)
        root.chmod(0o755)  # the unprivileged login processes reach the sockets under run/
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
            settings = "default_login_user = dovenull\ndefault_internal_user = dovecot"
            os.chown(root / "mail", uid, gid)
        else:
            uid, gid, settings = os.getuid(), os.getgid(), ""
        (root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in users))
        self.conf = root / "dovecot.conf"
        self.conf.write_text(CONF.format(root=root, port=self.port, uid=uid, gid=gid, users=settings))
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart) and wait until it answers."""
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()} {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer on port {self.port}: {self.log()}")

    def kill(self) -> None:
        """A crash: SIGKILL to the whole process group, every open connection drops."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the group's children die with their master
            try:
                os.killpg(self.process.pid, 0) if self.process else None
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def remove(self) -> None:
        """Stop and delete the mail and configuration."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, user: str = "support") -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(user, PASSWORD)
        return c

    def append(self, messages: list[bytes], folder: str = "INBOX", user: str = "support") -> None:
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for raw in messages:
                c.append(folder, raw)

    def uids(self, folder: str, user: str = "support") -> list[int]:
        """UIDs in a folder (empty when it does not exist)."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder, readonly=True)
            return sorted(c.search("ALL"))

    def flags(self, folder: str, user: str = "support") -> dict[int, tuple[bytes, ...]]:
        with self.client(user) as c:
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            return {uid: data[b"FLAGS"] for uid, data in c.fetch(uids, ["FLAGS"]).items()} if uids else {}
