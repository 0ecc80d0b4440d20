"""Tests of classifier.train_state: the work folder, and resuming a phase with its optimizer state."""

from __future__ import annotations

import json
import logging

import keras
import numpy as np
import pytest

import classifier.train_state as train_state_module
from classifier.train import train
from classifier.train_config import TrainConfig
from classifier.train_state import TrainState

from ._tiny_data import TINY_FILTERS, make_manifest

# One batch per epoch (8 train images, one view, batch 64) and no dropout: an epoch's update does
# not depend on the shuffling or on dropout masks, the random streams a restarted process does not
# continue. What is left is the optimizer state, which the resume must restore.
CONFIG = TrainConfig(backbone="vgg16", weights="none", input_size=(32, 32), filters=TINY_FILTERS, views=1, dropout=0.0,
                     head_epochs=5, head_batch_size=64, fine_tune_from=None, batch_size=8, patience=10)
STEPS_PER_EPOCH = 1


def _train_interrupted(manifest, out, monkeypatch, epochs_done: int, phase: int = 1) -> None:
    """Train, interrupted (KeyboardInterrupt) once ``phase`` has checkpointed ``epochs_done`` epochs."""
    real = TrainState.checkpoint

    def checkpoint(self, checkpointed_phase, layers, patience):
        callback = real(self, checkpointed_phase, layers, patience)
        on_epoch_end = callback.on_epoch_end

        def interrupting(epoch, logs=None):
            on_epoch_end(epoch, logs)
            if checkpointed_phase == phase and epoch + 1 == epochs_done:
                raise KeyboardInterrupt

        callback.on_epoch_end = interrupting
        return callback

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(TrainState, "checkpoint", checkpoint)
        train(manifest.root, out, CONFIG, verbose=0)


def _train(manifest, out, monkeypatch) -> tuple[list[np.ndarray], dict]:
    """Train to the end; return the weights after phase 1's last epoch (the model folder holds the
    refit's), and the metrics (the split run's history, what the refit ran)."""
    last = []
    real = train_state_module._save_layers

    def save_layers(layers, path, optimizer=None):
        if path.name == "phase1_last.npz":
            last[:] = [w for layer in layers for w in layer.get_weights()]
        real(layers, path, optimizer)

    with monkeypatch.context() as patch:
        patch.setattr(train_state_module, "_save_layers", save_layers)
        train(manifest.root, out, CONFIG, verbose=0)
    return last, json.loads((out / "metrics.json").read_text())


def _saved_weights(out) -> list[np.ndarray]:
    return keras.saving.load_model(out / "model.keras", safe_mode=True).get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    manifest = make_manifest(root / "data")
    with pytest.MonkeyPatch.context() as monkeypatch:
        return manifest, *_train(manifest, root / "model", monkeypatch)


