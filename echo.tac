# echolab as a .tac file:  twistd -ny echo.tac
#
# The very same server as `twistd -n echolab`, built by the same
# makeService. Settings: edit ARGS below, or set ECHOLAB_ARGS in the
# environment (for example ECHOLAB_ARGS="--port 9191 --mode ident").
import os
import shlex
import sys

from twisted.application import service
from twisted.python import usage

from echotwist.tap import Options, makeService

ARGS = "--mode auth"

options = Options()
try:
    options.parseOptions(shlex.split(os.environ.get("ECHOLAB_ARGS", ARGS)))
except usage.UsageError as e:  # one line and status 2, as twistd echolab gives
    sys.stderr.write(f"echo.tac: {e}\n")
    raise SystemExit(2) from None
application = service.Application("echolab")
makeService(options).setServiceParent(application)
