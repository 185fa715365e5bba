"""
C{python -m echotwist.admin}: the same as C{echolab-admin}.
"""

from echotwist.admin.cli import main

main()
