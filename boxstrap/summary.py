"""The run summary: ``RUN/summary.md`` and a self-contained ``RUN/summary.html``.

Both are rendered from one list of blocks (headings, paragraphs, tables, pictures), so they
always say the same thing; the HTML embeds the pictures, so it can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import math
import time
from pathlib import Path
from typing import Any

import boxstrap
from groundwork.atomic import write_text

__all__ = ["accuracy_text", "boxes_text", "render_html", "render_markdown", "shipped_model_text", "summary_blocks",
           "unscored_boxes_text", "write_summary"]

Block = tuple[str, Any]


def write_summary(run: Path, results: dict, config: Any) -> tuple[Path, Path]:
    """Write ``summary.md`` and ``summary.html`` into ``run``; return their paths."""
    blocks = summary_blocks(run, results)
    md = write_text(run / "summary.md", render_markdown(blocks, run))
    page = write_text(run / "summary.html", render_html(blocks, run))
    return md, page


def summary_blocks(run: Path, results: dict) -> list[Block]:
    """The summary's content, in order."""
    get = {name: r.numbers for name, r in results.items()}
    blocks: list[Block] = [("h1", "boxstrap run summary"),
                           ("p", f"Run folder `{run}`, boxstrap {boxstrap.__version__}, "
                                 f"{time.strftime('%Y-%m-%d %H:%M')}.")]
    files = [[fmt, f"`{path}`", f"{get['export']['sizes_mb'][fmt]} MB"]
             for fmt, path in get.get("export", {}).get("files", {}).items()]
    if "boxes-export" in get:
        files.append(["detector (ML Program + NMS)", f"`{get['boxes-export']['file']}`",
                      f"{get['boxes-export']['size_mb']} MB"])
    blocks += [("h2", "Core ML models to drag into Xcode"), ("table", (["model", "path", "size"], files))]

    prepare = get.get("prepare", {})
    if prepare:
        rows = [[split, *[str(prepare["counts"][split][label]) for label in prepare["labels"]]]
                for split in ("train", "valid", "test")]
        blocks += [("h2", "Data"),
                   ("p", f"{prepare['images']} photos, {prepare['skipped']} skipped as unreadable, "
                         f"{prepare['groups']} capture groups (no group spans two splits)."),
                   ("table", (["split", *prepare["labels"]], rows))]
    train = get.get("train", {})
    if train:
        rows = [[split, accuracy_text(train[split])] for split in ("valid", "test") if split in train]
        blocks += [("h2", "Classifier"), ("table", (["split", "accuracy (split run's estimate)"], rows))]
        if train.get("backbone"):
            size = train.get("input_size") or []
            blocks.append(("p", f"Backbone {train['backbone']} (starting weights {train.get('weights')}), "
                                f"input {'x'.join(str(v) for v in size)}."))
        if train.get("shipped_model"):
            blocks.append(("p", shipped_model_text(train["shipped_model"])))
        model_dir = run / "train" / "model"
        blocks += [("img", model_dir / name) for name in ("training_curves.png", "confusion_matrix.png")
                   if (model_dir / name).is_file()]
    for stage, title in (("verify", "Parity: Core ML classifier vs Keras"),
                         ("boxes-verify", "Parity: Core ML detector vs Keras")):
        exports = get.get(stage, {}).get("exports", [])
        if exports:
            keys = [k for k in ("precision", "top1_agreement", "max_abs_diff", "mean_abs_diff", "min_box_iou",
                                "mean_box_iou") if any(k in e for e in exports)]
            rows = [[Path(str(e.get("path", ""))).name, *[_fmt(e.get(k)) for k in keys],
                     "pass" if e.get("passed") else "FAIL"] for e in exports]
            blocks += [("h2", title), ("table", (["export", *keys, "result"], rows))]
    box_rows = []
    for stage, key, name in (("localize", "scores", "pseudo boxes"),
                             ("boxes", "split_scores", "pseudo boxes, split or averaged by the box model"),
                             ("boxes", "scores", "box model")):
        scores = get.get(stage, {}).get(key)
        if scores:
            box_rows.append([name, _fmt(scores["corloc"]), _fmt(scores["mean_iou"]), _fmt(scores.get("recall50")),
                             _fmt(scores["map50"]), _fmt(scores["map50_95"]), _fmt(scores.get("extra_per_photo")),
                             _ranking_text(scores), str(scores["n_scored"])])
    if box_rows or "localize" in get:
        loc = get.get("localize", {})
        blocks += [("h2", "Boxes"),
                   ("p", f"{loc.get('with_box', 0)} of {loc.get('images', 0)} photos got a pseudo box; "
                         f"flagged for review: {loc.get('flagged', 0)} (`localize/review.json`; check and correct "
                         f"them with `boxstrap review {run}`).")]
        split = get.get("boxes", {}).get("split")
        if split:
            kept = int(get.get("boxes", {}).get("chosen_round") or 1)
            who = ("The box model" if kept < 2 else "The first round's box model" if kept == 2
                   else f"The box models of rounds 1 to {kept - 1}")
            blocks.append(("p", f"{who} split {split['photos']} pseudo boxes into a box per object (where "
                                "two or more of its boxes lay inside one) and averaged "
                                f"{split.get('fused', 0)} with its own box of the object: `boxes/pseudo_boxes.json` "
                                "and `boxes/annotations/` hold the pseudo boxes so refined"
                                + (f"; the shipped box model (round {kept}) learned from them." if kept >= 2 else ".")))
        reviewed = loc.get("reviewed")
        if reviewed:
            blocks.append(("p", f"Reviewed in the browser: {reviewed['photos']} photos ({reviewed['boxes']} boxes), "
                                f"{reviewed['accepted_as_they_were']} accepted as they were and "
                                f"{reviewed['corrected']} corrected; learned from as hand boxes "
                                "(`review/hand_boxes.json`)."
                                + (f" {reviewed['relabelled']} were given another class than their folder's: their "
                                   "boxes carry it, the classifier still learns each photo's folder (move them "
                                   "into their class's folder and rerun)." if reviewed.get("relabelled") else "")))
        if box_rows:
            blocks.append(("table", (["boxes", "CorLoc", "mean IoU", "recall (all boxes)", "mAP@0.5", "mAP@[.5:.95]",
                                      "extra boxes a photo", "scores' AUROC, right boxes above wrong",
                                      "photos scored"],
                                     box_rows)))
        blocks += [("p", text) for text in boxes_text(loc.get("scores") or {}, get.get("boxes", {}))]
        if "localize" in get and not loc.get("scores"):
            blocks.append(("p", unscored_boxes_text(run)))
        if (run / "learning_curve.png").is_file():
            blocks += [("p", "What hand boxes buy (benchmarks/learning_curve.py; held-out photos only):"),
                       ("img", run / "learning_curve.png")]
        sheet = run / "localize" / "contact_sheets" / "sheet_001.png"
        if sheet.is_file():
            blocks += [("p", "Lowest-confidence pseudo boxes first:"), ("img", sheet)]
    rows = [[name, "skipped (unchanged)" if r.skipped else f"{r.seconds:.1f}",
             _fmt(r.numbers.get("peak_rss_mb"))] for name, r in results.items()]
    blocks += [("h2", "Stages"), ("table", (["stage", "seconds", "peak memory (MB)"], rows))]
    return blocks


