# echolab as a .tac file:  twistd -ny echo.tac
#
# The very same server as `twistd -n echolab`, built by the same
# makeService. Settings: edit ARGS below, or set ECHOLAB_ARGS in the
# environment (for example ECHOLAB_ARGS="--port 9191 --mode ident").
import os
import shlex

from twisted.application import service

from echotwist.tap import Options, makeService

ARGS = "--mode auth"

options = Options()
options.parseOptions(shlex.split(os.environ.get("ECHOLAB_ARGS", ARGS)))
application = service.Application("echolab")
makeService(options).setServiceParent(application)
