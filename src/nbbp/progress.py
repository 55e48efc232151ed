"""What ``fit(verbose=True)`` shows: a tqdm progress bar over the epochs when tqdm is installed,
printed lines when it is not. The library prints nothing unless asked."""

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

    # Without a bar, a line for every epoch up to this many, then for every k-th epoch: a
    # 1000-epoch fit prints 20 lines, not 1000.
    MAX_LINES = 20

    def __init__(self, epochs, bar=None):
        self.epochs = epochs
        self._every = max(1, epochs // self.MAX_LINES)
        self._pending = None
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
            return
        shown = "  ".join(f"{name} {value:.6g}" for name, value in values.items())
        self._pending = f"epoch {epoch + 1}/{self.epochs}  {shown}"
        if epoch == 0 or (epoch + 1) % self._every == 0 or epoch + 1 == self.epochs:
            self._print_pending()

    def _print_pending(self):
        if self._pending is not None:
            print(self._pending, flush=True)
            self._pending = None

    def close(self):
        """Close the bar, or print the last epoch's line if it was skipped (an early stop)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._print_pending()
