"""Real mail servers for the email tests, each on a free loopback port with
its own configuration in a temporary directory:

- Dovecot (dovecot-imapd), run in the foreground (`dovecot -F -c conf`),
  users from a passwd-file, Maildir storage owned by `nobody`.
- OpenSMTPD (opensmtpd), run in the foreground (`smtpd -d -f conf`). Its
  queue (/var/spool/smtpd) and control socket (/run/smtpd.sock) are
  compile-time paths, so it runs in a private mount namespace
  (`unshare -m`) where both are bind-mounted from the temporary
  directory: no state is shared with the host or with another test. It
  delivers to the same Maildirs Dovecot serves (plus-address tags stripped),
  and answers 550 for unknown users of its domains.

Both need root (the tests run as root, as `tools/dev test` does). Their
directories are made with mkdtemp (mode 0755) rather than under pytest's
tmp_path, whose 0700 parents would keep the unprivileged server processes
out; close() removes them.
"""
import imaplib
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.settimeout(2)
                if s.recv(64):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class Dovecot:
    """An IMAP server for USERS {address: password}."""

    def __init__(self, users, tls=False):
        # not under pytest's tmp_path: its 0700 parents keep out the
        # unprivileged dovecot and nobody processes
        self.dir = Path(tempfile.mkdtemp(prefix="omnihub-dovecot-"))
        os.chmod(self.dir, 0o755)
        self.mail = self.dir / "mail"
        for d in ("run", "state", "mail"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        self.users = dict(users)
        self.port = free_port()
        self.tls_port = free_port()
        ssl = "ssl = no"
        self.ca_file = None
        if tls:
            # a self-signed certificate for 127.0.0.1: STARTTLS on the
            # IMAP port, implicit TLS on the IMAPS port
            key, cert = self.dir / "key.pem", self.dir / "cert.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", str(key), "-out", str(cert), "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True, timeout=60)
            ssl = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"
            self.ca_file = str(cert)
        (self.dir / "passwd").write_text(
            "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.mail}/%u/Maildir
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={self.mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port if tls else 0}
  }}
}}
""")
        self.proc = None
        self.start()

    def url(self, mailbox="INBOX", implicit_tls=False):
        if implicit_tls:
            return f"imaps://127.0.0.1:{self.tls_port}/{mailbox}"
        return f"imap://127.0.0.1:{self.port}/{mailbox}"

    def start(self):
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port, self.proc, "dovecot")
            # the login port answers before the auth service does
            user = next(iter(self.users))
            deadline = time.time() + 15
            while True:
                try:
                    self.imap(user).logout()
                    return
                except imaplib.IMAP4.error:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def imap(self, user):
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m.login(user, self.users[user])
        return m

    def append(self, user, raw, mailbox="INBOX"):
        m = self.imap(user)
        try:
            typ, _ = m.append(mailbox, None, None, raw)
            assert typ == "OK"
        finally:
            m.logout()

    def create_mailbox(self, user, mailbox):
        m = self.imap(user)
        try:
            m.create(mailbox)
        finally:
            m.logout()

    def messages(self, user, mailbox="INBOX"):
        """Every message of MAILBOX as raw bytes, in UID order."""
        m = self.imap(user)
        try:
            m.select(mailbox, readonly=True)
            typ, data = m.uid("SEARCH", None, "ALL")
            out = []
            for uid in data[0].split():
                typ, msg = m.uid("FETCH", uid, "(BODY.PEEK[])")
                out.append(msg[0][1])
            return out
        finally:
            m.logout()

    def wait_messages(self, user, n, mailbox="INBOX", timeout=20):
        deadline = time.time() + timeout
        msgs = []
        while time.time() < deadline:
            msgs = self.messages(user, mailbox)
            if len(msgs) >= n:
                return msgs
            time.sleep(0.2)
        raise AssertionError(f"{user} has {len(msgs)} messages in {mailbox}, expected {n}")

    def uidvalidity(self, user, mailbox="INBOX"):
        m = self.imap(user)
        try:
            typ, data = m.status(mailbox, "(UIDVALIDITY)")
            return int(data[0].split(b"UIDVALIDITY")[1].strip(b" )"))
        finally:
            m.logout()

    def reset_uidvalidity(self, user, mailbox="INBOX"):
        """What a restored or rebuilt mailbox does: a new UIDVALIDITY, and
        every message renumbered."""
        old = self.uidvalidity(user, mailbox)
        subprocess.run(["doveadm", "-c", str(self.conf), "mailbox", "update", "-u", user,
                        "--uid-validity", str(old + 1000), mailbox], check=True,
                       capture_output=True, timeout=30)
        assert self.uidvalidity(user, mailbox) == old + 1000


class OpenSMTPD:
    """An SMTP server accepting mail for DOMAINS and delivering it for the
    addresses in USERS into DOVECOT's Maildirs."""

    def __init__(self, dovecot, domains=("example.com", "example.org")):
        if not shutil.which("smtpd"):
            raise RuntimeError("OpenSMTPD (smtpd) is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="omnihub-smtpd-"))
        os.chmod(self.dir, 0o755)
        self.spool = self.dir / "spool"
        self.run = self.dir / "run"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)
        os.chmod(self.spool, 0o711)
        self.port = free_port()
        (self.dir / "vusers").write_text("".join(f"{u} nobody\n" for u in dovecot.users))
        rules = "".join(f'match from any for domain "{d}" action "deliver"\n' for d in domains)
        self.conf = self.dir / "smtpd.conf"
        self.conf.write_text(
            f"table vusers file:{self.dir}/vusers\n"
            f"listen on 127.0.0.1 port {self.port}\n"
            f'action "deliver" maildir "{dovecot.mail}/%{{rcpt.user:strip}}@%{{rcpt.domain}}'
            f'/Maildir" virtual <vusers>\n' + rules)
        self.script = (
            "set -e\n"
            "if [ ! -d /var/spool/smtpd ]; then mount -t tmpfs tmpfs /var/spool; "
            "mkdir -p /var/spool/smtpd; fi\n"
            f"mount --bind {self.spool} /var/spool/smtpd\n"
            f"mount --bind {self.run} /run\n"
            f"exec smtpd -d -f {self.conf}\n")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        self.log = open(self.dir / "smtpd.log", "ab")
        self.proc = subprocess.Popen(["unshare", "-m", "sh", "-c", self.script],
                                     stdout=self.log, stderr=self.log)
        try:
            wait_port(self.port, self.proc, "smtpd")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def send(self, mail_from, rcpts, raw):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.sendmail(mail_from, rcpts, raw)


