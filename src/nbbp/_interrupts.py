"""Ctrl-C (SIGINT) during training, and the claim that lets one training call at a time update
a network: both wrap each training call (``one_trainer``), so that a Ctrl-C arrives only where
the parameters, optimizer state and History agree."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast


class _Hold:
    """One training call's hold on Ctrl-C: the handler it replaced, and (frame,) of the first
    SIGINT it noted, or None (a frame itself may be None)."""

    def __init__(self):
        self.noted = None
        self.previous = signal.signal(signal.SIGINT, self.note)

    def note(self, signum, frame):
        if self.noted is None:
            self.noted = (frame,)


# The holds of the training calls in progress in the main thread, the innermost last.
_HELD: list[_Hold] = []


def _holding():
    """The innermost hold, when this is the main thread and a training call holds Ctrl-C."""
    if _HELD and threading.current_thread() is threading.main_thread():
        return _HELD[-1]
    return None


@contextlib.contextmanager
def _interrupts_held():
    """Hold back Ctrl-C (SIGINT) over a training call: it is raised as KeyboardInterrupt only
    where parameters, optimizer state (Adam's t included) and History agree: between fit's
    recorded epochs (``deliver_held_interrupt``), in a callback or the progress display
    (``let_interrupts_through``), or once the call returns. Nothing else in the call (a
    compiled kernel, Numba's thread-pool lock, the claim on the network) is cut short by it.

    The Python-level handler is swapped for one that only notes the signal, and the previous
    handler runs afterwards. (Masking SIGINT in the main thread is not enough: the kernel then
    delivers it to a worker thread, whose C handler still trips the main thread's next bytecode;
    seen here as a network whose step count disagreed with its weights.) Main thread only: a
    Ctrl-C is the main thread's, and other threads' calls leave it alone.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):  # a handler set from C: leave it be
        yield
        return
    hold = _Hold()
    _HELD.append(hold)
    try:
        yield
    finally:
        _HELD.pop()
        signal.signal(signal.SIGINT, hold.previous)
        if hold.noted is not None:
            _run_handler(hold.previous, hold.noted[0])


def deliver_held_interrupt():
    """At a point where the network is consistent: raise a Ctrl-C the training call noted,
    through the handler it replaced (KeyboardInterrupt, or the end of the process under
    SIG_DFL)."""
    hold = _holding()
    if hold is not None and hold.noted is not None:
        (frame,), hold.noted = hold.noted, None
        signal.signal(signal.SIGINT, hold.previous)
        _run_handler(hold.previous, frame)
        signal.signal(signal.SIGINT, hold.note)  # a handler that returned (one that logs)


def interrupt_noted():
    """Whether a Ctrl-C the innermost training call holds back is waiting (training across MPI
    ranks tells the other ranks, so that every rank stops)."""
    hold = _holding()
    return hold is not None and hold.noted is not None


def let_interrupts_through():
    """Ctrl-C as usual from here (the network is consistent, the user's code runs: a callback,
    the progress display), so a slow callback can still be stopped; ``hold_interrupts_again``
    ends it. No finally clause puts the hold back: after an exception, the call's own hold
    restores the handler, and a late one here would leave the hold's handler behind."""
    deliver_held_interrupt()
    hold = _holding()
    if hold is not None:
        signal.signal(signal.SIGINT, hold.previous)
    return hold


def hold_interrupts_again(hold):
    if hold is not None:
        signal.signal(signal.SIGINT, hold.note)


def _run_handler(handler, frame):
    if callable(handler):
        handler(signal.SIGINT, frame)  # default_int_handler raises KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)


TrainingMethod = TypeVar("TrainingMethod", bound=Callable[..., Any])


def one_trainer(method: TrainingMethod) -> TrainingMethod:
    """Refuse a second training call (fit, partial_fit, step) on a network that one is already
    updating, from another thread or from a callback: the updates would interleave on the same
    parameters."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        me = threading.get_ident()
        if self._trainer.get("thread") == me:
            # a callback training its own network: the outer fit would go on with the inner
            # call's optimizer state and weights under its own hyperparameters
            raise RuntimeError(f"{method.__name__}: this network is in a training call already "
                               "(is this a callback?); a callback may read the network and stop "
                               "training by returning False, not train it")
        # Ctrl-C is held back from before the claim until after its release: no claim outlives
        # its call. dict.setdefault claims the network in one step under the GIL.
        with _interrupts_held():
            if self._trainer.setdefault("thread", me) != me:
                raise RuntimeError(f"{method.__name__}: this network is already being trained in "
                                   "another thread; train one network from one thread at a time")
            try:
                return method(self, *args, **kwargs)
            finally:
                del self._trainer["thread"]

    return cast(TrainingMethod, guarded)
