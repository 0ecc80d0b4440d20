"""GrabCut's working size and iterations, chosen over every set of the suite.

GrabCut (``localize.refine.grabcut_refine``) shrinks each photo to ``max_side`` pixels on its
longer side and runs ``iterations`` rounds; its time grows with both. This benchmark reruns the
localize stage of finished suite runs (``benchmarks/suite.py --out SUITE``: each set's trained
classifier, the classifier pass read back from its cache, the same hand boxes per budget) with
each variant, and scores the pseudo boxes as the suite does: on the true photos of the capture
groups that gave no hand box. The time is the localize stage's after the classifier pass.

The suite's runs are read, never changed: each variant writes under ``OUT/VARIANT``.

Usage::

    python benchmarks/grabcut_size.py --suite /tmp/boxstrap-bench/suite [--variants 320x5 256x5 256x3 224x5]
                                      [--out /tmp/boxstrap-bench/grabcut]
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

from _common import variant_parser
from relocalize import print_variants, relocalize


def run_variant(suite: Path, data: Path, max_side: int, iterations: int, out: Path) -> dict:
    """{(set, budget): scores} of the pseudo boxes with GrabCut at ``max_side`` and ``iterations``."""
    import localize.pseudo_boxes as pseudo_boxes_module
    import localize.refine as refine
    from boxstrap.pipeline import PipelineConfig

    original = refine.grabcut_refine
    variant = functools.partial(original, max_side=max_side, iterations=iterations)
    # Every caller looks it up at call time: the cut choice in localize.refine, the cut in pseudo_boxes.
    refine.grabcut_refine = pseudo_boxes_module.grabcut_refine = variant
    try:
        config = dataclasses.replace(PipelineConfig().localize, overlays=False)  # boxes only, not pictures
        return relocalize(suite, data, out, config, label=f"{max_side}x{iterations}")
    finally:
        refine.grabcut_refine = pseudo_boxes_module.grabcut_refine = original


def main() -> int:
    args = variant_parser(__doc__, variants=["320x5", "256x5", "256x3", "224x5"], variants_help="MAX_SIDExITERATIONS",
                          out="/tmp/boxstrap-bench/grabcut").parse_args()
    logging.basicConfig(level=logging.WARNING)
    table = {}
    for variant in args.variants:
        side, iterations = (int(v) for v in variant.split("x"))
        table[variant] = run_variant(args.suite, args.data, side, iterations, args.out / variant)
    keys = print_variants(table, "GrabCut side x iterations")
    print("cells: pseudo boxes CorLoc / mean IoU / mAP@0.5, localize seconds after the classifier pass; cut chosen: "
          + ", ".join(f"{k} {table[args.variants[0]][k]['cut']}" for k in keys if k in table[args.variants[0]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
