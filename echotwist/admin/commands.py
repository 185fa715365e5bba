# -*- test-case-name: tests.test_admin_cli -*-
"""
What each C{echolab-admin} command does, over an L{AdminStore} and the
store's database: one coroutine per command, which prints its outcome on
C{tool.out} and returns the exit status, or raises L{AdminError}.
"""

import os

from echotwist import messages as m
from echotwist.addresses import canonical_host
from echotwist.admin import NOT_FOUND, OK, REFUSED, UNUSABLE, AdminError
from echotwist.admin.output import as_json, table, when
from echotwist.passwords import normalize, weakness
from echotwist.store import SCHEMA_VERSION, StoreError


def _tokens(count):
    return f"{count} token" if count == 1 else f"{count} tokens"


def _no_user(login):
    return AdminError(f"no user {login!r}; nothing changed", NOT_FOUND)


def _no_identity(address):
    return AdminError(f"no identity for {address}; nothing changed", NOT_FOUND)


def _listing(tool, found, nothing, headings, row):
    """
    Print the list C{found}: JSON, else C{nothing} when it is empty, else a
    table of C{row(item)} under C{headings}.
    """
    if tool.options.json:
        tool.say(as_json(found))
    elif not found:
        tool.say(nothing)
    else:
        tool.say(*table(headings, [row(item) for item in found]))


async def users(tool):
    _listing(
        tool,
        await tool.admin.users(),
        "no users",
        ("LOGIN", "CREATED", "LAST LOGIN", "TOKENS"),
        lambda u: (u.login, when(u.created), when(u.last_login), u.active_tokens),
    )


async def user(tool):
    found = await tool.admin.user(tool.options.login)
    if found is None:
        raise _no_user(tool.options.login)
    if tool.options.json:
        return tool.say(as_json(found))
    tool.say(
        f"login:          {found.login}",
        f"created:        {when(found.created)}",
        f"last login:     {when(found.last_login)}",
        f"active tokens:  {found.active_tokens}"
        + (
            f" (the last expires {when(found.next_expiry)})"
            if found.next_expiry
            else ""
        ),
        f"revoked tokens: {found.revoked_tokens}",
        f"expired tokens: {found.expired_tokens}",
    )


async def delete_user(tool):
    login = tool.options.login
    if not await tool.admin.delete_user(login):
        raise _no_user(login)
    tool.say(f"deleted {login}; its open sessions end within a second")


async def reset_password(tool):
    login = tool.options.login
    found = await tool.admin.user(login)
    if found is None:
        raise _no_user(login)
    password = tool.read_new_password(found.login)
    why = weakness(found.login, password)
    if why:
        raise AdminError(f"refused: {why}; nothing changed", REFUSED)
    hashed = tool.hash_context.hash(normalize(password))
    if not await tool.admin.set_password(login, hashed):
        raise _no_user(login)
    tool.say(
        f"new password set for {found.login}; its tokens are revoked and its "
        "open sessions end within a second"
    )


async def revoke(tool):
    if tool.options.all:
        count = await tool.admin.revoke_all_tokens()
        return tool.say(
            f"revoked {_tokens(count)} of everyone; logged-in sessions end "
            "within a second"
        )
    login = tool.options.login
    count = await tool.admin.revoke_tokens(login)
    if count is None:
        raise _no_user(login)
    tool.say(f"revoked {_tokens(count)} of {login}; its sessions end within a second")


async def identities(tool):
    _listing(
        tool,
        await tool.admin.identities(),
        "no identities",
        ("ADDRESS", "NAME", "UPDATED"),
        lambda i: (i.address, i.name, when(i.updated)),
    )


async def rename_identity(tool):
    address = canonical_host(tool.options.address)
    name = tool.options.name.strip()  # as the server takes a name
    why = m.check_name(name)
    if why:
        raise AdminError(f"refused: {why}; nothing changed", REFUSED)
    if not await tool.admin.rename_identity(address, name):
        raise _no_identity(address)
    tool.say(f"{address} is now {name}")


async def delete_identity(tool):
    address = canonical_host(tool.options.address)
    if not await tool.admin.delete_identity(address):
        raise _no_identity(address)
    tool.say(f"forgot the name of {address}; its next connection is asked again")


def _sqlite_only(tool, method):
    operation = getattr(tool.database, method, None)
    if operation is None:
        raise AdminError(
            f"this store cannot {method.replace('_', ' ')}: use its own tools", UNUSABLE
        )
    return operation


async def backup(tool):
    path = os.path.abspath(tool.options.file)
    if os.path.exists(path) and not tool.options.force:
        raise AdminError(f"{path} exists; give --force to replace it", REFUSED)
    try:
        await _sqlite_only(tool, "backup_to")(path)
    except OSError as e:
        raise AdminError(f"cannot write {path}: {e.strerror}", REFUSED) from None
    tool.say(f"backed up {tool.database.path} to {path}")


async def restore(tool):
    path = os.path.abspath(tool.options.file)
    if not os.path.isfile(path):
        raise AdminError(f"no backup file {path}; nothing changed", REFUSED)
    try:
        await _sqlite_only(tool, "restore_from")(path)
    except StoreError as e:
        raise AdminError(f"cannot restore: {e}; nothing changed", REFUSED) from None
    tool.say(f"restored {tool.database.path} from {path}")


async def check(tool):
    problems = await _sqlite_only(tool, "integrity_problems")()
    if problems:
        tool.say(*problems)
        return REFUSED
    tool.say(f"{tool.database.path}: sound (schema {SCHEMA_VERSION})")
    return OK
