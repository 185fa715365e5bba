"""
The echolab console client (C{echolab-client}, or C{python -m
echotwist.client}): a Twisted client of the echolab protocol for a person
at a terminal or for a script, which keeps login tokens like cookies.
"""
