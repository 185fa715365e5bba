# -*- test-case-name: tests.test_deployment -*-
"""
How the server is deployed: where its stores are (C{--store}) and how many
processes serve its ports (C{--workers}); and the store that follows.
"""

import os
from dataclasses import dataclass

from echotwist.optionspec import number, setting
from echotwist.store import DATABASE_FILE, Database


@dataclass(frozen=True)
class Deployment:
    """
    @ivar store: a libpq URI (C{postgresql://...}; a Unix socket's folder
        goes in C{?host=}) or C{sqlite:PATH}; L{None} for the SQLite file
        in the data directory. Checked when the server starts, so that a
        bad one is refused with the other start-up failures (exit 1).
    @ivar workers: server processes sharing the ports (L{echotwist.workers}).
    """

    store: str = setting(
        None,
        "store",
        "Where the stores are: postgresql://USER@HOST/DB (a libpq URI; "
        "postgresql:///DB?host=/socket/folder for a Unix socket) or "
        "sqlite:PATH [default: sqlite:echolab.db in --data-dir].",
    )
    workers: int = setting(
        1,
        "workers",
        "Server processes sharing the ports (TCP and haproxy:tcp ones); "
        "one that dies is replaced.",
        number(int, 1, 64),
    )

    @property
    def shared(self):
        """
        Whether other processes use the same stores, so that nothing this
        process remembers of them may be trusted without asking them.
        """
        return self.workers > 1 or self.sqlite_path("") is None

    def sqlite_path(self, data_dir):
        """
        The SQLite file C{store} names, in C{data_dir} unless absolute; or
        L{None} when the store is PostgreSQL.
        """
        if self.store is None:
            return os.path.join(data_dir, DATABASE_FILE)
        if self.store.startswith("sqlite:"):
            return os.path.join(data_dir, self.store[len("sqlite:") :])
        return None

    def describe_store(self, data_dir):
        """
        The store for the log: SQLite's file, or PostgreSQL's URI without
        its password.
        """
        path = self.sqlite_path(data_dir)
        if path is not None:
            return f"SQLite {path}"
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(self.store)
        except Exception:  # (refused with its own line when the store opens)
            return "PostgreSQL (an unreadable URI)"
        where = info.get("host") or "the default socket"
        shown = (f"{k}={info[k]}" for k in ("dbname", "user", "port") if info.get(k))
        return f"PostgreSQL on {where} ({', '.join(shown)})"

    def database(self, data_dir, reactor):
        """
        The L{echotwist.store.Database} or L{echotwist.pgstore.Database}
        that C{store} names, not yet opened.
        """
        path = self.sqlite_path(data_dir)
        if path is not None:
            return Database(path, reactor)
        from echotwist.pgstore import Database as PostgresDatabase

        return PostgresDatabase(self.store, reactor)
