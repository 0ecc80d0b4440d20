"""Test-session settings shared by every test folder."""

import gc

# The folders whose modules build Core ML exports or train models in their fixtures run first, so
# that under ``pytest -n 2 --dist loadfile`` the two workers end on short modules and finish
# together, not with one waiting while the other builds the last module's exports.
_FIRST = ("tests/verify/", "tests/localize/", "tests/detector/", "tests/classifier/")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return next((k for k, folder in enumerate(_FIRST) if path.startswith(folder)), len(_FIRST))

    items.sort(key=rank)  # stable: each folder keeps its own order


def pytest_collection_finish(session):
    # TensorFlow, Keras and coremltools call gc.collect() often (every Core ML conversion three
    # times, every Keras session clear once); each full collection walks every object the
    # imports made. Freezing them after collection takes them out of every later collection.
    gc.collect()
    gc.freeze()
