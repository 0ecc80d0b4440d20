"""The views of the classifier's localizing pass, chosen over every set of the suite.

The localize stage runs the classifier on each photo at its input size (probabilities and the
descriptors the box model and the cell localizer read) and, for the class maps, at more views:
``LocalizeConfig.scales`` (multiples of the input size) and, with ``flip``, the mirrored photo;
the maps of the views are normalised and averaged (:mod:`classifier.multi_view_maps`). Each view
is a pass of the network, and a 1.5x view costs 2.25 plain ones. This benchmark reruns the
localize stage of a finished suite (:func:`relocalize.relocalize`) with each variant and prints
the pseudo boxes' scores beside the classifier pass's time (every variant's pass run here).

Usage::

    python benchmarks/map_views.py --suite /tmp/boxstrap-bench/suite [--variants 1.5+flip 1.0+flip 1.0]
                                   [--out /tmp/boxstrap-bench/views]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from _common import DATA
from relocalize import print_variants, relocalize


def parse_variant(text: str) -> tuple[tuple[float, ...], bool]:
    """``"1.5+flip"`` -> ((1.5,), True); ``"1.0,1.5"`` -> ((1.0, 1.5), False)."""
    parts = text.split("+")
    flip = parts[1:] == ["flip"]
    if len(parts) > 1 and not flip:
        raise SystemExit(f"a variant is SCALES or SCALES+flip (scales comma-separated). Received: {text!r}")
    return tuple(float(v) for v in parts[0].split(",")), flip


def main() -> int:
    from boxstrap.pipeline import PipelineConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, required=True, help="a finished benchmarks/suite.py --out folder")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the photo sets (default %(default)s)")
    parser.add_argument("--variants", nargs="+", default=["1.5+flip", "1.0+flip", "1.0"],
                        help="SCALES[+flip], scales comma-separated")
    parser.add_argument("--out", type=Path, default=Path("/tmp/boxstrap-bench/views"), help="work folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    table = {}
    for variant in args.variants:
        scales, flip = parse_variant(variant)
        config = dataclasses.replace(PipelineConfig().localize, scales=scales, flip=flip, overlays=False)
        table[variant] = relocalize(args.suite, args.data, args.out / variant, config, label=variant, reuse_pass=False)
    keys = print_variants(table, "map views")
    sets = dict.fromkeys(k.split()[0] for k in keys)
    print("cells: pseudo boxes CorLoc / mean IoU / mAP@0.5, localize seconds after the classifier pass. "
          "Classifier pass seconds: "
          + "; ".join(f"{variant}: " + ", ".join(f"{s} {next(r['pass_seconds'] for k, r in rows.items() if k.startswith(s + ' ')):.0f}"
                                                 for s in sets if any(k.startswith(s + " ") for k in rows))
                      for variant, rows in table.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
