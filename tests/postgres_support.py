"""
A throw-away PostgreSQL server in a folder of its own, for echolab's tests,
its cluster script and its benchmarks: Debian's binaries, C{initdb} and
C{pg_ctl}, listening only on a Unix socket in that folder.

PostgreSQL refuses to run as root, so when this runs as root (CI does) the
server runs as the C{postgres} system user (C{runuser -u postgres --}).

    python3 -m tests.postgres_support FOLDER      # start; prints the URL
    python3 -m tests.postgres_support --stop FOLDER
"""

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from unittest import SkipTest

INSTALL_HINT = "apt-get install postgresql"
# Local connections as `echolab_pw` need its password; all others are trusted
# (the socket's folder is the server user's own, mode 0700 but for us).
HBA = """\
local all echolab_pw scram-sha-256
local all all trust
"""
PASSWORD_ROLE = ("echolab_pw", "right-password")


def binaries():
    """
    The folder of Debian's PostgreSQL binaries (the newest), or L{None}.
    """
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    return os.path.dirname(pg_ctl) if pg_ctl else None


def temporary_folder(prefix="echolab-pg-"):
    """
    A new folder under the system's temporary one that the C{postgres}
    user may pass through (mode 0711); the server's own folder goes in it.
    """
    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o711)
    return folder


def missing():
    """
    L{None} when a server can be started here, else one line saying what
    to install.
    """
    if binaries() is None:
        return f"PostgreSQL binaries not found: {INSTALL_HINT}"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "runuser not found: apt-get install util-linux"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return f"no postgres system user: {INSTALL_HINT}"
    return None


class PostgresServer:
    """
    One server in C{folder}: its data in C{folder}/data, its socket in
    C{folder}. Clients connect as C{postgres} (trusted) or as
    L{PASSWORD_ROLE} (password required). The folders above C{folder} must
    be searchable by the server's user (L{temporary_folder} makes one).

    @param durable: fsync commits (for measurements); tests go without.
    """

    def __init__(self, folder, durable=False):
        self.folder = os.path.abspath(folder)
        self.data = os.path.join(self.folder, "data")
        self.durable = durable
        self._bin = binaries()
        self._owned = None

    def url(self, database="postgres", user="postgres", password=None):
        """
        A libpq URI reaching this server's socket.
        """
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@/{database}?host={self.folder}"

    def _as_server_user(self, *argv, **kwargs):
        command = [os.path.join(self._bin, argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, **kwargs)
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()}")
        return done

    def start(self):
        """
        Create the cluster if needed and start it; blocking, a few seconds.
        """
        os.makedirs(self.folder, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        os.chmod(self.folder, 0o700)
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._as_server_user(
                "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8"
            )
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
                f.write(HBA)
        options = f"-k {self.folder} -c listen_addresses='' -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off"
        self._as_server_user(
            "pg_ctl", "-D", self.data, "-l", os.path.join(self.folder, "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        self.sql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                 f"'{PASSWORD_ROLE[0]}') THEN CREATE ROLE {PASSWORD_ROLE[0]} LOGIN "
                 f"SUPERUSER PASSWORD '{PASSWORD_ROLE[1]}'; END IF; END $$")  # fmt: skip
        return self

    def sql(self, statement, database="postgres"):
        """
        Run one statement as C{postgres} (with psql); its output.
        """
        psql = os.path.join(self._bin, "psql")
        return subprocess.run(
            [psql, "-X", "-q", "-t", "-A", "-h", self.folder, "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-c", statement],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    def create_database(self, name):
        """
        A new empty database; its URL.
        """
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._as_server_user("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def destroy(self):
        """
        Stop the server and delete its folder (and the temporary folder
        around it, for one made by L{temporary})."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self._owned or self.folder, ignore_errors=True)

    @classmethod
    def temporary(cls, durable=False):
        """
        A server (not yet started) in a new L{temporary_folder}, which
        L{destroy} deletes.
        """
        parent = temporary_folder()
        server = cls(os.path.join(parent, "pg"), durable)
        server._owned = parent
        return server


_shared = {}


def shared_server():
    """
    One server for this test process, started on first use and destroyed
    when the process exits; each test makes its own database in it
    (L{fresh_database}).
    """
    if "server" not in _shared:
        server = PostgresServer.temporary()
        atexit.register(server.destroy)
        _shared["server"] = server.start()
        _shared["count"] = 0
    return _shared["server"]


def fresh_database(testcase):
    """
    The URL of a new empty database for C{testcase} (skipped, in one line,
    where PostgreSQL is not installed).
    """
    why = missing()
    if why:
        raise SkipTest(why)
    server = shared_server()
    _shared["count"] += 1
    name = f"t{os.getpid()}_{_shared['count']}"
    url = server.create_database(name)
    testcase.addCleanup(server.sql, f'DROP DATABASE "{name}" WITH (FORCE)')
    return url


def main(argv):
    if len(argv) == 3 and argv[1] == "--stop":
        PostgresServer(argv[2]).stop()
        return 0
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        return 2
    why = missing()
    if why:
        print(why, file=sys.stderr)
        return 1
    server = PostgresServer(argv[1], durable=True).start()
    server.sql("SELECT 1 FROM pg_database WHERE datname = 'echolab'").strip() or (
        server.create_database("echolab")
    )
    print(server.url("echolab"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
