"""What ``fit(verbose=True)`` shows: a tqdm progress bar over the epochs when tqdm is installed,
one printed line per epoch when it is not. The library prints nothing unless asked."""

import sys


class EpochProgress:
    """Report the end of each epoch of a ``fit``; use as a context manager.

    Parameters
    ----------
    epochs : int
        Epochs the fit may run (early stopping can end it sooner).
    bar : bool or None, default None
        True for a tqdm bar, False for plain lines, None for a bar if tqdm can be imported.
    """

    def __init__(self, epochs, bar=None):
        self.epochs = epochs
        self._bar = None
        if bar is None or bar:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                if bar:
                    raise ImportError("a progress bar needs tqdm: pip install tqdm "
                                      "(or nbbp[progress])") from None
            else:
                self._bar = tqdm(total=epochs, unit="epoch", desc="fit", file=sys.stderr,
                                 dynamic_ncols=True, leave=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def epoch_done(self, epoch, values):
        """Show that ``epoch`` (from 0) finished with ``values``, a dict of name -> float."""
        if self._bar is not None:
            self._bar.set_postfix({name: f"{value:.4g}" for name, value in values.items()},
                                  refresh=False)
            self._bar.update(1)
        else:
            shown = "  ".join(f"{name} {value:.6g}" for name, value in values.items())
            print(f"epoch {epoch + 1}/{self.epochs}  {shown}", flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
