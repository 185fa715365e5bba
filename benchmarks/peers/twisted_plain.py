"""Echo-mode peer: plain Twisted Int32StringReceiver + stdlib json.

The baseline a student would write: no tuning, default reactor (epoll on
Linux), one sendString per reply.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from twisted.internet import protocol, reactor  # noqa: E402
from twisted.protocols.basic import Int32StringReceiver  # noqa: E402

import _echo  # noqa: E402


class Echo(Int32StringReceiver):
    MAX_LENGTH = _echo.MAX_MESSAGE

    def connectionMade(self):
        self.sendString(_echo.WELCOME)

    def stringReceived(self, payload):
        frames, close = _echo.replies(payload)
        for f in frames:
            self.sendString(f)
        if close:
            self.transport.loseConnection()

    def lengthLimitExceeded(self, length):
        self.sendString(_echo.TOO_LARGE)
        self.transport.loseConnection()


def main():
    args = _echo.parse_args(__doc__)
    _echo.raise_fd_limit()
    factory = protocol.ServerFactory.forProtocol(Echo)
    port = reactor.listenTCP(args.port, factory, interface=args.interface)
    _echo.announce(args.interface, port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
