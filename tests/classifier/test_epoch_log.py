import logging

import numpy as np

from classifier.epoch_log import epoch_log


def test_one_log_line_per_epoch_with_its_numbers(caplog):
    import keras

    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    net.compile(loss="mse")
    x, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    with caplog.at_level(logging.INFO, logger="classifier.epoch_log"):
        net.fit(x, y, validation_data=(x, y), epochs=3, verbose=0, callbacks=[epoch_log("tiny")])
    lines = [r.getMessage() for r in caplog.records if r.name == "classifier.epoch_log"]
    assert [line.split(":")[0] for line in lines] == ["tiny epoch 1/3", "tiny epoch 2/3", "tiny epoch 3/3"]
    assert all("loss " in line and "val_loss " in line for line in lines)


def test_only_the_keys_asked_for_in_their_order(caplog):
    import keras

    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    net.compile(loss="mse")
    x, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    with caplog.at_level(logging.INFO, logger="classifier.epoch_log"):
        net.fit(x, y, validation_data=(x, y), epochs=1, verbose=0,
                callbacks=[epoch_log("tiny", keys=("val_loss", "loss", "absent"))])
    (line,) = [r.getMessage() for r in caplog.records if r.name == "classifier.epoch_log"]
    assert line.startswith("tiny epoch 1/1: val_loss ") and ", loss " in line and "absent" not in line
