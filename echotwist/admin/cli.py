# -*- test-case-name: tests.test_admin_cli -*-
"""
C{echolab-admin}'s command line: the commands and their flags, and running
one with its outcome said in one line and an exit status (docs/admin.md).
"""

import argparse
import contextlib
import getpass
import signal
import sys
import threading

from twisted.internet import defer, task

from echotwist.admin import (
    NOT_FOUND,
    OK,
    REFUSED,
    UNUSABLE,
    USAGE,
    AdminError,
    commands,
)
from echotwist.admin.opening import hold_data_folder, open_store
from echotwist.admin_store import AdminStore
from echotwist.options import DEFAULT_DATA_DIR
from echotwist.passwords import make_context
from echotwist.store import StoreError

PROGRAM = "echolab-admin"

EPILOG = f"""\
exit status:
  {OK}  done
  {REFUSED}  refused or failed, nothing changed: a weak or mistyped password, an
     unacceptable name, an unsound backup file, a backup that cannot be
     written or exists already (without --force); or, for check, damage
     found
  {USAGE}  bad command line
  {NOT_FOUND}  no such user or identity; nothing changed
  {UNUSABLE}  the data folder or its database cannot be used (missing, locked,
     unreadable, from a newer echolab; a running server, for restore);
     nothing changed

Changes reach a server running on the same data folder within a second.
See docs/admin.md.
"""


class _Parser(argparse.ArgumentParser):
    """
    A bad command line is one line on standard error and status 2, not
    argparse's usage text.
    """

    def error(self, message):
        self.exit(USAGE, f"{PROGRAM}: {message} (see {PROGRAM} --help)\n")


def _common(suppress):
    """
    The flags every command takes, before or after its name (after it, with
    no default: a flag given before the name is kept).
    """
    parent = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    parent.add_argument(
        "-d",
        "--data-dir",
        default=default or DEFAULT_DATA_DIR,
        help="the server's data folder, as given to the server "
        f"[default: {DEFAULT_DATA_DIR}, in the current folder]",
    )
    parent.add_argument(
        "--store",
        metavar="URL",
        default=default,
        help="the server's --store, as given to the server: "
        "postgresql://USER@HOST/DB or sqlite:PATH "
        "[default: the SQLite file in --data-dir]",
    )
    parent.add_argument(
        "--json",
        action="store_true",
        default=default or False,
        help="print JSON (one line) instead of tables",
    )
    return parent


_COMMANDS = [
    # name, function, help, arguments
    ("users", commands.users, "list the users: login, created, last login, tokens", []),
    ("user", commands.user, "show one user in detail", ["login"]),
    ("delete-user", commands.delete_user, "delete a user; its sessions end", ["login"]),
    (
        "reset-password",
        commands.reset_password,
        "set a user's password (asked twice, not echoed) and revoke its tokens",
        ["login", "--password-stdin"],
    ),
    (
        "revoke",
        commands.revoke,
        "revoke a user's tokens (or everyone's: --all); their sessions end",
        ["login?", "--all"],
    ),
    ("identities", commands.identities, "list the identities (ident mode)", []),
    (
        "rename-identity",
        commands.rename_identity,
        "give the address a new name",
        ["address", "name"],
    ),
    (
        "delete-identity",
        commands.delete_identity,
        "forget an address's name",
        ["address"],
    ),
    (
        "backup",
        commands.backup,
        "copy the database, consistent, to FILE while the server runs",
        ["file", "--force"],
    ),
    (
        "restore",
        commands.restore,
        "replace the database with a backup (the server stopped)",
        ["file"],
    ),
    ("check", commands.check, "check the database for damage", []),
]

_FLAG_HELP = {
    "--password-stdin": "read the password from the first line of standard input",
    "--all": "every user's tokens",
    "--force": "replace FILE if it exists",
}


