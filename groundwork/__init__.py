"""groundwork: the ground floor every stage stands on.

Atomic writes (:mod:`groundwork.atomic`), the stage configs' JSON form (:mod:`groundwork.config`),
file hashes and sizes (:mod:`groundwork.files`), box geometry and scores (:mod:`groundwork.box_geometry`,
:mod:`groundwork.box_scores`), heatmaps checked and scaled (:mod:`groundwork.heatmaps`), output
paths checked before work starts (:mod:`groundwork.paths`), one writer per folder
(:mod:`groundwork.run_lock`), photo passes locally or on Ray (:mod:`groundwork.photo_map`),
progress bars on a terminal only (:mod:`groundwork.progress`) and the installed version. It
imports nothing of boxstrap's stages (``datasets``, ``classifier``, ``localize``, ``detector``,
``verify``) nor of the command line (``boxstrap``); they import it.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

__boxstrap_stage__ = "groundwork"  # what boxstrap.environment looks for

try:
    __version__ = version("boxstrap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
