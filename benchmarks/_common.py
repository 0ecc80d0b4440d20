"""What the benchmarks share: where the photos are, and the unit of time (one VGG16 forward pass)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

# The real photo sets beside the project (never committed): ../shared/data from the project root.
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTOS = DATA / "blocks"


def forward_pass(manifest, input_size, batch_size: int = 16) -> tuple[float, int]:
    """Seconds of one plain VGG16 conv-base forward pass over every image of a prepared dataset.

    The images are decoded and resized before the clock starts; the model is built and traced on
    one batch first, so the time is the network's alone.
    """
    import keras

    from classifier.backbones.vgg16 import vgg16_preprocessing
    from datasets.tf_input import load_split

    preprocessing = vgg16_preprocessing(input_size)
    images = np.concatenate([load_split(manifest, s, preprocessing)[0] for s in ("train", "valid", "test")
                             if manifest.split(s)])
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(*input_size, 3))
    model.predict(preprocessing.apply(images[:batch_size]), verbose=0)
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        model.predict_on_batch(preprocessing.apply(images[i:i + batch_size]))
    return time.perf_counter() - start, len(images)


def print_table(rows: list[tuple[str, str]], header: tuple[str, str] = ("measure", "value")) -> str:
    """Print (and return) a Markdown table of (name, value) rows."""
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    text = "\n".join(lines)
    print(text)
    return text


def variant_parser(doc: str, *, variants: list[str], variants_help: str, out: str):
    """The arguments of a benchmark that reruns part of a finished suite with each of ``variants``:
    ``--suite``, ``--data``, ``--variants`` and ``--out`` (add more, then ``parse_args``)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, required=True, help="a finished benchmarks/suite.py --out folder")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the photo sets (default %(default)s)")
    parser.add_argument("--variants", nargs="+", default=variants, help=variants_help)
    parser.add_argument("--out", type=Path, default=Path(out), help="work folder")
    return parser


README = Path(__file__).resolve().parents[1] / "README.md"


def write_readme_block(marker: str, text: str) -> None:
    """Put ``text`` into README.md between ``<!-- marker -->`` and ``<!-- /marker -->``: the README's
    tables are the benchmarks' output, never typed by hand."""
    block = f"<!-- {marker} -->\n{text}\n<!-- /{marker} -->"
    README.write_text(re.sub(rf"<!-- {marker} -->.*?<!-- /{marker} -->", lambda _: block, README.read_text(),
                             flags=re.S))
    print(f"wrote the table into {README}")
