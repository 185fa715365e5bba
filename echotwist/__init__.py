"""
echolab: an authenticated, length-prefixed TCP service on Twisted.

The import package is C{echotwist}; the distribution is C{echolab}.
"""

from importlib import metadata

try:
    __version__ = metadata.version("echolab")
except metadata.PackageNotFoundError:  # running from a checkout, not installed
    __version__ = "0+unknown"
