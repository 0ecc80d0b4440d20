"""``boxstrap train``: the class-map classifier trained in two phases on a 2-core CPU.

1. The backbone is frozen. Its features at the *boundary* (the layer before the first trainable
   one) are computed once for a few views of every training image and once for the valid and
   test images, and cached on disk (:mod:`classifier.features`). The head trains on them in
   seconds.
   With the multilevel head (:mod:`classifier.model`) the boundary is
   ``head_features``, the three backbone depths brought to one grid; the head trains on them
   standardised per channel, and the standardisation is folded into its first convolution
   afterwards.
2. Optionally (feature-layer head only) the last convolution(s) (``fine_tune_from`` onwards) train
   with the head at a low learning rate on the same cached boundary features.

Each phase stops early on the valid loss and keeps its best weights; the valid and test
accuracy of this *split run* is the estimate ``metrics.json`` reports. Then (``ship="all"``, the
default) a fresh model, from the same starting weights and seed, is fitted the same way on the
cached features of train + valid + test for the epochs the split run kept in each phase, without
validation (phases 3 and 4), and that model is saved: the user's few hundred photos all count.
``metrics.json``'s ``shipped_model`` says what the saved model saw. The run's state (cached
features, best and last weights and optimizer state per phase, epoch, history) lives in a work
folder beside the output (``.MODEL_DIR.partial``, :mod:`classifier.train_state`); rerunning the
same command resumes there, Adam's moments and iteration count included. The model folder is
assembled in a temporary folder and renamed into place, so it appears whole or not at all.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from classifier.backbones.registry import get_backbone
from classifier.build_for_fit import build_for_fit
from classifier.epoch_log import epoch_log, keras_verbose
from classifier.model import build_classifier, fold_standardisation, head_input, split_model, sub_model
from classifier.train_config import TrainConfig
from classifier.train_state import TrainState
from groundwork.atomic import write_json
from groundwork.config import save_config
from groundwork.photo_map import RayOptions
from groundwork.run_lock import run_lock

__all__ = ["train"]

log = logging.getLogger(__name__)

def train(manifest_dir: str | os.PathLike, out_dir: str | os.PathLike, config: TrainConfig = TrainConfig(),
          *, overwrite: bool = False, verbose: int = 1, ray: RayOptions | None = None) -> Path:
    """Train a classifier on a prepared dataset and write the model folder.

    Parameters
    ----------
    manifest_dir : path
        Folder holding ``manifest.json`` (``boxstrap prepare``), with train and valid splits.
    out_dir : path
        The model folder to write (docs/ARCHITECTURE.md).
    config : TrainConfig
    overwrite : bool
        Replace an existing ``out_dir``.
    verbose : int
        0: silent; 1: a progress bar over the feature extraction (on a terminal) and one log line
        per epoch; 2: Keras's own line per epoch too.
    ray : RayOptions, optional
        Compute the backbone features on Ray workers (the prepared photos and the feature cache at
        paths every worker sees); the features, and so the training, are those of a local run.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    FileNotFoundError
        No manifest, or missing weights file.
    FileExistsError
        ``out_dir`` exists and ``overwrite`` is false.
    ValueError
        An empty train or valid split, or a bad weights file.
    """
    from datasets.manifest import load_manifest

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig. Received: {type(config).__name__}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists. Choose another --out or pass --overwrite.")
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (
            (out_dir / "model.keras").is_file() or (out_dir / "train_config.json").is_file()))):
        # --overwrite replaces a model folder as a whole: never a folder of someone else's files.
        raise FileExistsError(f"{out_dir} is not a model folder written by boxstrap train (no model.keras or "
                              "train_config.json in it); --overwrite replaces only those. Choose another --out.")
    manifest = load_manifest(manifest_dir)
    for split in ("train", "valid"):
        if not manifest.split(split):
            raise ValueError(f"The '{split}' split of {manifest.root} is empty; `boxstrap prepare` "
                             "with --resplit assigns train/valid/test.")
    # One training per model folder: a second run into it is refused at once, naming the first.
    with run_lock(out_dir.parent, "boxstrap train", lock_file=out_dir.parent / f".{out_dir.name}.lock",
                  remove=True):
        return _train(manifest, out_dir, config, overwrite=overwrite, verbose=verbose, ray=ray)


def _train(manifest, out_dir: Path, config: TrainConfig, *, overwrite: bool, verbose: int,
           ray: RayOptions | None) -> Path:
    import keras

    from classifier.metrics import classification_metrics

    started = time.perf_counter()
    state = TrainState(out_dir)
    state.check_config(config)
    keras.utils.set_random_seed(config.seed)
    labels = list(manifest.labels)
    preprocessing = get_backbone(config.backbone).preprocessing(config.input_size)

    def build():
        return build_classifier(len(labels), config.input_size, backbone=config.backbone, head=config.head,
                                hidden=config.head_hidden, pooling=config.pooling, sharpness=config.sharpness,
                                dropout=config.dropout, filters=config.filters, weights=config.weights,
                                seed=config.seed, context=config.context)

    model = build()
    data = _features(manifest, model, preprocessing, config, state.features_dir, verbose, ray)
    initial = model.get_weights()
    history: dict[str, list] = {}
    best = _fit_recipe(model, data, len(labels), config, (1, 2), state, history, verbose)

    # The split run's model is measured on the photos it did not see: the estimate reported.
    _, upper = split_model(model, config.boundary, backbone=config.backbone)
    metrics = {"labels": labels, "train_seconds": None}
    for split in ("valid", "test"):
        if split in data:
            x, y = data[split]
            probabilities = upper.predict(x.astype(np.float32), batch_size=config.batch_size, verbose=0)[0]
            metrics[split] = classification_metrics(y, probabilities, labels)
    metrics["epochs"] = {"head": history.get("phase", []).count(1), "fine_tune": history.get("phase", []).count(2)}
    shipped = list(data) if config.ship == "all" else ["train"]
    metrics["shipped_model"] = {"trained_on": shipped, "images": sum(len(manifest.split(s)) for s in shipped),
                                "epochs": best}
    if config.ship == "all":
        # A fresh model (the same starting weights, dropout seeds and shuffling) fitted the same
        # way on every split, for the epochs the split run kept, without validation.
        del upper
        keras.utils.set_random_seed(config.seed)
        model = build()
        model.set_weights(initial)
        every = {"train": tuple(np.concatenate([data[s][i] for s in shipped]) for i in (0, 1))}
        del data
        refit_history: dict[str, list] = {}
        _fit_recipe(model, every, len(labels), config, (3, 4), state, refit_history, verbose, epochs=best)
        del every
        metrics["shipped_model"]["history"] = refit_history
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    _write_model_dir(model, out_dir, preprocessing, labels, config, metrics, history, overwrite, state.logs_dir)
    # Done: the run's state goes (the feature cache too, unless it lives in config.cache_dir).
    state.remove()
    log.info("Trained in %.0f s; the split run's valid accuracy %s, test accuracy %s; the model saved was "
             "trained on %s (%d photos)", metrics["train_seconds"], metrics.get("valid", {}).get("accuracy"),
             metrics.get("test", {}).get("accuracy"), " + ".join(shipped), metrics["shipped_model"]["images"])
    return out_dir


# --- the recipe --------------------------------------------------------------------------------
def _fit_recipe(model, data, num_classes: int, config, phases: tuple[int, int], state: TrainState, history: dict,
                verbose, *, epochs: dict[str, int] | None = None) -> dict[str, int]:
    """Fit ``model`` on cached boundary features: the head, then (if configured) fine-tuning.

    ``data`` is ``{split: (features, labels)}``, the class weights (``config.class_weights``)
    come from its train labels; ``phases`` are the state's phase numbers of the head and the
    fine-tuning. ``epochs=None``: each phase stops early on ``data["valid"]`` and
    keeps its best weights; otherwise ``{"head": h, "fine_tune": f}`` epochs are run on
    ``data["train"]`` alone, without validation. Returns the epochs the kept weights of each
    phase come from, and leaves every layer of ``model`` trainable.
    """
    head_phase, tune_phase = phases
    fixed = epochs is not None
    weights = _class_weights(data["train"][1], num_classes) if config.class_weights else None
    # The head on its input features (computed from the cached boundary features).
    features_at = head_input(config.head, config.backbone, context=config.context)
    _freeze(model, trainable_after=features_at)
    middle = sub_model(model, config.boundary, [features_at]) if config.boundary != features_at else None
    head_data = {s: (_run(middle, x, config.batch_size), y) for s, (x, y) in data.items()} if middle else data
    _, head = split_model(model, features_at, scores=True, backbone=config.backbone)
    standardise = config.head == "multilevel"
    if standardise:
        mean, std = _channel_stats(head_data["train"][0])
        head = _behind_standardisation(head, mean, std)
    best = {"head": _fit_phase(head_phase, head, head_data, config,
                               epochs["head"] if fixed else config.head_epochs, config.head_learning_rate,
                               config.head_batch_size, weights, state, history, verbose, validate=not fixed),
            "fine_tune": 0}
    if standardise:
        hidden = model.get_layer("head_hidden")
        hidden.set_weights(list(fold_standardisation(*hidden.get_weights(), mean, std)))
    del head_data
    # Fine-tuning from config.fine_tune_from on the cached boundary features.
    tune_epochs = epochs["fine_tune"] if fixed else config.fine_tune_epochs
    if config.fine_tune_from is not None and tune_epochs > 0:
        _freeze(model, trainable_after=config.boundary)
        _, upper = split_model(model, config.boundary, scores=True, backbone=config.backbone)
        best["fine_tune"] = _fit_phase(tune_phase, upper, data, config, tune_epochs, config.fine_tune_learning_rate,
                                       config.batch_size, weights, state, history, verbose, validate=not fixed)
    _freeze(model, trainable_after=None)
    return best


# --- features ---------------------------------------------------------------------------------
def _features(manifest, model, preprocessing, config, features_dir, verbose, ray=None
              ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (features (V*N, ...) float16, labels (V*N,))} at the boundary, from the cache; the
    missing ones computed here, or with ``ray`` on Ray workers (the same chunks and seeds)."""
    from classifier.features import FeatureCache, cache_key, extract_features, extract_features_on_ray
    from datasets.tf_input import Augmentation, load_split
    from groundwork.progress import progress_bar

    weights_path = get_backbone(config.backbone).resolve_weights(config.weights)
    weights_id = (None if weights_path is None else
                  {"file": str(weights_path), "size": weights_path.stat().st_size,
                   "mtime": int(weights_path.stat().st_mtime)})
    augmentation = Augmentation()
    splits = [s for s in ("train", "valid", "test") if manifest.split(s)]
    description = {
        "backbone": config.backbone, "boundary": config.boundary, "filters": list(config.filters), "weights": weights_id,
        "weights_seed": config.seed if weights_path is None else None,
        "preprocessing": preprocessing.to_dict(), "views": config.views, "seed": config.seed,
        "augmentation": dataclasses.asdict(augmentation),
        "records": {s: [r.sha256 for r in manifest.split(s)] for s in splits},
    }
    cache = FeatureCache(config.cache_dir or features_dir, cache_key(description), description)
    lower, _ = split_model(model, config.boundary, backbone=config.backbone)
    data = {}
    for split in splits:
        views = config.views if split == "train" else 1
        names = [f"{split}_v{v}" for v in range(views)]
        arrays = [cache.get(n) for n in names]
        labels = np.asarray([manifest.label_index(r) for r in manifest.split(split)], np.int64)
        if any(a is None for a in arrays):
            # Here the split is decoded once for all its views; Ray workers read the photos themselves.
            if ray is None:
                images, labels, _ = load_split(manifest, split, preprocessing)
            else:
                paths = [manifest.image_path(r) for r in manifest.split(split)]
            for v, name in enumerate(names):
                if arrays[v] is not None:
                    continue
                options = dict(augmentation=augmentation if v else None, seed=config.seed, view=v,
                               batch_size=config.batch_size, chunk_dir=cache.chunk_dir(name))
                if ray is None:
                    with progress_bar(total=len(images), desc=f"features {name}", unit="img",
                                      enabled=bool(verbose)) as bar:
                        arrays[v] = extract_features(lower, images, preprocessing.apply, progress=bar.update,
                                                     **options)
                else:
                    arrays[v] = extract_features_on_ray(lower, paths, preprocessing, ray=ray,
                                                        lower_path=cache.path / "lower.keras",
                                                        progress=bool(verbose), **options)
                cache.put(name, arrays[v])
            if ray is None:
                del images
        data[split] = (np.concatenate(arrays), np.tile(labels, views))
    log.info("Features at %s: %s", config.boundary, {s: d[0].shape for s, d in data.items()})
    return data


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (floored at 1e-3) of float16 features (N, h, w, C)."""
    total = np.zeros(x.shape[-1])
    squares = np.zeros(x.shape[-1])
    for i in range(0, len(x), 64):  # float64 sums a chunk at a time: the cache may be large
        chunk = x[i:i + 64].astype(np.float64).reshape(-1, x.shape[-1])
        total += chunk.sum(0)
        squares += (chunk**2).sum(0)
    count = x.size // x.shape[-1]
    mean = total / count
    return mean, np.maximum(np.sqrt(np.maximum(squares / count - mean**2, 0.0)), 1e-3)


def _behind_standardisation(head, mean: np.ndarray, std: np.ndarray):
    """``head`` with ``(x - mean) / std`` in front (training only; folded afterwards)."""
    import keras

    features = keras.Input(tuple(head.input.shape[1:]), name="raw_features")
    scaled = keras.layers.Rescaling((1.0 / std).astype(np.float32), (-mean / std).astype(np.float32),
                                    name="standardise")(features)
    return keras.Model(features, head(scaled), name="standardised_head")


def _run(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    out = [np.asarray(model(x[i:i + batch_size].astype(np.float32), training=False)).astype(np.float16)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def _class_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=num_classes).astype(float)
    return {c: float(len(y) / (num_classes * n)) if n else 0.0 for c, n in enumerate(counts)}


def _freeze(model, *, trainable_after: str | None) -> None:
    """Make the layers after layer ``trainable_after``'s output trainable, the rest frozen.

    The trainable part is the functional sub-model from that boundary to the outputs, so this
    follows the graph (branches, residual additions), not a list order. ``None``: all trainable.
    Batch normalisation layers stay frozen whatever the cut: a frozen Keras BatchNormalization
    runs in inference mode, so fine-tuning on small batches of a few hundred photos neither
    moves the ImageNet statistics nor trains scales on them (as Keras' transfer-learning guide
    advises).
    """
    import keras

    for layer in model.layers:
        layer.trainable = trainable_after is None
    if trainable_after is not None:
        for layer in sub_model(model, trainable_after, ["probabilities", "class_map"]).layers:
            layer.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


# --- fitting with resumable state ------------------------------------------------------------
def _loss(kind: str):
    import keras
    from keras import ops

    softmax = keras.losses.CategoricalCrossentropy(from_logits=True)
    sigmoid = keras.losses.BinaryCrossentropy(from_logits=True)

    def loss(y_true, logits):
        if kind == "softmax":
            return softmax(y_true, logits)
        if kind == "sigmoid":
            return sigmoid(y_true, logits) * ops.cast(ops.shape(y_true)[-1], logits.dtype)
        return softmax(y_true, logits) + sigmoid(y_true, logits) * ops.cast(ops.shape(y_true)[-1], logits.dtype)

    return loss


def _fit_phase(phase, net, data, config, epochs, learning_rate, batch_size, class_weights, state: TrainState,
               history, verbose, *, validate: bool = True) -> int:
    """Fit ``net`` for phase ``phase`` (resuming its state); return the epoch its kept weights are from.

    ``validate``: stop early on ``data["valid"]`` and keep the best weights; otherwise run
    ``epochs`` epochs on ``data["train"]`` and keep the last.
    """
    import keras

    trainable = [layer for layer in net.layers if layer.trainable and layer.weights]
    phase_state = state.phase(phase)
    if phase_state.get("done"):
        state.load_best(phase, trainable)
        _merge(history, phase_state["history"])
        log.info("Phase %d already done (resumed from %s)", phase, state.work)
        return int(phase_state.get("best_epoch") or 0)
    net.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=_loss(config.head_loss),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    initial_epoch = state.resume(phase, trainable, net.optimizer, net.trainable_variables)
    x, y = data["train"]
    num_classes = int(net.output.shape[-1])
    one_hot = np.eye(num_classes, dtype=np.float32)
    validation = (data["valid"][0].astype(np.float32), one_hot[data["valid"][1]]) if validate else None
    callback = state.checkpoint(phase, trainable, config.patience if validate else None)
    callbacks = [callback, epoch_log(f"phase {phase}")]
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(state.logs_dir / f"phase{phase}")))
    if initial_epoch < epochs and not phase_state.get("stopped"):
        build_for_fit(net, (x[:1].astype(np.float32), one_hot[y[:1]]))
        net.fit(x.astype(np.float32), one_hot[y], validation_data=validation,
                batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch, shuffle=True,
                class_weight=class_weights, callbacks=callbacks, verbose=keras_verbose(verbose))
    callback.finish()
    _merge(history, callback.phase_state["history"])
    return int(callback.phase_state["best_epoch"] or 0)


def _merge(history: dict, phase_history: dict) -> None:
    for key, values in phase_history.items():
        history.setdefault(key, []).extend(values)


# --- the model folder ---------------------------------------------------------------------------
def _write_model_dir(model, out_dir: Path, preprocessing, labels, config, metrics, history, overwrite,
                     logs: Path) -> None:
    from classifier.metrics import plot_confusion_matrix, plot_training_curves

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save(tmp / "model.keras")
        preprocessing.save(tmp)
        write_json(tmp / "labels.json", labels)
        save_config(config, tmp / "train_config.json")
        write_json(tmp / "metrics.json", {**metrics, "history": history})
        plot_training_curves(history, tmp / "training_curves.png")
        for split in ("test", "valid"):
            if split in metrics:
                plot_confusion_matrix(np.asarray(metrics[split]["confusion_matrix"]), labels,
                                      tmp / "confusion_matrix.png", title=f"confusion matrix ({split})")
                break
        if logs.is_dir():
            shutil.copytree(logs, tmp / "logs")
        if out_dir.exists() and overwrite:
            old = out_dir.parent / f".{out_dir.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("Wrote %s (%.1f MB)", out_dir, sum(p.stat().st_size for p in out_dir.iterdir()) / 1e6)
