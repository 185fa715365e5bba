"""
C{python -m echotwist.client}: the same as C{echolab-client}.
"""

from echotwist.client.console import main

main()
