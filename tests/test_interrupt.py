"""Ctrl-C during fit leaves the network at the end of its last completed epoch, with optimizer
state and History that agree with its parameters."""

import signal
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nbbp


def data():
    rng = np.random.default_rng(4)
    return rng.normal(size=(100, 6)), rng.integers(0, 3, size=100)


def replay(epochs):
    """A fresh network trained for ``epochs`` epochs, as the interrupted one was."""
    X, y = data()
    net = nbbp.Network([6, 10, 3], seed=2)
    net.fit(X, y, epochs=epochs, batch_size=16, optimizer="adam", learning_rate=0.01)
    return net


def test_keyboard_interrupt_from_a_callback_keeps_a_consistent_network():
    X, y = data()
    net = nbbp.Network([6, 10, 3], seed=2)

    def interrupt(epoch, history):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=50, batch_size=16, optimizer="adam", learning_rate=0.01,
                callback=interrupt)
    assert net.history.epochs == 3
    expected = replay(3)
    assert_array_equal(net._theta, expected._theta)
    assert_array_equal(net._opt.state, expected._opt.state)
    assert net._opt.steps == expected._opt.steps == 3 * 7
    assert net.history.loss == expected.history.loss


CHILD = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_interrupt import data, replay
import nbbp
X, y = data()
net = nbbp.Network([6, 10, 3], seed=2)
try:
    net.fit(X, y, epochs=10**6, batch_size=16, optimizer="adam", learning_rate=0.01,
            callback=lambda epoch, h: print("training", flush=True) if epoch == 0 else None)
except KeyboardInterrupt:
    epochs = net.history.epochs
    expected = replay(epochs)
    consistent = (np.array_equal(net._theta, expected._theta)
                  and np.array_equal(net._opt.state, expected._opt.state)
                  and net._opt.steps == expected._opt.steps == 7 * epochs
                  and net.history.loss == expected.history.loss)
    print("interrupted after", epochs, "epochs; consistent:", consistent, flush=True)