class TestResume:
    def test_resumed_run_matches_the_uninterrupted_one(self, uninterrupted, tmp_path, monkeypatch):
        manifest, expected, expected_metrics = uninterrupted
        expected_history = expected_metrics["history"]
        out = tmp_path / "model"
        _train_interrupted(manifest, out, monkeypatch, 2)
        assert not out.exists()
        last = tmp_path / ".model.partial" / "weights" / "phase1_last.npz"
        with np.load(last) as saved:
            saved_optimizer = [saved[f"optimizer/{i}"] for i in range(sum(k.startswith("optimizer/")
                                                                          for k in saved.files))]
        assert int(saved_optimizer[0]) == 2 * STEPS_PER_EPOCH  # Adam's iteration count
        assert any(np.abs(a).max() > 0 for a in saved_optimizer[2:])  # its moments

        restored = []
        real = train_state_module._restore_optimizer

        def spy(optimizer, variables, path):
            ok = real(optimizer, variables, path)
            restored.append((ok, [np.asarray(v) for v in optimizer.variables]))
            return ok

        monkeypatch.setattr(train_state_module, "_restore_optimizer", spy)
        resumed, metrics = _train(manifest, out, monkeypatch)
        history = metrics["history"]
        (ok, variables), = restored
        assert ok and len(variables) == len(saved_optimizer)
        for got, want in zip(variables, saved_optimizer, strict=True):
            np.testing.assert_array_equal(got, want)
        # The same epochs as the run that was never interrupted (up to float summation order).
        assert history["phase"] == expected_history["phase"] == [1] * CONFIG.head_epochs
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(history[key], expected_history[key], rtol=1e-5)
        for got, want in zip(resumed, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)

    def test_run_interrupted_in_the_refit_resumes_there(self, tmp_path, monkeypatch):
        manifest = make_manifest(tmp_path / "data")
        # The tiny model learns next to nothing, so its best epoch is noise: the valid loss the
        # checkpoints see falls every epoch instead, making the split run's best epoch its last.
        real_checkpoint = TrainState.checkpoint

        def falling_val_loss(self, phase, layers, patience):
            callback = real_checkpoint(self, phase, layers, patience)
            on_epoch_end = callback.on_epoch_end
            callback.on_epoch_end = lambda epoch, logs=None: on_epoch_end(
                epoch, {**logs, "val_loss": 1.0 / (epoch + 1)} if logs and "val_loss" in logs else logs)
            return callback

        monkeypatch.setattr(TrainState, "checkpoint", falling_val_loss)
        _, expected_metrics = _train(manifest, tmp_path / "uninterrupted", monkeypatch)
        expected_weights = _saved_weights(tmp_path / "uninterrupted")
        assert expected_metrics["shipped_model"]["epochs"]["head"] == CONFIG.head_epochs
        out = tmp_path / "model"
        _train_interrupted(manifest, out, monkeypatch, 2, phase=3)
        assert not out.exists()
        state = json.loads((tmp_path / ".model.partial" / "state.json").read_text())
        assert state["phase1"]["done"] and state["phase3"]["epoch"] == 2 and not state["phase3"].get("done")
        with np.load(tmp_path / ".model.partial" / "weights" / "phase3_last.npz") as saved:
            assert int(saved["optimizer/0"]) == 2 * STEPS_PER_EPOCH  # the refit's Adam iterations

        fits, resumed_at = [], {}
        real_fit, real_resume = keras.Model.fit, TrainState.resume
        monkeypatch.setattr(keras.Model, "fit", lambda net, *a, **k: fits.append(k["initial_epoch"]) or
                            real_fit(net, *a, **k))
        monkeypatch.setattr(TrainState, "resume", lambda self, phase, *a: resumed_at.setdefault(
            phase, real_resume(self, phase, *a)))
        _, metrics = _train(manifest, out, monkeypatch)
        # The split run was not repeated; the refit went on from its third epoch.
        assert fits == [2] and resumed_at == {3: 2}
        shipped, expected = metrics["shipped_model"], expected_metrics["shipped_model"]
        assert (shipped["trained_on"], shipped["images"], shipped["epochs"]) == (
            ["train", "valid", "test"], 16, {"head": CONFIG.head_epochs, "fine_tune": 0})
        assert shipped["history"]["phase"] == [3] * CONFIG.head_epochs
        # The same epochs as the run that was never interrupted, Adam's state included.
        np.testing.assert_allclose(shipped["history"]["loss"], expected["history"]["loss"], rtol=1e-5)
        for got, want in zip(_saved_weights(out), expected_weights, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)

    @pytest.mark.slow
    def test_resuming_without_the_optimizer_state_diverges(self, uninterrupted, tmp_path, monkeypatch):
        """The check above has teeth: restarting Adam at the resume gives other weights."""
        manifest, expected, _ = uninterrupted
        out = tmp_path / "model"
        _train_interrupted(manifest, out, monkeypatch, 2)
        monkeypatch.setattr(train_state_module, "_restore_optimizer", lambda *args: False)
        resumed, _ = _train(manifest, out, monkeypatch)
        assert max(np.abs(g - w).max() for g, w in zip(resumed, expected, strict=True)) > 1e-4


