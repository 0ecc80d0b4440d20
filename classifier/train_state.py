"""The resumable state of a ``boxstrap train`` run, kept in a work folder beside the output.

``MODEL_DIR`` is trained in ``.MODEL_DIR.partial`` (same parent folder), which holds:

- ``train_config.json``: the config of the run; a rerun with another config starts afresh (its
  cached features are kept: their cache key says what they were computed from).
- ``state.json``: per phase, the epochs done, the best valid loss and its epoch, the history, and
  whether the phase stopped early or is done. Phases 1 (head) and 2 (fine-tuning) are the split
  run, early-stopped on the valid loss; phases 3 and 4 refit them on train + valid + test for
  the best epochs of 1 and 2 (``TrainConfig.ship="all"``), without validation: their "best"
  weights are the last.
- ``weights/phase{P}_best.npz``: the trainable layers' weights at the best valid loss.
- ``weights/phase{P}_last.npz``: the trainable layers' weights after the last epoch done, and the
  optimizer's variables (Adam's iteration count and moments) in the same file, so that resuming a
  phase continues the same optimisation instead of restarting Adam from zero.
- ``features/`` (feature cache, unless ``TrainConfig.cache_dir`` is set) and ``logs/``
  (TensorBoard).

Every file is written atomically (:mod:`groundwork.atomic`), so an interrupted run leaves the last
complete epoch. A resumed run is close to, not bit-identical with, an uninterrupted one: the
per-epoch shuffling of ``Model.fit`` and the dropout masks come from Keras/TensorFlow random
streams that restart from the seed when the process restarts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.atomic import atomic_open, write_json
from groundwork.config import config_to_dict, save_config

__all__ = ["TrainState"]

log = logging.getLogger(__name__)

_OPTIMIZER = "optimizer/"
# TrainConfig fields that change no phase's work: a rerun that changes only them keeps the state.
_RESUMABLE_ACROSS = ("ship",)


class TrainState:
    """The work folder ``.MODEL_DIR.partial`` of a training run: weights, epochs and history per phase.

    Parameters
    ----------
    out_dir : path
        The model folder the run writes; the work folder is ``out_dir.parent / f".{out_dir.name}.partial"``
        and is created if missing.

    Examples
    --------
    >>> import tempfile
    >>> state = TrainState(Path(tempfile.mkdtemp()) / "model")
    >>> state.work.name, state.phase(1)
    ('.model.partial', {})
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        out_dir = Path(out_dir)
        self.work = out_dir.parent / f".{out_dir.name}.partial"
        self.work.mkdir(parents=True, exist_ok=True)
        self._path = self.work / "state.json"
        self.state: dict[str, Any] = json.loads(self._path.read_text()) if self._path.is_file() else {}

    @property
    def features_dir(self) -> Path:
        """Default feature cache folder."""
        return self.work / "features"

    @property
    def logs_dir(self) -> Path:
        """TensorBoard logs, copied into the model folder at the end."""
        return self.work / "logs"

    def check_config(self, config) -> None:
        """Start afresh (features kept) if the work folder holds a run with another config; save ``config``."""
        path = self.work / "train_config.json"
        current = {k: v for k, v in config_to_dict(config).items() if k not in _RESUMABLE_ACROSS}
        if path.is_file():
            previous = json.loads(path.read_text())
            for key in ("config", *_RESUMABLE_ACROSS):
                previous.pop(key, None)
            if previous != json.loads(json.dumps(current)):
                log.info("%s holds a run with another config; starting afresh", self.work)
                self._path.unlink(missing_ok=True)
                shutil.rmtree(self.work / "weights", ignore_errors=True)
                self.state = {}
        save_config(config, path)

    def phase(self, phase: int) -> dict[str, Any]:
        """The saved state of ``phase`` (empty if it never ran)."""
        return self.state.get(f"phase{phase}", {})

    def load_best(self, phase: int, layers) -> None:
        """Set ``layers`` to the best weights of ``phase``."""
        _load_layers(layers, self._weights(phase, "best"))

    def resume(self, phase: int, layers, optimizer=None, variables=()) -> int:
        """Load the last weights (and optimizer state) of an unfinished ``phase``; return its epochs done.

        ``optimizer`` (compiled, built or not) is built on ``variables`` (the trainable variables
        of the model ``layers`` belong to) and gets the saved variables back, all but its learning
        rate. If they do not fit (a work folder from an older version, another model), a warning
        is logged and the optimizer starts afresh.
        """
        epoch = int(self.phase(phase).get("epoch") or 0)
        if not epoch:
            return 0
        path = self._weights(phase, "last")
        _load_layers(layers, path)
        if optimizer is not None:
            _restore_optimizer(optimizer, variables, path)
        log.info("Resuming phase %d at epoch %d", phase, epoch + 1)
        return epoch

    def checkpoint(self, phase: int, layers, patience: int | None):
        """A Keras callback saving best/last weights, the optimizer, epoch and history; early stop.

        Call its ``finish()`` after ``fit``: it loads the best weights into ``layers`` and marks the
        phase done. ``callback.phase_state["history"]`` is the phase's whole history and
        ``callback.phase_state["best_epoch"]`` the epoch (from 1) the kept weights come from.
        ``patience=None``: a fixed number of epochs without validation, no early stopping, and
        the weights kept are the last epoch's.
        """
        return _checkpoint_class()(self, phase, layers, patience)

    def remove(self) -> None:
        """Delete the work folder (the run is complete)."""
        shutil.rmtree(self.work, ignore_errors=True)

    def _weights(self, phase: int, which: str) -> Path:
        return self.work / "weights" / f"phase{phase}_{which}.npz"

    def _write(self, phase: int, phase_state: dict) -> None:
        self.state[f"phase{phase}"] = phase_state
        write_json(self._path, self.state)


