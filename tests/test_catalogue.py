"""The reliability catalogue as one table: bad inputs, each a clear error (or a listed skip) that
names the problem, with no input changed and nothing written outside the folders named.

Each case builds its inputs in a fresh folder from shared tiny fixtures (demo photos, a tiny
classifier and box model, a prepared dataset), runs the command line in-process, and checks the
exit status, a pattern in what it printed, and that every input file is byte-for-byte unchanged
and no file appeared outside the case's output folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boxstrap.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path, dict], list[str]]  # (case folder, fixtures) -> argv; may spoil copies
    status: int
    pattern: str
    outputs: tuple[str, ...] = ("out",)  # folders under the case folder a run may write into


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    from classifier.backbones.vgg16 import VGG16, vgg16_preprocessing
    from classifier.export import ExportConfig, export_coreml
    from datasets.ingest import prepare
    from datasets.prepare_config import PrepareConfig
    from datasets.synthetic import DemoDataConfig, write_demo_data
    from detector.box_model import build_box_model
    from detector.box_model_dir import save_box_model
    from detector.box_train_config import BoxTrainConfig
    from tests.classifier._model_dirs import lambda_model, tiny_model, write_model_dir

    root = tmp_path_factory.mktemp("catalogue")
    photos = root / "photos"
    write_demo_data(photos, DemoDataConfig(per_class=3, size=(64, 80)), progress=False)
    model = write_model_dir(root / "model", input_size=(32, 32))
    lambda_dir = write_model_dir(root / "lambda", lambda_model())
    classifier = tiny_model(2, (32, 32))
    config = BoxTrainConfig(hidden=8, reduce_filters=4)
    box_model, _ = build_box_model(classifier, config, feature_layer=VGG16.feature_layer)
    box = save_box_model(box_model, root / "box", labels=("one", "ten"), preprocessing=vgg16_preprocessing((32, 32)),
                         config=config, metrics={})
    prepared = root / "prepared"
    prepare(PrepareConfig(src=photos, out=prepared, resplit=True, max_side=64), progress=None)
    export = export_coreml(model, root / "export", ExportConfig(format="mlprogram")).paths["mlprogram"]
    return {"photos": photos, "model": model, "lambda": lambda_dir, "box": box, "prepared": prepared,
            "export": export}


def copy(fixtures: dict, name: str, case: Path) -> Path:
    return Path(shutil.copytree(fixtures[name], case / name))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def boxes_file(path: Path, images: list[dict]) -> Path:
    path.write_text(json.dumps(images))
    return path


def _evaluate_inputs(case: Path, fx: dict) -> tuple[Path, Path]:
    gt = shutil.copy(fx["photos"] / "boxes.json", case / "gt.json")
    pred = shutil.copy(fx["photos"] / "boxes.json", case / "pred.json")
    return Path(pred), Path(gt)


def _deep_json(case: Path, fx: dict) -> list[str]:
    pred, _ = _evaluate_inputs(case, fx)
    (case / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    return ["evaluate-boxes", str(pred), str(case / "deep.json")]


def _escaping_boxes(case: Path, fx: dict) -> list[str]:
    # The photos are changed: use copies.
    model = copy(fx, "model", case)
    photos = copy(fx, "photos", case)
    gt = json.loads((photos / "boxes.json").read_text())
    gt[0]["file"] = "../../outside.jpg"
    gt[1]["file"] = "/etc/passwd"
    (photos / "boxes.json").write_text(json.dumps(gt))
    return ["localize", str(model), str(photos), "--out", str(case / "out"), "--ground-truth",
            str(photos / "boxes.json"), "--no-overlays"]


def _escaping_train_boxes(case: Path, fx: dict) -> list[str]:
    boxes = json.loads((fx["photos"] / "boxes.json").read_text())
    for b in boxes:
        b["file"] = "../../" + b["file"]
    boxes_file(case / "boxes.json", boxes)
    return ["train-boxes", str(fx["model"]), str(case / "boxes.json"), str(fx["photos"]), "--out", str(case / "out")]


def _escaping_manifest(case: Path, fx: dict) -> list[str]:
    prepared = copy(fx, "prepared", case)
    manifest = json.loads((prepared / "manifest.json").read_text())
    manifest["records"][0]["path"] = "../../escaped.jpg"
    (prepared / "manifest.json").write_text(json.dumps(manifest))
    return ["localize", str(fx["model"]), str(prepared), "--out", str(case / "out")]


def _bomb(case: Path, fx: dict, monkeypatch) -> list[str]:
    photos = case / "photos"
    (photos / "one").mkdir(parents=True)
    Image.new("RGB", (40, 30), (0, 160, 0)).save(photos / "one" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    return ["predict", str(fx["model"]), str(photos / "one" / "big.png")]


def _spoiled_model(name: str, spoil: Callable[[Path], None]) -> Callable[[Path, dict], list[str]]:
    def setup(case: Path, fx: dict) -> list[str]:
        model = copy(fx, "model", case)
        spoil(model / name)
        return ["predict", str(model), str(fx["photos"] / "one")]

    return setup


def _spoiled_box_model(case: Path, fx: dict) -> list[str]:
    box = copy(fx, "box", case)
    truncate(box / "box_model.keras")
    return ["detect", str(box), str(fx["photos"]), "--out", str(case / "out")]


def _export(case: Path, fx: dict) -> Path:
    """A copy of the model's ML Program export for the case to spoil."""
    return Path(shutil.copytree(fx["export"], case / "export" / fx["export"].name))


