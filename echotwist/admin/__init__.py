"""
C{echolab-admin}: manage the accounts and identities of an echolab data
folder, back it up and restore it, while its server runs (docs/admin.md).
"""

# Exit statuses (said in --help and docs/admin.md).
OK = 0
REFUSED = 1  # the tool ran and the answer is no: damage found, weak password
USAGE = 2  # a bad command line
NOT_FOUND = 3  # no such login or address: nothing changed
UNUSABLE = 4  # the data folder or its database cannot be used: nothing changed


class AdminError(Exception):
    """
    Why a command did nothing, in one line for a person, with the exit
    status that says it to a script.
    """

    def __init__(self, line, status):
        super().__init__(line)
        self.status = status