"""


def test_sigint_in_a_subprocess_stops_fit_between_epochs(tmp_path):
    tests = str(__import__("pathlib").Path(__file__).parent)
    with subprocess.Popen([sys.executable, "-c", CHILD.format(tests=tests)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "training"
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=300)
        finally:
            child.kill()
    assert child.returncode == 0, err
    assert out.strip().endswith("consistent: True"), out


TRAINING_CALLS = {
    "step": lambda net, X, y: net.step(X, y, 0.05),
    "partial_fit": lambda net, X, y: net.partial_fit(X, y, batch_size=16, optimizer="adam",
                                                     learning_rate=0.01),
}


@pytest.mark.parametrize("call", TRAINING_CALLS)
def test_an_interrupt_anywhere_in_a_training_call_leaves_all_of_it_or_none(call):
    # Batch normalisation's running averages change in the forward pass, the weights after the
    # backward pass: a Ctrl-C between the two left averages of one step with weights of the
    # step before, and one just after the network was claimed left it claimed for good. A
    # timer sends Ctrl-C at random points (it runs the SIGINT handler in place, as Python
    # does when the signal arrives there); after each, the network must equal a clean copy
    # with or without that call, and still train.
    import copy

    train = TRAINING_CALLS[call]

    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(64, 6)), rng.integers(0, 3, size=64)
    net = nbbp.Network([6, 16, 16, 3], batch_norm=True, seed=1)

    armed = [False]

    def alarm(signum, frame):
        if armed[0]:  # not once the loop has left the try below
            armed[0] = False
            signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)

    previous = signal.signal(signal.SIGALRM, alarm)
    interrupted = 0
    try:
        for _ in range(2000):
            before = copy.deepcopy(net)
            try:
                armed[0] = True
                signal.setitimer(signal.ITIMER_REAL,
                                 rng.uniform(1e-5, 4e-4 if call == "step" else 2e-3))
                train(net, X, y)
                armed[0] = False
            except KeyboardInterrupt:
                interrupted += 1
            after = copy.deepcopy(before)
            train(after, X, y)
            same_as = [other for other in (before, after)
                       if np.array_equal(net._theta, other._theta)
                       and np.array_equal(net._stats, other._stats)
                       and np.array_equal(net._opt.state, other._opt.state)
                       and net._opt.steps == other._opt.steps
                       and (net.history and net.history.loss) == (other.history
                                                                  and other.history.loss)]
            assert same_as, f"{call} left part of its update"
            if interrupted >= 200:
                break
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interrupted >= 20  # the timer did land inside the calls


def press_ctrl_c_in(seconds):
    """Ctrl-C in ``seconds``, from a timer: the SIGALRM handler runs the SIGINT handler in
    place, as Python does when SIGINT arrives there (held back, or KeyboardInterrupt)."""
    def alarm(signum, frame):
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)


@pytest.fixture
def timer():
    previous = signal.getsignal(signal.SIGALRM)
    yield press_ctrl_c_in
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_ctrl_c_stops_a_slow_callback_at_once_and_keeps_its_epoch(timer):
    # The training call holds Ctrl-C back over its epochs, not over the user's callback.
    import time

    X, y = data()
    net = nbbp.Network([6, 10, 3], seed=2)

    def slow(epoch, history):
        timer(0.2)
        time.sleep(10)

    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=50, batch_size=16, optimizer="adam", learning_rate=0.01,
                callback=slow)
    assert time.perf_counter() - start < 5
    expected = replay(1)
    assert net.history.epochs == 1
    assert_array_equal(net._theta, expected._theta)
    assert net._opt.steps == expected._opt.steps


def test_ctrl_c_in_a_fit_run_by_a_callback_stops_it_between_its_epochs(timer):
    # The inner fit's hold replaces the real handler (the outer one lets Ctrl-C through in
    # its callback), so the inner fit raises at its next recorded epoch, not after 10^6.
    X, y = data()
    outer, inner = nbbp.Network([6, 10, 3], seed=2), nbbp.Network([6, 10, 3], seed=3)

    def train_another(epoch, history):
        timer(0.3)
        inner.fit(X, y, epochs=10**6, batch_size=16)

    with pytest.raises(KeyboardInterrupt):
        outer.fit(X, y, epochs=3, batch_size=16, callback=train_another)
    assert 1 <= inner.history.epochs < 10**6
    assert outer.history.epochs == 1


def test_a_ctrl_c_held_by_the_main_thread_is_not_raised_in_another(timer):
    # A worker thread training its own network between its epochs must not take the main
    # thread's Ctrl-C: only the main thread holds and delivers it.
    import threading

    X, y = data()
    worker_net = nbbp.Network([6, 10, 3], seed=3)
    caught = []

    def work():
        try:
            worker_net.fit(X, y, epochs=3000, batch_size=16)
        except BaseException as exc:  # recorded for the assertion
            caught.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        timer(0.2)
        with pytest.raises(KeyboardInterrupt):
            nbbp.Network([6, 10, 3], seed=2).fit(X, y, epochs=10**6, batch_size=16)
    finally:
        worker.join(300)
    assert not worker.is_alive()
    assert caught == []
    assert worker_net.history.epochs == 3000


SIG_DFL_CHILD = """
import signal
import numpy as np
import nbbp
signal.signal(signal.SIGINT, signal.SIG_DFL)
rng = np.random.default_rng(4)
X, y = rng.normal(size=(100, 6)), rng.integers(0, 3, size=100)
nbbp.Network([6, 10, 3], seed=2).fit(
    X, y, epochs=10**6, batch_size=16,
    callback=lambda epoch, h: print("training", flush=True) if epoch == 0 else None)
"""


def test_under_sig_dfl_ctrl_c_ends_the_process_between_epochs():
    # SIG_DFL, as many command-line tools set it: the process ends at the next recorded epoch,
    # not after the whole fit (the held signal was re-noted by the hold itself).
    with subprocess.Popen([sys.executable, "-c", SIG_DFL_CHILD], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "training"
            child.send_signal(signal.SIGINT)
            child.wait(timeout=120)
        finally:
            child.kill()
    assert child.returncode == -signal.SIGINT