class DeferringSMTP:
    """A minimal SMTP stand-in for what a real server does only under load:
    it answers RCPT with 451 for the first DEFER transactions, then accepts
    and keeps every message in .messages."""

    def __init__(self, defer=2):
        import socketserver
        import threading
        self.defer = defer
        self.messages = []
        self.transactions = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                def say(line):
                    self.wfile.write(line.encode() + b"\r\n")
                say("220 stub ESMTP")
                deferred = False
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode(errors="replace").strip().upper()
                    if cmd.startswith(("EHLO", "HELO")):
                        say("250 stub")
                    elif cmd.startswith("MAIL"):
                        with stub.lock:
                            stub.transactions += 1
                            deferred = stub.transactions <= stub.defer
                        say("250 2.1.0 Ok")
                    elif cmd.startswith("RCPT"):
                        say("451 4.3.0 Try again later" if deferred else "250 2.1.5 Ok")
                    elif cmd == "DATA":
                        say("354 go ahead")
                        data = b""
                        while True:
                            chunk = self.rfile.readline()
                            if not chunk or chunk == b".\r\n":
                                break
                            data += chunk
                        with stub.lock:
                            stub.messages.append(data)
                        say("250 2.0.0 Ok: queued")
                    elif cmd == "QUIT":
                        say("221 2.0.0 Bye")
                        return
                    else:
                        say("250 Ok")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
