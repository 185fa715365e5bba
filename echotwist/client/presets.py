# -*- test-case-name: tests.test_client_conversation -*-
"""
Answers given on the command line (C{--login}, C{--name}, and the
password from C{--password-file} or C{--password-fd}), so that a script
never carries a secret in its command stream and a re-run that logs in
with a saved token never says a line meant as an answer.
"""

import os
import stat

from echotwist.i18n import _

MAX_PASSWORD_BYTES = 4096
"""More than any password; a file longer than this is not a password file."""

_FIELDS_OF = {
    "login": ("login",),
    "name": ("name",),
    "password": ("password", "new_password"),
}


class PasswordSourceError(Exception):
    """
    The password file or descriptor cannot be read; says why.
    """


def read_password(path=None, fd=None):
    """
    The password from a file or an open file descriptor: its first line,
    without the line ending (spaces are kept, they may be part of it).

    @raise PasswordSourceError: unreadable, empty, or too long; or the
        descriptor is standard input, the script's command stream.
    """
    if fd is not None:
        if fd in (0, 1, 2):
            raise PasswordSourceError(
                _(
                    "--password-fd {fd}: not standard input, output or error "
                    "(the password never comes from the command stream)"
                ).format(fd=fd)
            )
        try:
            data = _read_bounded(fd)
        except OSError as e:
            raise PasswordSourceError(f"--password-fd {fd}: {e.strerror}") from None
        finally:
            _close_quietly(fd)
        where = f"--password-fd {fd}"
    else:
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        except OSError as e:
            raise PasswordSourceError(
                f"--password-file: {path}: {e.strerror}"
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise PasswordSourceError(
                    _("--password-file: {path}: not a file").format(path=path)
                )
            data = _read_bounded(descriptor)
        finally:
            os.close(descriptor)
        where = f"--password-file {path}"
    if len(data) > MAX_PASSWORD_BYTES:
        raise PasswordSourceError(
            _("{where}: longer than {max} bytes").format(
                where=where, max=MAX_PASSWORD_BYTES
            )
        )
    line = data.split(b"\n", 1)[0].removesuffix(b"\r")
    if not line:
        raise PasswordSourceError(
            _("{where}: the password is empty").format(where=where)
        )
    return line.decode("utf-8", "replace")


def _read_bounded(fd):
    data = b""
    while len(data) <= MAX_PASSWORD_BYTES:
        chunk = os.read(fd, MAX_PASSWORD_BYTES + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass


class Presets:
    """
    The answers given as options, each used once per question: if the
    server asks the same question again, it refused the answer.
    """

    def __init__(self, login=None, name=None, password=None, password_option=None):
        """
        @param password_option: the option the password came from, to
            name it to the person.
        """
        self._answers = {}
        for key, value, option in (
            ("login", login, "--login"),
            ("name", name, "--name"),
            ("password", password, password_option),
        ):
            if value is not None:
                for field in _FIELDS_OF[key]:
                    self._answers[field] = (value, option)
        self._used = set()

    def take(self, field):
        """
        @return: (answer, the option it came from) for C{field} if it was
            given and not used yet in this session, else L{None}.
        """
        found = self._answers.get(field) if isinstance(field, str) else None
        if found is None or field in self._used:
            return None
        self._used.add(field)
        return found

    def was_used(self, field):
        """
        Whether the answer to C{field} was given once already (the server
        asking again means it refused it).
        """
        return isinstance(field, str) and field in self._used

    def fresh(self):
        """
        @return: the same answers, none used yet, for a new session.
        """
        copy = Presets()
        copy._answers = dict(self._answers)
        return copy


def option_for(field):
    """
    The option(s) a script gives C{field}'s answer with.
    """
    if field in ("password", "new_password"):
        return _("--password-file or --password-fd")
    if field in ("login", "name"):
        return f"--{field}"
    return None