def _damaged_export(spoil: Callable[[Path], None]) -> Callable[[Path, dict], list[str]]:
    def setup(case: Path, fx: dict) -> list[str]:
        package = _export(case, fx)
        spoil(package)
        return ["verify", str(fx["model"]), "--coreml", str(package), "--images", str(fx["photos"]),
                "--no-layer-check", "--output", str(case / "out")]

    return setup


_HOLDERS: list = []  # processes a case started; the test stops them


def _held_run_folder(case: Path, fx: dict) -> list[str]:
    """A first pipeline run holding RUN (a process holding its lock), and a second one."""
    import os
    import subprocess
    import sys

    code = ("import sys, time\nfrom groundwork.run_lock import run_lock\n"
            "with run_lock(sys.argv[1], 'boxstrap pipeline'):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(case / "out")], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    _HOLDERS.append(holder)
    assert holder.stdout.readline().strip() == "held"
    return ["pipeline", str(fx["photos"]), "--out", str(case / "out")]


def _colour_scenes(case: Path, fx: dict) -> list[str]:
    src = case / "src"
    for label, colour in (("one", (0, 160, 0)), ("ten", (0, 0, 160))):
        (src / label).mkdir(parents=True)
        Image.new("RGB", (64, 48), colour).save(src / label / "plain.png")
        Image.new("RGB", (64, 48), tuple(int(v * 0.9) for v in colour)).save(src / label / "dim.png")
    return ["prepare", str(src), "--out", str(case / "out"), "--resplit"]


def _escaping_source(case: Path, fx: dict) -> list[str]:
    import os

    prepared = copy(fx, "prepared", case)
    manifest = json.loads((prepared / "manifest.json").read_text())
    src = manifest["settings"]["src"]
    # '<src>/../../..../escaped/evil.jpg' pointing beside the case folder.
    climb = os.path.relpath(case.parent.parent / "escaped" / "evil.jpg", src)
    manifest["records"][0]["source"] = f"{src}/{climb}"
    (prepared / "manifest.json").write_text(json.dumps(manifest))
    return ["localize", str(fx["model"]), str(prepared), "--out", str(case / "out"), "--no-overlays", "--threshold",
            "0.5"]


def _nan_weights(case: Path, fx: dict) -> list[str]:
    package = _export(case, fx)
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weights.read_bytes())
    data[64:] = b"\xff" * (len(data) - 64)  # every fp16 weight past the header NaN
    weights.write_bytes(bytes(data))
    return ["verify", str(fx["model"]), "--coreml", str(package), "--images", str(fx["photos"]),
            "--no-layer-check", "--output", str(case / "out")]