def parser():
    """
    @rtype: L{argparse.ArgumentParser}
    """
    top = _Parser(
        prog=PROGRAM,
        description="Manage the users and identities of an echolab data "
        "folder, and back it up, while its server runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(suppress=False)],
    )
    subcommands = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, function, text, arguments in _COMMANDS:
        sub = subcommands.add_parser(
            name, help=text, description=text, parents=[_common(suppress=True)]
        )
        sub.set_defaults(function=function)
        for argument in arguments:
            if argument.startswith("--"):
                sub.add_argument(
                    argument, action="store_true", help=_FLAG_HELP[argument]
                )
            elif argument.endswith("?"):
                sub.add_argument(argument[:-1], nargs="?")
            else:
                sub.add_argument(argument)
    return top


def parse_arguments(argv):
    """
    @raise SystemExit: with status 2 after one line, for a bad command line.
    """
    top = parser()
    # Unknown flags first: argparse would otherwise only say a command is
    # missing when the one word given is a misspelt flag.
    options, unknown = top.parse_known_args(argv)
    if unknown:
        top.error(f"unrecognized arguments: {' '.join(unknown)}")
    if options.command is None:
        top.error("give a command")
    if options.command == "revoke" and (options.login is None) == (not options.all):
        top.error("revoke takes either a LOGIN or --all")
    return options


class Tool:
    """
    What a command works with: its C{options}, the C{admin} operations,
    the C{database}, where to print, and how to ask for a password.
    """

    def __init__(self, options, database, clock, out, stdin, ask=getpass.getpass):
        self.options = options
        self.database = database
        self.admin = AdminStore(database, clock)
        self.out = out
        self.stdin = stdin
        self.ask = ask
        self.hash_context = make_context()

    def say(self, *lines):
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def read_new_password(self, login):
        """
        A new password for C{login}: the first line of standard input with
        C{--password-stdin}, else typed twice at the terminal, unechoed.
        Never from the command line or the environment, where other users
        and logs see it.
        """
        if self.options.password_stdin:
            line = self.stdin.readline()
            if not line:
                raise AdminError(
                    "no password on standard input; nothing changed", REFUSED
                )
            return line[:-1] if line.endswith("\n") else line
        if not self.stdin.isatty():
            raise AdminError(
                "no terminal to ask the password on: give --password-stdin", USAGE
            )
        try:
            with _interruptible():
                first = self.ask(f"New password for {login}: ")
                second = self.ask("The same again: ")
        except (EOFError, KeyboardInterrupt):
            raise AdminError("no password given; nothing changed", REFUSED) from None
        if first != second:
            raise AdminError("the two passwords differ; nothing changed", REFUSED)
        return first


@contextlib.contextmanager
def _interruptible():
    """
    Let Ctrl-C interrupt a prompt: the reactor's own handler would only
    ask it to stop, and the blocked read would go on waiting for a line.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def execute(options, reactor, out, err, stdin, ask=getpass.getpass, context=None):
    """
    Run the command C{options} name, on the store it names.

    @param context: the passlib context hashing a new password [default:
        the server's default argon2id parameters].
    @return: the exit status.
    """
    lock = database = None
    try:
        if options.command == "restore":
            lock = hold_data_folder(options)
        database = open_store(options, reactor, create=lock is not None)
        tool = Tool(options, database, reactor, out, stdin, ask)
        if context is not None:
            tool.hash_context = context
        status = await options.function(tool)
        return OK if status is None else status
    except AdminError as e:
        err.write(f"{PROGRAM}: {e}\n")
        return e.status
    except StoreError as e:
        err.write(f"{PROGRAM}: cannot use the store: {e}; nothing changed\n")
        return UNUSABLE
    except Exception as e:  # a bug: still one line, not a traceback
        err.write(f"{PROGRAM}: failed: {type(e).__name__}: {e}\n")
        return REFUSED
    finally:
        if database is not None:
            database.close()
        if lock is not None:
            lock.stopService()


def main(argv=None):
    """
    The C{echolab-admin} console script.
    """
    options = parse_arguments(sys.argv[1:] if argv is None else argv)

    def run(reactor):
        d = defer.Deferred.fromCoroutine(
            execute(options, reactor, sys.stdout, sys.stderr, sys.stdin)
        )

        def leave(status):
            raise SystemExit(status)

        return d.addCallback(leave)

    task.react(run)
