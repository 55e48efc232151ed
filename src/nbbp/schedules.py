"""Learning-rate schedules for ``Network.fit``: the rate changes once per epoch, as with
``torch.optim.lr_scheduler`` stepped after every epoch.

A schedule is a description, not a running state: ``rate(epoch, monitored)`` gives the rate of
epoch ``epoch`` (from 0) from the loss monitored in the epochs before it (ReduceLROnPlateau's
input; the others ignore it). ``fit`` asks once per epoch and records the rate in
``History.learning_rate``, so one schedule object serves any number of fits and networks.

- ``StepLR(lr, step_size, gamma=0.1)``: lr gamma^floor(e / step_size);
- ``ExponentialLR(lr, gamma)``: lr gamma^e;
- ``CosineAnnealingLR(lr, T_max, eta_min=0.0, warmup=0)``: a linear warm-up from lr / warmup
  to lr over the first ``warmup`` epochs, then eta_min + (lr - eta_min)(1 + cos(pi e' / T)) / 2
  with e' the epochs since the warm-up and T = T_max - warmup;
- ``InvScaling(lr, power_t=0.5)``: lr / (e + 1)^power_t, scikit-learn's "invscaling" counted in
  epochs;
- ``ReduceLROnPlateau(lr, factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
  cooldown=0, min_lr=0.0, eps=1e-8)``: lr times factor whenever the monitored loss (the
  validation loss when there is validation data, else the training loss) has not improved for
  more than ``patience`` epochs, as torch's in mode "min" (a change smaller than ``eps`` is
  skipped).
"""

from __future__ import annotations

import math
import numbers

from ._validation import Spec, check_positive_number, check_real


def _count(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


class Schedule(Spec):
    """Base of the schedules: ``lr`` is the starting rate (torch's initial lr)."""

    def __init__(self, lr: float) -> None:
        self.lr = check_positive_number(lr, "lr")

    def rate(self, epoch: int, monitored: list[float]) -> float:
        """The learning rate of epoch ``epoch`` (from 0), given the monitored loss of every
        epoch before it."""
        raise NotImplementedError


class StepLR(Schedule):
    """lr gamma^floor(epoch / step_size), as torch.optim.lr_scheduler.StepLR."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(lr)
        self.step_size = _count(step_size, "step_size", 1)
        self.gamma = check_real(gamma, "gamma", 0.0, 1.0, low_open=True)

    def rate(self, epoch, monitored):
        return self.lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """lr gamma^epoch, as torch.optim.lr_scheduler.ExponentialLR."""

    def __init__(self, lr: float, gamma: float) -> None:
        super().__init__(lr)
        self.gamma = check_real(gamma, "gamma", 0.0, 1.0, low_open=True)

    def rate(self, epoch, monitored):
        return self.lr * self.gamma**epoch


class CosineAnnealingLR(Schedule):
    """Cosine annealing from lr to eta_min over T_max epochs, as
    torch.optim.lr_scheduler.CosineAnnealingLR, after an optional linear warm-up: epoch e <
    warmup has lr (e + 1) / warmup, and the cosine then runs over the T_max - warmup epochs
    left. Past T_max the rate follows the cosine back up, as torch's does."""

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0, warmup: int = 0) -> None:
        super().__init__(lr)
        self.T_max = _count(T_max, "T_max", 1)
        self.eta_min = check_real(eta_min, "eta_min", 0.0, self.lr)
        self.warmup = _count(warmup, "warmup", 0)
        if self.warmup >= self.T_max:
            raise ValueError(f"warmup must be less than T_max; got warmup={warmup!r}, "
                             f"T_max={T_max!r}")

    def rate(self, epoch, monitored):
        if epoch < self.warmup:
            return self.lr * (epoch + 1) / self.warmup
        span = self.T_max - self.warmup
        cosine = (1 + math.cos(math.pi * (epoch - self.warmup) / span)) / 2
        return self.eta_min + (self.lr - self.eta_min) * cosine


class InvScaling(Schedule):
    """lr / (epoch + 1)^power_t: scikit-learn's "invscaling", counted in epochs."""

    def __init__(self, lr: float, power_t: float = 0.5) -> None:
        super().__init__(lr)
        self.power_t = check_real(power_t, "power_t", 0.0, 10.0)

    def rate(self, epoch, monitored):
        return self.lr / (epoch + 1) ** self.power_t


class ReduceLROnPlateau(Schedule):
    """lr times ``factor`` whenever the monitored loss has not improved for more than
    ``patience`` epochs, then ``cooldown`` epochs without counting, never below ``min_lr``: as
    torch.optim.lr_scheduler.ReduceLROnPlateau in mode "min", stepped with each epoch's loss.
    An improvement is a loss below best (1 - threshold) (``threshold_mode="rel"``) or below
    best - threshold ("abs"); a NaN loss is never one."""

    def __init__(self, lr: float, factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.factor = check_real(factor, "factor", 0.0, 1.0, low_open=True, high_open=True)
        self.patience = _count(patience, "patience", 0)
        self.threshold = check_real(threshold, "threshold", 0.0, math.inf, high_open=True)
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs'; got {threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = _count(cooldown, "cooldown", 0)
        self.min_lr = check_real(min_lr, "min_lr", 0.0, self.lr)
        self.eps = check_real(eps, "eps", 0.0, math.inf, high_open=True)

    def _improves(self, loss, best):
        if self.threshold_mode == "rel":
            return loss < best * (1 - self.threshold)
        return loss < best - self.threshold

    def rate(self, epoch, monitored):
        # replays the monitored losses: the rate is a function of them alone
        lr, best, bad, cooling = self.lr, math.inf, 0, 0
        for loss in monitored[:epoch]:
            if self._improves(loss, best):
                best, bad = loss, 0
            else:
                bad += 1
            if cooling > 0:
                cooling -= 1
                bad = 0
            if bad > self.patience:
                reduced = max(lr * self.factor, self.min_lr)
                if lr - reduced > self.eps:  # torch's: a change smaller than eps is skipped
                    lr = reduced
                cooling, bad = self.cooldown, 0
        return lr


SCHEDULES = (StepLR, ExponentialLR, CosineAnnealingLR, InvScaling, ReduceLROnPlateau)