def _interrupted_detect(case: Path, fx: dict) -> list[str]:
    out = case / "out"
    (out / "annotations" / "voc").mkdir(parents=True)
    (out / "annotations" / "coco.json").write_text('{"images": [')  # cut short by the interruption
    return ["detect", str(fx["box"]), str(fx["photos"]), "--out", str(out), "--no-overlays"]


CASES = [
    # prepare
    Case("prepare: missing source", lambda c, fx: ["prepare", str(c / "nope"), "--out", str(c / "out")], 1,
         r"does not exist"),
    Case("prepare: source is a file", lambda c, fx: ["prepare", str(shutil.copy(fx["photos"] / "boxes.json", c)),
                                                     "--out", str(c / "out")], 1, r"is not a folder"),
    Case("prepare: output inside the source", lambda c, fx: ["prepare", str(copy(fx, "photos", c)), "--out",
                                                             str(c / "photos" / "prepared")], 1,
         r"inside the source folder", outputs=()),
    Case("prepare: no class folders", lambda c, fx: [
        "prepare", str((c / "flat").mkdir() or shutil.copy(fx["photos"] / "one" / next(
            p.name for p in (fx["photos"] / "one").iterdir()), c / "flat") and c / "flat"),
        "--out", str(c / "out")], 1, r"class folder|folder per class"),
    Case("prepare: unrelated files in --out", lambda c, fx: [
        "prepare", str(fx["photos"]), "--out", str((c / "out").mkdir() or (c / "out" / "notes.txt").write_text("mine")
                                                   and c / "out")], 1, r"not empty and holds no prepare run"),
    # train
    Case("train: no manifest", lambda c, fx: ["train", str(fx["photos"]), "--out", str(c / "out")], 1,
         r"No manifest at"),
    Case("train: --overwrite on a folder of other files", lambda c, fx: [
        "train", str(fx["prepared"]), "--out", str((c / "out").mkdir() or (c / "out" / "thesis.tex").write_text("x")
                                                   and c / "out"), "--overwrite"], 1, r"not a model folder"),
    Case("train: a config file of another kind", lambda c, fx: [
        "train", str(fx["prepared"]), "--out", str(c / "out"), "--config",
        str(shutil.copy(fx["box"] / "box_train_config.json", c / "cfg.json"))], 1, r"holds a BoxTrainConfig"),
    # predict: damaged model directories, each file in turn
    Case("predict: no model directory", lambda c, fx: ["predict", str(c / "nope"), str(fx["photos"])], 1,
         r"nope"),
    Case("predict: model.keras truncated", _spoiled_model("model.keras", truncate), 1, r"model\.keras.*truncated"),
    Case("predict: model.keras missing", _spoiled_model("model.keras", Path.unlink), 1, r"model\.keras"),
    Case("predict: labels.json missing", _spoiled_model("labels.json", Path.unlink), 1, r"labels\.json"),
    Case("predict: labels.json not JSON", _spoiled_model("labels.json", lambda p: p.write_text("{one")), 1,
         r"labels\.json"),
    Case("predict: labels.json truncated", _spoiled_model("labels.json", truncate), 1, r"labels\.json"),
    Case("predict: preprocessing.json missing", _spoiled_model("preprocessing.json", Path.unlink), 1,
         r"preprocessing\.json"),
    Case("predict: preprocessing.json truncated", _spoiled_model("preprocessing.json", truncate), 1,
         r"preprocessing\.json"),
    Case("predict: preprocessing.json nonsense", _spoiled_model("preprocessing.json",
                                                                 lambda p: p.write_text('{"scale": "big"}')), 1,
         r"preprocessing\.json"),
    Case("predict: a model with a Lambda layer", lambda c, fx: ["predict", str(fx["lambda"]), str(fx["photos"])], 1,
         r"Lambda|unsafe|safe_mode"),
    Case("predict: decompression bomb", None, 1, r"too large to decode safely"),
    Case("predict: --min-confidence not a probability", lambda c, fx: [
        "predict", str(fx["model"]), str(fx["photos"]), "--min-confidence", "90"], 1,
         r"--min-confidence must be a probability in \[0, 1\]\. Received: 90\.0"),
    # export and verify
    Case("export: model.keras truncated", lambda c, fx: ["export", str(_truncated_model(c, fx)), "--out",
                                                         str(c / "out")], 1, r"truncated"),
    Case("verify: garbage .mlmodel", lambda c, fx: [
        "verify", str(fx["model"]), "--coreml", str(_write(c / "x.mlmodel", b"\x00garbage" * 50)),
        "--images", str(fx["photos"]), "--output", str(c / "out")], 1, r"x\.mlmodel"),
    Case("verify: weight.bin missing", _damaged_export(
        lambda p: (p / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").unlink()), 1, r"weight\.bin"),
    Case("verify: weight.bin truncated", _damaged_export(
        lambda p: truncate(p / "Data" / "com.apple.CoreML" / "weights" / "weight.bin")), 1,
         r"BoxstrapClassifier\.mlpackage.*(damaged or incomplete|weight\.bin)"),
    Case("verify: Manifest.json missing", _damaged_export(lambda p: (p / "Manifest.json").unlink()), 1,
         r"Manifest\.json"),
    # localize
    Case("localize: --out is a file", lambda c, fx: ["localize", str(fx["model"]), str(fx["photos"]), "--out",
                                                     str(_write(c / "out", b"keep"))], 1, r"is a file", outputs=()),
    Case("localize: --out inside the photos", lambda c, fx: ["localize", str(fx["model"]), str(copy(fx, "photos", c)),
                                                             "--out", str(c / "photos" / "boxes")], 1,
         r"inside the photo folder", outputs=()),
    Case("localize: threshold out of range", lambda c, fx: ["localize", str(fx["model"]), str(fx["photos"]),
                                                            "--out", str(c / "out"), "--threshold", "7"], 1,
         r"threshold must be in \[0, 1\]"),
    Case("localize: ground truth names files outside its folder", _escaping_boxes, 0, r"localised 6 images",
         outputs=("out", "model")),
    Case("localize: manifest path climbing out", _escaping_manifest, 1, r"escaped\.jpg|outside"),
    Case("localize: a text file named .jpg", lambda c, fx: [
        "localize", str(fx["model"]), str(_with_fake_jpeg(c, fx)), "--out", str(c / "out"), "--no-overlays"], 1,
         r"notes\.jpg.*skipped"),
    # evaluate-boxes: hostile and malformed annotation files
    Case("evaluate-boxes: --output is the ground truth", lambda c, fx: [
        "evaluate-boxes", *map(str, _evaluate_inputs(c, fx)), "--output", str(c / "gt.json")], 1,
         r"gt\.json"),
    Case("evaluate-boxes: --output is a folder", lambda c, fx: [
        "evaluate-boxes", *map(str, _evaluate_inputs(c, fx)), "--output", str((c / "out").mkdir() or c / "out")], 1,
         r"folder|directory"),
    Case("evaluate-boxes: not JSON", lambda c, fx: [
        "evaluate-boxes", str(_evaluate_inputs(c, fx)[0]), str(_write(c / "bad.json", b"{not json"))], 1,
         r"bad\.json"),
    Case("evaluate-boxes: deeply nested JSON", _deep_json, 1, r"deep\.json"),
    Case("evaluate-boxes: huge numbers", lambda c, fx: [
        "evaluate-boxes", str(_evaluate_inputs(c, fx)[0]), str(_write(c / "huge.json", (
            '[{"file": "one/a.jpg", "width": 64, "height": 48, "label": "one", "boxes": [[0, 0, 1'
            + "0" * 400 + ', 5]]}]').encode()))], 1, r"huge\.json"),
    Case("evaluate-boxes: NaN coordinates", lambda c, fx: [
        "evaluate-boxes", str(_evaluate_inputs(c, fx)[0]), str(_write(c / "nan.json", (
            b'[{"file": "one/a.jpg", "width": 64, "height": 48, "label": "one", "boxes": [[NaN, 0, 4, 5]]}]'
        )))], 1, r"nan\.json"),
    Case("localize: Create ML names an image outside its folder", lambda c, fx: [
        "localize", str(fx["model"]), str(fx["photos"]), "--out", str(c / "out"), "--ground-truth",
        str(_write(c / "createml.json", json.dumps([{"image": "../../outside.jpg", "annotations": [
            {"label": "one", "coordinates": {"x": 5, "y": 5, "width": 4, "height": 4}}]}]).encode()))], 1,
         r"leaves .*createml\.json"),
    # train-boxes, export-boxes, detect
    Case("train-boxes: boxes name files outside the photo folder", _escaping_train_boxes, 1,
         r"nothing to train on"),
    Case("export-boxes: box_model.keras truncated", lambda c, fx: [
        "export-boxes", str(_truncated_box(c, fx)), "--out", str(c / "out")], 1, r"truncated"),
    Case("detect: box_model.keras truncated", _spoiled_box_model, 1, r"box_model\.keras.*truncated"),
    Case("detect: --out is a file", lambda c, fx: ["detect", str(fx["box"]), str(fx["photos"]), "--out",
                                                   str(_write(c / "out", b"keep"))], 1, r"is a file", outputs=()),
    Case("detect: --out inside the photos", lambda c, fx: ["detect", str(fx["box"]), str(copy(fx, "photos", c)),
                                                           "--out", str(c / "photos" / "det")], 1,
         r"inside the photo folder", outputs=()),
    Case("detect: an interrupted run rerun to completion", _interrupted_detect, 0, r"boxed 6 photos"),
    Case("export: --heatmap with --quantize int8 as an ML Program", lambda c, fx: [
        "export", str(fx["model"]), "--out", str(c / "out"), "--heatmap", "--quantize", "int8"], 1,
        r"heatmap with quantize='int8' cannot be exported as an ML Program.*--format neuralnetwork", outputs=()),
    # outputs that cannot be written are refused before any work
    Case("export: --out is a file", lambda c, fx: ["export", str(fx["model"]), "--out", str(_write(c / "out", b"k"))],
         1, r"out .*out is a file", outputs=()),
    Case("export-boxes: --out is a file", lambda c, fx: ["export-boxes", str(fx["box"]), "--out",
                                                         str(_write(c / "out", b"k"))], 1, r"is a file", outputs=()),
    Case("train-boxes: --out exists (refused before training)", lambda c, fx: [
        "train-boxes", str(fx["model"]), str(fx["photos"] / "boxes.json"), str(fx["photos"]), "--out",
        str((c / "out").mkdir() or c / "out")], 1, r"already exists"),
    Case("predict: --overlay-dir is a file", lambda c, fx: [
        "predict", str(fx["model"]), str(fx["photos"] / "one"), "--overlay-dir", str(_write(c / "out", b"k"))], 1,
         r"--overlay-dir .* is a file", outputs=()),
    # the hardening issue's own cases
    Case("pipeline: a second run into a held folder", _held_run_folder, 1,
         r"in use by another run: process \d+ on .*boxstrap pipeline", outputs=("out",)),
    Case("prepare: a green and a blue photo are not one scene", _colour_scenes, 0,
         r"^(?!.*label conflict)(?=.*groups per split)"),
    Case("prepare: progress bars stay off a log", _colour_scenes, 0, r"^(?![\s\S]*\r)[\s\S]*groups per split"),
    Case("pipeline: --out is a file", lambda c, fx: ["pipeline", str(fx["photos"]), "--out",
                                                     str(_write(c / "out", b"k"))], 1, r"out .*out is a file",
         outputs=()),
    Case("predict: non-image files are listed", lambda c, fx: [
        "predict", str(fx["model"]), str(_with_notes(c, fx))], 0, r"notes\.txt"),
    Case("localize: manifest source climbing out", _escaping_source, 0, r"localised 6 images"),
    Case("verify: NaN weights", _nan_weights, 1, r"NaN or Inf|FAIL"),
    Case("demo-data: photos it did not write", lambda c, fx: ["demo-data", "--out", str(_my_photos(c))], 1,
         r"no earlier demo-data run wrote"),
    Case("verify: --output is a file", lambda c, fx: [
        "verify", str(fx["model"]), "--coreml", str(_write(c / "x.mlmodel", b"garbage")), "--images",
        str(fx["photos"]), "--output", str(_write(c / "out", b"k"))], 1, r"--output .* is a file", outputs=()),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_model(case: Path, fx: dict) -> Path:
    model = copy(fx, "model", case)
    truncate(model / "model.keras")
    return model


def _truncated_box(case: Path, fx: dict) -> Path:
    box = copy(fx, "box", case)
    truncate(box / "box_model.keras")
    return box


def _my_photos(case: Path) -> Path:
    """A user's folder with a photo where demo-data would write one."""
    (case / "mine" / "one").mkdir(parents=True)
    Image.new("RGB", (64, 48), (200, 10, 10)).save(case / "mine" / "one" / "one_0000.jpg")
    return case / "mine"


def _with_notes(case: Path, fx: dict) -> Path:
    photos = Path(shutil.copytree(fx["photos"] / "one", case / "one"))
    (photos / "notes.txt").write_text("x")
    return photos


def _with_fake_jpeg(case: Path, fx: dict) -> Path:
    photos = copy(fx, "photos", case)
    (photos / "one" / "notes.jpg").write_text("not a photo")
    return photos


def _snapshot(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for folder in folders if folder.exists() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue(case, fixtures, tmp_path, capsys, monkeypatch):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    argv = _bomb(case_dir, fixtures, monkeypatch) if case.setup is None else case.setup(case_dir, fixtures)
    shared = [fixtures[k] for k in ("photos", "model", "lambda", "box", "prepared", "export")]
    before_shared = _snapshot(*shared)
    allowed = [case_dir / o for o in case.outputs]
    before_case = {p: b for p, b in _snapshot(case_dir).items() if not any(p.is_relative_to(a) for a in allowed)}
    before_parent = sorted(p.name for p in tmp_path.parent.iterdir())
    try:
        status = main(argv)
    finally:
        for holder in _HOLDERS:
            holder.kill()
            holder.wait()
        _HOLDERS.clear()
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert status == case.status, text
    import re

    assert re.search(case.pattern, text, flags=re.S), text
    # No input changed: the shared fixtures, and every file of the case outside its outputs.
    assert _snapshot(*shared) == before_shared
    after_case = {p: b for p, b in _snapshot(case_dir).items() if not any(p.is_relative_to(a) for a in allowed)}
    assert after_case == before_case, sorted(set(after_case) ^ set(before_case))
    # Nothing written beside the case folder (names climbing out of it would land there).
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before_parent
    assert not (tmp_path.parent / "outside.jpg").exists() and not (tmp_path / "escaped").exists()


def test_the_catalogue_is_long_enough():
    commands = {c.id.split(":")[0] for c in CASES}
    assert len(CASES) >= 30
    assert commands >= {"prepare", "train", "predict", "export", "verify", "localize", "evaluate-boxes",
                        "train-boxes", "export-boxes", "detect"}


def test_predict_lists_non_images(fixtures, tmp_path, capsys):
    photos = shutil.copytree(fixtures["photos"] / "one", tmp_path / "one")
    (photos / "notes.txt").write_text("x")
    assert main(["predict", str(fixtures["model"]), str(photos)]) == 0
    assert "notes.txt" in capsys.readouterr().err
    assert np.all([p.exists() for p in photos.iterdir()])
