"""boxstrap: phone photos per class in, a verified Core ML model and bootstrapped boxes out.

The product lives in four stage packages (``datasets``, ``classifier``, ``localize``,
``verify``); this package holds the command line and the few helpers they share.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("boxstrap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
