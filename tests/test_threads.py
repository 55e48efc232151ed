"""Network from several Python threads: inference runs concurrently and gives the serial results;
a second concurrent training call on one network is refused."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nbbp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_predict_from_four_threads_equal_serial_calls(rng, dtype):
    net = nbbp.Network([40, 300, 30, 5], dtype=dtype, seed=1)  # large enough for parallel kernels
    batches = [rng.normal(size=(int(rng.integers(1, 200)), 40)) for _ in range(16)]
    serial = [(net.forward(X), net.predict(X)) for X in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda X: (net.forward(X), net.predict(X)), batches))
    for (f1, p1), (f2, p2) in zip(serial, concurrent):
        assert_array_equal(f1, f2)
        assert_array_equal(p1, p2)


def test_a_second_concurrent_fit_is_refused(rng):
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, size=64)
    net = nbbp.Network([5, 8, 3])
    inside, release = threading.Event(), threading.Event()

    def slow_callback(epoch, history):
        inside.set()
        release.wait(30)

    first = threading.Thread(target=net.fit, args=(X, y),
                             kwargs={"epochs": 1, "callback": slow_callback})
    first.start()
    try:
        assert inside.wait(60)
        before = net._theta.copy()
        for call in (lambda: net.fit(X, y, epochs=1), lambda: net.partial_fit(X, y),
                     lambda: net.step(X, y, 0.1)):
            with pytest.raises(RuntimeError, match="already being trained in another thread"):
                call()
        assert_array_equal(net._theta, before)
    finally:
        release.set()
        first.join(60)
    net.fit(X, y, epochs=1)  # free again once the first fit has returned