class TestTrainState:
    def _layers_and_optimizer(self, units=2):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, name="dense")])
        optimizer = keras.optimizers.Adam(1e-3)
        return model, optimizer

    def _checkpoint_one_epoch(self, state, model, optimizer):
        model.compile(optimizer=optimizer, loss="mse")
        callback = state.checkpoint(1, model.layers, patience=5)
        model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), epochs=1, batch_size=2,
                  callbacks=[callback], verbose=0)
        return callback

    def test_work_folder_and_empty_state(self, tmp_path):
        state = TrainState(tmp_path / "model")
        assert state.work == tmp_path / ".model.partial" and state.work.is_dir()
        assert state.phase(1) == {} and state.features_dir == state.work / "features"
        assert state.resume(1, [], None) == 0

    def test_checkpoint_then_resume_restores_weights_and_optimizer(self, tmp_path):
        model, optimizer = self._layers_and_optimizer()
        self._checkpoint_one_epoch(TrainState(tmp_path / "model"), model, optimizer)
        fresh, fresh_optimizer = self._layers_and_optimizer()
        state = TrainState(tmp_path / "model")  # read back from disk
        assert state.phase(1)["epoch"] == 1 and len(state.phase(1)["history"]["loss"]) == 1
        assert state.resume(1, fresh.layers, fresh_optimizer, fresh.trainable_variables) == 1
        for got, want in zip(fresh.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
        assert int(fresh_optimizer.iterations) == 2
        for got, want in zip(fresh_optimizer.variables, optimizer.variables, strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))

    def test_optimizer_state_that_does_not_fit_warns_and_starts_afresh(self, tmp_path, caplog):
        model, optimizer = self._layers_and_optimizer()
        self._checkpoint_one_epoch(TrainState(tmp_path / "model"), model, optimizer)
        last = tmp_path / ".model.partial" / "weights" / "phase1_last.npz"
        with np.load(last) as saved:  # a work folder written before the optimizer was saved
            arrays = {k: saved[k] for k in saved.files if not k.startswith("optimizer/")}
        np.savez(last, **arrays)
        fresh, fresh_optimizer = self._layers_and_optimizer()
        with caplog.at_level(logging.WARNING, logger="classifier.train_state"):
            epoch = TrainState(tmp_path / "model").resume(1, fresh.layers, fresh_optimizer,
                                                         fresh.trainable_variables)
        assert epoch == 1 and "optimizer of the resumed phase starts afresh" in caplog.text
        assert int(fresh_optimizer.iterations) == 0
        for got, want in zip(fresh.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)  # the weights are still resumed

    def test_fixed_epochs_keep_the_last_weights_and_never_stop_early(self, tmp_path):
        model, optimizer = self._layers_and_optimizer()
        model.compile(optimizer=optimizer, loss="mse")
        state = TrainState(tmp_path / "model")
        callback = state.checkpoint(3, model.layers, patience=None)
        model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), epochs=4, batch_size=2,
                  callbacks=[callback], verbose=0)
        callback.finish()
        saved = TrainState(tmp_path / "model").phase(3)
        assert (saved["epoch"], saved["best_epoch"], saved["done"]) == (4, 4, True)
        assert not saved.get("stopped") and len(saved["history"]["loss"]) == 4
        fresh, _ = self._layers_and_optimizer()
        state.load_best(3, fresh.layers)
        for got, want in zip(fresh.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)

    def test_changing_what_is_shipped_keeps_the_state(self, tmp_path):
        from dataclasses import replace

        model, optimizer = self._layers_and_optimizer()
        state = TrainState(tmp_path / "model")
        state.check_config(CONFIG)
        self._checkpoint_one_epoch(state, model, optimizer)
        TrainState(tmp_path / "model").check_config(replace(CONFIG, ship="split"))
        assert TrainState(tmp_path / "model").phase(1)["epoch"] == 1  # the split run is the same work
        assert json.loads((state.work / "train_config.json").read_text())["ship"] == "split"

    def test_other_config_starts_afresh(self, tmp_path):
        model, optimizer = self._layers_and_optimizer()
        state = TrainState(tmp_path / "model")
        state.check_config(CONFIG)
        self._checkpoint_one_epoch(state, model, optimizer)
        TrainState(tmp_path / "model").check_config(CONFIG)
        assert TrainState(tmp_path / "model").phase(1)["epoch"] == 1
        other = TrainState(tmp_path / "model")
        other.check_config(TrainConfig(weights="none", head_epochs=2))
        assert other.phase(1) == {} and TrainState(tmp_path / "model").phase(1) == {}
        assert not (other.work / "weights").exists()
