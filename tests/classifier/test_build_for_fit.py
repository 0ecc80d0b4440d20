import keras
import numpy as np

from classifier.build_for_fit import build_for_fit


def fitted(build: bool):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dropout(0.2),
                            keras.layers.Dense(3, activation="softmax")])
    net.compile(optimizer=keras.optimizers.Adam(1e-2, clipnorm=1.0), loss="categorical_crossentropy",
                metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    traces = []
    step = net.train_step
    net.train_step = lambda data: traces.append(1) or step(data)  # runs only when the step is traced
    if build:
        build_for_fit(net, (np.zeros((1, 6), np.float32), np.zeros((1, 3), np.float32)))
    history = net.fit(x, y, batch_size=8, epochs=2, shuffle=True, class_weight={0: 1.0, 1: 2.0, 2: 1.0}, verbose=0)
    return net, history.history, len(traces)


def test_fit_traces_its_step_once_and_learns_the_same_numbers():
    built, history, traces = fitted(True)
    plain, plain_history, plain_traces = fitted(False)
    assert (traces, plain_traces) == (1, 2)
    assert history == plain_history
    for a, b in zip(built.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
