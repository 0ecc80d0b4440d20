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

import dataclasses
import logging

from _common import variant_parser
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

    args = variant_parser(__doc__, variants=["1.5+flip", "1.0+flip", "1.0"],
                          variants_help="SCALES[+flip], scales comma-separated", out="/tmp/boxstrap-bench/views").parse_args()
    logging.basicConfig(level=logging.WARNING)
    table = {}
    for variant in args.variants:
        scales, flip = parse_variant(variant)
        config = dataclasses.replace(PipelineConfig().localize, scales=scales, flip=flip, overlays=False)
        table[variant] = relocalize(args.suite, args.data, args.out / variant, config, label=variant, reuse_pass=False)
    print_variants(table, "map views")
    passes = {variant: {k.split()[0]: r["pass_seconds"] for k, r in rows.items()} for variant, rows in table.items()}
    print("cells: pseudo boxes CorLoc / mean IoU / mAP@0.5, localize seconds after the classifier pass. "
          "Classifier pass seconds: " + "; ".join(f"{variant}: " + ", ".join(f"{s} {v:.0f}" for s, v in by_set.items())
                                                  for variant, by_set in passes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