def _checkpoint_class():
    import keras

    class PhaseCheckpoint(keras.callbacks.Callback):
        """Best weights by val_loss, last weights + optimizer + epoch + history after every epoch."""

        def __init__(self, state: TrainState, phase: int, layers, patience: int):
            super().__init__()
            self.state, self.phase, self.layers, self.patience = state, phase, layers, patience
            self.phase_state = {"epoch": 0, "best": None, "best_epoch": None, "history": {},
                                **state.phase(phase)}

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            ps = self.phase_state
            for key, value in logs.items():
                ps["history"].setdefault(key, []).append(float(value))
            ps["history"].setdefault("phase", []).append(self.phase)
            if self.patience is None:  # no validation: the last epoch is the one kept
                ps["best"], ps["best_epoch"] = None, epoch + 1
                _save_layers(self.layers, self.state._weights(self.phase, "best"))
            else:
                value = float(logs.get("val_loss", np.inf))
                if ps["best"] is None or value < ps["best"]:
                    ps["best"], ps["best_epoch"] = value, epoch + 1
                    _save_layers(self.layers, self.state._weights(self.phase, "best"))
            _save_layers(self.layers, self.state._weights(self.phase, "last"), self.model.optimizer)
            ps["epoch"] = epoch + 1
            if self.patience is not None and epoch + 1 - ps["best_epoch"] >= self.patience:
                ps["stopped"] = True
                self.model.stop_training = True
            self.state._write(self.phase, ps)

        def finish(self):
            best = self.state._weights(self.phase, "best")
            if best.is_file():
                _load_layers(self.layers, best)
            self.phase_state["done"] = True
            self.state._write(self.phase, self.phase_state)
            if self.patience is None:
                log.info("Phase %d: %s epochs", self.phase, self.phase_state["best_epoch"])
            else:
                log.info("Phase %d: best val_loss %s at epoch %s", self.phase, self.phase_state["best"],
                         self.phase_state["best_epoch"])

    return PhaseCheckpoint


def _save_layers(layers, path: Path, optimizer=None) -> None:
    arrays = {f"{layer.name}/{i}": w for layer in layers for i, w in enumerate(layer.get_weights())}
    if optimizer is not None:
        arrays.update({f"{_OPTIMIZER}{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    with atomic_open(path) as handle:
        np.savez(handle, **arrays)


def _load_layers(layers, path: Path) -> None:
    with np.load(path) as saved:
        for layer in layers:
            count = len(layer.get_weights())
            layer.set_weights([saved[f"{layer.name}/{i}"] for i in range(count)])


def _restore_optimizer(optimizer, variables, path: Path) -> bool:
    """Give ``optimizer`` the variables saved in ``path``; False (and a warning) if they do not fit."""
    if not optimizer.built:
        optimizer.build(list(variables))
    with np.load(path) as saved:
        arrays = {k[len(_OPTIMIZER):]: saved[k] for k in saved.files if k.startswith(_OPTIMIZER)}
    targets = optimizer.variables
    shapes = [tuple(v.shape) for v in targets]
    saved_shapes = [tuple(arrays[str(i)].shape) if str(i) in arrays else None for i in range(len(arrays))]
    if not arrays or saved_shapes != shapes:
        log.warning("%s holds no optimizer state that fits (%d saved variables, %d expected); the "
                    "optimizer of the resumed phase starts afresh", path, len(arrays), len(targets))
        return False
    for i, variable in enumerate(targets):
        if not variable.path.endswith("learning_rate"):
            variable.assign(arrays[str(i)])
    log.info("Restored the optimizer state (iteration %d) from %s", int(np.asarray(optimizer.iterations)), path)
    return True
