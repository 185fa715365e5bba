# -*- test-case-name: tests.test_admin_cli -*-
"""
Where C{echolab-admin} gets its store: the one function that opens it, so
that another kind of store (a C{--store URL}) is one more branch here and
every command works on it unchanged.
"""

import os

from echotwist.admin import UNUSABLE, AdminError
from echotwist.deployment import Deployment
from echotwist.service import DataDirectoryLock
from echotwist.startup import StartupError
from echotwist.store import StoreError


def open_store(options, reactor, create=False):
    """
    Open the store the server uses, as it does (migrating an older schema;
    a newer one is refused): the one C{options.store} names (the server's
    C{--store}), else the database of the data folder C{options.data_dir}.
    Never creates a data folder, and creates an SQLite database only when
    C{create} (a restore into a folder that has none yet).

    @return: an opened L{echotwist.store.IDatabase}.
    @raise AdminError: with status L{UNUSABLE}, and nothing changed, when
        the folder or its database is missing, unreadable or too new, or
        the store cannot be reached.
    """
    deployment = Deployment(store=getattr(options, "store", None))
    if deployment.sqlite_path("") is None:
        database = deployment.database(None, reactor)
        where = None  # (its errors name it, without the password)
    else:
        data_dir = data_folder(options)
        where = deployment.sqlite_path(data_dir)
        if not create and not os.path.exists(where):
            raise AdminError(
                f"no database {where} (the server makes one when it first "
                "starts in ident or auth mode)",
                UNUSABLE,
            )
        database = deployment.database(data_dir, reactor)
    try:
        database.open()
    except (StoreError, OSError) as e:
        reason = _reason(e) if where is None else f"cannot use {where}: {_reason(e)}"
        raise AdminError(reason, UNUSABLE) from None
    return database


def data_folder(options):
    """
    The absolute data folder C{options} name, which must exist.

    @raise AdminError: if it does not.
    """
    data_dir = os.path.abspath(options.data_dir)
    if not os.path.isdir(data_dir):
        raise AdminError(
            f"no data folder {data_dir} (give --data-dir; the server creates "
            "its folder when it first starts)",
            UNUSABLE,
        )
    return data_dir


def _reason(error):
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def hold_data_folder(options):
    """
    Take the lock a running server holds on its data folder, for the
    tool's lifetime (the kernel lets it go when the process ends): for a
    restore, which no server may see happen.

    @raise AdminError: if a server is running there.
    """
    data_dir = data_folder(options)
    lock = DataDirectoryLock(data_dir)
    try:
        lock.privilegedStartService()
    except StartupError:
        raise AdminError(
            f"a server is running on {data_dir}: stop it before restoring",
            UNUSABLE,
        ) from None
    except OSError as e:
        raise AdminError(f"cannot lock {data_dir}: {_reason(e)}", UNUSABLE) from None
    return lock
