# -*- test-case-name: tests.test_client_profile -*-
"""
The client's tokens, kept like cookies (lab task 6): one file per user,
one entry per server (C{host:port}) holding the login and the token an
C{auth_ok} issued, with its expiry.

A token is as good as a password until it expires, so the file is treated
like libpq's C{.pgpass}: written 0600 in a 0700 directory, replaced
atomically (a crash leaves the old file or the new one, never half of
one), and ignored with a warning if group or others may read it.
"""

import json
import os
import secrets
import stat
import time

from echotwist.i18n import _
from echotwist.prompts import format_address

PROFILE_VERSION = 1


def default_path(environ=None):
    """
    Where the profile lives: C{$XDG_CONFIG_HOME/echolab/profile.json}, or
    C{~/.config/echolab/profile.json} when that variable is unset or not an
    absolute path (as the XDG base directory specification says).

    @param environ: the environment [default: L{os.environ}].
    """
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "echolab", "profile.json")


def server_key(host, port):
    """
    The key of a server in the profile: C{host:port}, an IPv6 address in
    brackets (C{[::1]:9090}).
    """
    return format_address(host.lower(), port)


class ProfileError(Exception):
    """
    The profile cannot be written.
    """


class Profile:
    """
    The tokens of one user, read from and written back to one file.

    @ivar path: the file.
    @ivar usable: false when the file was ignored (unsafe permissions):
        then nothing is read from it and nothing is written to it.
    @ivar warnings: one-line reasons found while loading, for the person.
    """

    def __init__(self, path, clock=time.time):
        """
        @param clock: returns the time in unix seconds, to drop expired
            tokens.
        """
        self.path = path
        self.clock = clock
        self.usable = True
        self.warnings = []
        self._servers = {}

    @classmethod
    def load(cls, path, clock=time.time):
        """
        Read the profile at C{path}; a missing file is an empty profile.

        @rtype: L{Profile}
        """
        profile = cls(path, clock)
        profile._read()
        return profile

    def _read(self):
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return
        except OSError as e:
            self._refuse(
                _("cannot open {path} ({why})").format(path=self.path, why=e.strerror)
            )
            return
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                self._refuse(_("{path} is not a regular file").format(path=self.path))
                return
            if info.st_mode & 0o077:
                self._refuse(
                    _(
                        "{path} may be read by others (mode {mode}): chmod 600 it"
                    ).format(path=self.path, mode=f"{stat.S_IMODE(info.st_mode):04o}")
                )
                return
            data = f.read()
        try:
            servers = json.loads(data)["servers"]
            if not isinstance(servers, dict):
                raise TypeError("servers is not an object")
        except (ValueError, KeyError, TypeError) as e:
            self.warnings.append(
                _(
                    "ignoring unreadable profile {path} ({why}); "
                    "it will be replaced when a token is saved"
                ).format(path=self.path, why=e)
            )
            return
        self._servers = {
            key: entry for key, entry in servers.items() if _well_formed(entry)
        }

    def _refuse(self, why):
        self.usable = False
        self.warnings.append(_("ignoring the token profile: {why}").format(why=why))

    def entry(self, key):
        """
        The saved login and token for the server C{key}, unless expired.

        @return: a L{dict} with C{login}, C{token} and C{expires}, or
            L{None}.
        """
        entry = self._servers.get(key)
        if entry is None or entry["expires"] <= self.clock():
            return None
        return dict(entry)

    def save_token(self, key, login, token, expires):
        """
        Keep C{token} (for C{login}, valid until C{expires}) for the server
        C{key}, replacing what was kept for it, and write the file.

        @raise ProfileError: if the file cannot be written.
        """
        self._servers[key] = {"login": login, "token": token, "expires": expires}
        self._write()

    def forget(self, key):
        """
        Drop the token of the server C{key}, if any, and write the file.

        @raise ProfileError: if the file cannot be written.
        """
        if self._servers.pop(key, None) is not None:
            self._write()

    def _write(self):
        if not self.usable:
            return
        now = self.clock()
        servers = {
            key: entry
            for key, entry in sorted(self._servers.items())
            if entry["expires"] > now
        }
        data = json.dumps(
            {"version": PROFILE_VERSION, "servers": servers}, indent=2
        ).encode("utf-8")
        try:
            write_private_file(self.path, data + b"\n")
        except OSError as e:
            raise ProfileError(
                _("cannot save the token profile {path} ({why})").format(
                    path=self.path, why=e.strerror or e
                )
            ) from None


def _well_formed(entry):
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("login"), str)
        and isinstance(entry.get("token"), str)
        and type(entry.get("expires")) is int
    )


def write_private_file(path, data):
    """
    Replace the file C{path} with C{data}, atomically and durably, readable
    by its owner only; create its directory with mode 0700 if missing.

    The data goes to a temporary file in the same directory (created 0600,
    so it is never readable by others, not even for a moment), which is
    synced, renamed over C{path}, and made durable by syncing the directory.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    temporary = os.path.join(
        directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp"
    )
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
