#!/usr/bin/python3
"""pg_server.py - a throwaway PostgreSQL (15) on a free loopback port in a
temporary directory, for the store tests.

Command line (used by tests/unit/store_fixture.c):
  pg_server.py start             prints the DSN, then the directory, one a line
  pg_server.py createdb DIR NAME prints the DSN of a new database NAME
  pg_server.py restart DIR       pg_ctl restart -m fast
  pg_server.py stop-only DIR     pg_ctl stop -m fast (the directory is kept)
  pg_server.py start-only DIR    pg_ctl start again on the same port
  pg_server.py stop DIR          stops the server and removes DIR

As a module: `with PgServer() as pg: pg.dsn, pg.createdb("x")`.
"""
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile


def _bindir():
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "initdb")):
            return cand
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args, **kw):
    """Runs ARGS as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


class PgServer:
    def __init__(self, directory=None):
        self.bindir = _bindir()
        self.dir = directory
        self.port = None
        if directory and os.path.exists(os.path.join(directory, "port")):
            with open(os.path.join(directory, "port")) as f:
                self.port = int(f.read().strip())

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def dsn_for(self, dbname):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s connect_timeout=5" % (
            self.port, dbname)

    @property
    def dsn(self):
        return self.dsn_for("postgres")

    def _pg_ctl(self, *args):
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on" % (self.port, self.dir)
        return _as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-w",
                             "-t", "60", "-l", os.path.join(self.dir, "server.log"),
                             "-o", opts] + list(args))

    def start(self):
        if not self.dir:
            self.dir = tempfile.mkdtemp(prefix="omnihub-pg-")
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        if not os.path.exists(self.data):
            _as_postgres([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U",
                          "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        self.port = self.port or _free_port()
        with open(os.path.join(self.dir, "port"), "w") as f:
            f.write(str(self.port))
        self._pg_ctl("start")
        return self

    def start_only(self):
        self._pg_ctl("start")

    def restart(self):
        self._pg_ctl("restart", "-m", "fast")

    def stop_only(self):
        self._pg_ctl("stop", "-m", "fast")

    def createdb(self, name):
        _as_postgres([os.path.join(self.bindir, "createdb"), "-h", "127.0.0.1", "-p",
                      str(self.port), "-U", "postgres", name])
        return self.dsn_for(name)

    def stop(self):
        if self.dir and os.path.exists(self.data):
            try:
                self._pg_ctl("stop", "-m", "fast")
            except subprocess.CalledProcessError:
                pass
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    cmd = argv[1]
    try:
        if cmd == "start":
            pg = PgServer().start()
            print(pg.dsn)
            print(pg.dir)
        elif cmd == "createdb":
            print(PgServer(argv[2]).createdb(argv[3]))
        elif cmd == "restart":
            PgServer(argv[2]).restart()
        elif cmd == "stop-only":
            PgServer(argv[2]).stop_only()
        elif cmd == "start-only":
            PgServer(argv[2]).start_only()
        elif cmd == "stop":
            PgServer(argv[2]).stop()
        else:
            sys.stderr.write(__doc__)
            return 2
    except subprocess.CalledProcessError as e:
        sys.stderr.write("pg_server: %s failed:\n%s\n" % (" ".join(e.cmd), e.output))
        return 1
    except RuntimeError as e:
        sys.stderr.write("pg_server: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