def unscored_boxes_text(run: Path) -> str:
    """What the summary says of boxes it has no truth to score (no hand box, no ``--ground-truth``).

    Examples
    --------
    >>> unscored_boxes_text(Path("runs/cats")).split(": ")[0]
    'No hand box was given, so these boxes are not scored'
    """
    return ("No hand box was given, so these boxes are not scored: nothing here says how many are right. What boxes "
            "from labels alone score on other photo sets, and what 10 or 20 hand boxes add, is the README's suite "
            f"table (\"On objects unlike the blocks\"). Check and correct about 20 photos with `boxstrap review {run}` "
            "and run `boxstrap pipeline` again with the same `--out`: it learns from them and scores its boxes on "
            "photos held out from what learned them.")


def boxes_text(localize_scores: dict[str, Any], boxes: dict[str, Any]) -> list[str]:
    """What the box scores rest on: the hand boxes learned from and how the photos were held out.

    Examples
    --------
    >>> boxes_text({"threshold": {"value": None, "method": "midpoint", "n_images": 0}}, {})
    ['No hand box was given: each class map was boxed half way from its median to its peak.']
    """
    texts = []
    learned = localize_scores.get("localizer")
    threshold = localize_scores.get("threshold")
    if learned:
        texts.append(f"Pseudo boxes: a cell localizer learned from {learned['hand_boxes']} hand boxes in "
                     f"{learned['groups']} capture groups (threshold {learned['threshold']:.2f}), saved with the "
                     f"model; the {localize_scores.get('n_scored', 0)} hand-boxed photos were scored "
                     f"{learned['scored'].split(':', 1)[0]} (each by a localizer fitted without its group).")
    elif threshold and threshold["method"] == "midpoint":
        texts.append("No hand box was given: each class map was boxed half way from its median to its peak.")
    elif threshold and threshold["method"] == "ddt":
        texts.append("No hand box was given: each class's photos were co-localised (DDT: the descriptors of every "
                     "position of the class's photos projected on their first principal component, the object "
                     f"where it is positive), and each photo's projection boxed at {threshold['value']:.2f} of its "
                     "peak.")
    elif threshold:
        text = f"CAM threshold {threshold['value']:.2f} ({threshold['method']}"
        if "held_out" in threshold:
            text += (f", calibrated on the {threshold['n_images']} hand-boxed photos; they were scored at "
                     f"{', '.join(f'{t:.2f}' for t in threshold['held_out'])}, each half at the threshold "
                     "calibrated on the other half")
        texts.append(text + ").")
    scored = (boxes.get("scores") or {}).get("scored")
    if scored:
        rounds = boxes.get("rounds", [])
        refined = " (refined by the round before's box model)" if int(boxes.get("chosen_round") or 1) >= 2 else ""
        text = (f"Box model: trained on the pseudo boxes{refined} and {boxes.get('hand_boxes', 0)} hand boxes; "
                f"scored {scored}.")
        if any("held_out" in r for r in rounds):
            text += (" Self-training rounds (held-out mean IoU): "
                     + ", ".join(f"{r['round']}: {r['held_out']['mean_iou']:.3f}" for r in rounds if "held_out" in r)
                     + f"; kept round {boxes.get('chosen_round')}.")
        texts.append(text)
    return texts


