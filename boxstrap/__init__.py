"""boxstrap: phone photos per class in, a verified Core ML model and bootstrapped boxes out.

The product lives in five stage packages (``datasets``, ``classifier``, ``localize``,
``detector``, ``verify``) on the ground floor ``groundwork``; this package holds the command line, the
pipeline and its summary.
"""

from groundwork import __version__

__all__ = ["__version__"]
