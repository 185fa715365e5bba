"""
The twistd plugin: C{twistd -n echolab --port 9090}. The module is named
by a string, so listing plugins (C{twistd --help}) does not import it.
"""

from twisted.application.service import ServiceMaker

echolab = ServiceMaker(
    "echolab",
    "echotwist.tap",
    "The echolab server: length-prefixed JSON over TCP (echo, ident, auth).",
    "echolab",
)