def accuracy_text(split: dict[str, Any]) -> str:
    """A split's accuracy with the photos it rests on and its 95% interval.

    ``split`` is a split's entry of ``metrics.json`` (:func:`classifier.metrics.classification_metrics`);
    an entry without ``count`` (a run made before it was recorded) gives the accuracy alone.

    Examples
    --------
    >>> accuracy_text({"accuracy": 1.0, "count": 5, "accuracy_interval": [0.5655, 1.0]})
    '1.000 (5 photos; 95% interval 0.57-1.00)'
    >>> accuracy_text({"accuracy": 0.95})
    '0.950'
    """
    text = f"{split['accuracy']:.3f}"
    if split.get("count") and split.get("accuracy_interval"):
        low, high = split["accuracy_interval"]
        text += f" ({split['count']} photo{'s' * (split['count'] != 1)}; 95% interval {low:.2f}-{high:.2f})"
    return text


def shipped_model_text(shipped: dict[str, Any]) -> str:
    """Which photos the shipped classifier saw, and what its accuracy figures mean.

    ``shipped`` is ``metrics.json``'s ``shipped_model`` (:func:`classifier.train.train`):
    ``{"trained_on": [...], "images": N, "epochs": {"head": h, "fine_tune": f}}``.

    Examples
    --------
    >>> shipped_model_text({"trained_on": ["train"], "images": 8, "epochs": {"head": 3, "fine_tune": 0}}).split(":")[0]
    "The shipped classifier is the split run's model"
    """
    epochs = shipped.get("epochs", {})
    count = f"{epochs.get('head', 0)} head epoch{'s' * (epochs.get('head', 0) != 1)}"
    if epochs.get("fine_tune"):
        count += f" and {epochs['fine_tune']} fine-tuning epoch{'s' * (epochs['fine_tune'] != 1)}"
    splits = list(shipped.get("trained_on", []))
    if splits == ["train"]:
        return (f"The shipped classifier is the split run's model: trained on the {shipped.get('images')} train "
                f"photos only ({count}, where the valid loss was lowest). Its valid and test accuracy is "
                "measured on photos it had not seen.")
    names = ", ".join(splits[:-1]) + f" and {splits[-1]}" if len(splits) > 1 else "".join(splits)
    return (f"The shipped classifier was trained on all {shipped.get('images')} photos ({names}) for {count}, "
            "the epochs at which the split run's valid loss was lowest. The accuracy reported is the "
            "split run's estimate: a model trained the same way on the train photos alone, measured on "
            "photos it had not seen.")


def render_markdown(blocks: list[Block], run: Path) -> str:
    lines: list[str] = []
    for kind, value in blocks:
        if kind == "h1":
            lines += [f"# {value}", ""]
        elif kind == "h2":
            lines += [f"## {value}", ""]
        elif kind == "p":
            lines += [value, ""]
        elif kind == "table":
            header, rows = value
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
        elif kind == "img":
            lines += [f"![{value.stem}]({value.relative_to(run).as_posix()})", ""]
    return "\n".join(lines)


def render_html(blocks: list[Block], run: Path) -> str:
    body: list[str] = []
    for kind, value in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_code(value)}</p>")
        elif kind == "table":
            header, rows = value
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            cells = "".join("<tr>" + "".join(f"<td>{_inline_code(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><tr>{head}</tr>{cells}</table>")
        elif kind == "img":
            data = base64.b64encode(value.read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(value.stem)}" src="data:image/png;base64,{data}"></p>')
    style = ("body{font-family:-apple-system,Helvetica,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
             "img{max-width:100%}code{background:#f3f3f3;padding:0 .2em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>boxstrap run summary</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _inline_code(text: str) -> str:
    parts = html.escape(str(text)).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _ranking_text(scores: dict[str, Any]) -> str:
    """How well a row's scores rank its right boxes (IoU >= 0.5) above its wrong ones: their AUROC
    with the number of wrong boxes it rests on; "-" where there is none to rank (no wrong box, no
    right one, or a run from before it was recorded).

    Examples
    --------
    >>> _ranking_text({"score_auroc": 0.8904, "n_wrong_boxes": 5})
    '0.890 (5 wrong)'
    >>> _ranking_text({"score_auroc": float("nan"), "n_wrong_boxes": 0}), _ranking_text({})
    ('-', '-')
    """
    auroc = scores.get("score_auroc")
    if auroc is None or math.isnan(auroc):
        return "-"
    return f"{auroc:.3f} ({scores.get('n_wrong_boxes', 0)} wrong)"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.3f}"
    return str(value)
