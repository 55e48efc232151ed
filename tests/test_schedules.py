"""Learning-rate schedules: each equals its torch.optim.lr_scheduler counterpart, fit changes
the rate once per epoch and records it, and bad schedules are refused before anything changes."""

import math

import pytest
from numpy.testing import assert_allclose, assert_array_equal

import nbbp
from nbbp.schedules import CosineAnnealingLR, ExponentialLR, InvScaling, ReduceLROnPlateau, StepLR

EPOCHS = 40
# a loss that falls, stalls, falls a little (under the relative threshold), and rises
LOSSES = ([1.0, 0.8, 0.7, 0.7, 0.7, 0.69999, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, float("nan")]
          + [0.65] * 14 + [0.5, 0.4] + [0.45] * 10)


def torch_rates(make, losses=None):
    """The lr torch gives each epoch: read before the epoch, scheduler stepped after it."""
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True, dtype=torch.float64)
    optimizer = torch.optim.SGD([w], lr=0.1)
    scheduler = make(torch.optim.lr_scheduler, optimizer)
    rates = []
    for epoch in range(EPOCHS):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if losses is None:
            scheduler.step()
        else:
            scheduler.step(losses[epoch])
    return rates


def our_rates(schedule, losses=()):
    return [schedule.rate(epoch, list(losses[:epoch])) for epoch in range(EPOCHS)]


@pytest.mark.parametrize("ours, theirs", [
    (StepLR(0.1, step_size=7, gamma=0.5), lambda s, o: s.StepLR(o, step_size=7, gamma=0.5)),
    (StepLR(0.1, step_size=1), lambda s, o: s.StepLR(o, step_size=1)),
    (ExponentialLR(0.1, gamma=0.9), lambda s, o: s.ExponentialLR(o, gamma=0.9)),
    (CosineAnnealingLR(0.1, T_max=15), lambda s, o: s.CosineAnnealingLR(o, T_max=15)),
    (CosineAnnealingLR(0.1, T_max=10, eta_min=0.01),
     lambda s, o: s.CosineAnnealingLR(o, T_max=10, eta_min=0.01)),
], ids=["step 7", "step 1", "exponential", "cosine", "cosine to eta_min"])
def test_each_schedule_equals_torch(ours, theirs):
    assert_allclose(our_rates(ours), torch_rates(theirs), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("kwargs", [
    {}, dict(patience=2), dict(patience=0, factor=0.5, cooldown=2),
    dict(patience=1, threshold=0.05, threshold_mode="abs", min_lr=0.004),
    dict(patience=1, factor=0.5, threshold=0.0),
], ids=["defaults", "patience 2", "cooldown", "abs threshold, min_lr", "no threshold"])
def test_reduce_on_plateau_equals_torch(kwargs):
    ours = our_rates(ReduceLROnPlateau(0.1, **kwargs), LOSSES)
    theirs = torch_rates(lambda s, o: s.ReduceLROnPlateau(o, mode="min", **kwargs), LOSSES)
    assert_allclose(ours, theirs, rtol=1e-10, atol=1e-15)
    assert len(set(ours)) > 1  # the rate did change


def test_warm_up_then_cosine_by_hand():
    schedule = CosineAnnealingLR(0.2, T_max=12, eta_min=0.02, warmup=4)
    rates = our_rates(schedule)
    assert_allclose(rates[:4], [0.05, 0.1, 0.15, 0.2], rtol=1e-15)
    # then the cosine over the 8 epochs left: lr at epoch 4, the midpoint at 8, eta_min at 12
    assert_allclose([rates[4], rates[8], rates[12]], [0.2, 0.11, 0.02], rtol=1e-14)


def test_inverse_scaling_by_hand():
    rates = our_rates(InvScaling(0.3, power_t=0.25))
    assert_allclose(rates[:3], [0.3, 0.3 / 2 ** 0.25, 0.3 / 3 ** 0.25], rtol=1e-15)


def classification(rng, n=60):
    return rng.normal(size=(n, 4)), rng.integers(0, 3, size=n)


def test_fit_uses_each_epochs_rate_as_partial_fit_would(rng):
    X, y = classification(rng)
    schedule = StepLR(0.2, step_size=1, gamma=0.5)
    net = nbbp.Network([4, 6, 3], seed=2)
    history = net.fit(X, y, epochs=3, batch_size=16, learning_rate=schedule, shuffle=False)
    assert history.learning_rate == [0.2, 0.1, 0.05]
    step_by_step = nbbp.Network([4, 6, 3], seed=2)
    for rate in (0.2, 0.1, 0.05):  # plain SGD keeps no state between the calls
        step_by_step.partial_fit(X, y, batch_size=16, learning_rate=rate, shuffle=False)
    assert_array_equal(net._theta, step_by_step._theta)


def test_a_constant_rate_is_recorded_too(rng):
    X, y = classification(rng)
    history = nbbp.Network([4, 6, 3]).fit(X, y, epochs=2, learning_rate=0.03)
    assert history.learning_rate == [0.03, 0.03]
    assert_array_equal(history.as_arrays()["learning_rate"], [0.03, 0.03])


def test_reduce_on_plateau_watches_the_validation_loss(rng):
    X, y = classification(rng, n=80)
    schedule = ReduceLROnPlateau(0.5, patience=0, factor=0.5)
    net = nbbp.Network([4, 16, 3], seed=1)
    history = net.fit(X, y, epochs=12, learning_rate=schedule, validation_fraction=0.25)
    expected = [schedule.rate(e, history.val_loss[:e]) for e in range(12)]
    assert history.learning_rate == expected
    assert len(set(expected)) > 1  # the validation loss did stall, and the rate fell
    assert expected != [schedule.rate(e, history.loss[:e]) for e in range(12)]


def test_a_schedule_survives_a_callback_that_edits_history(rng):
    X, y = classification(rng)
    schedule = ReduceLROnPlateau(0.1, patience=0)

    def wipe(epoch, history):
        history.loss[:] = [math.inf] * len(history.loss)  # would look like no improvement

    a = nbbp.Network([4, 6, 3]).fit(X, y, epochs=4, learning_rate=schedule, callback=wipe)
    b = nbbp.Network([4, 6, 3]).fit(X, y, epochs=4, learning_rate=schedule)
    assert a.learning_rate == b.learning_rate


@pytest.mark.parametrize("make, error, match", [
    (lambda: StepLR(0.1, step_size=0), ValueError, "step_size"),
    (lambda: StepLR(-0.1, step_size=2), ValueError, "lr"),
    (lambda: ExponentialLR(0.1, gamma=1.5), ValueError, "gamma"),
    (lambda: ExponentialLR(0.1, gamma=0.0), ValueError, "gamma"),
    (lambda: CosineAnnealingLR(0.1, T_max=5, warmup=5), ValueError, "warmup"),
    (lambda: CosineAnnealingLR(0.1, T_max=5, eta_min=0.2), ValueError, "eta_min"),
    (lambda: CosineAnnealingLR(0.1, T_max=2.5), ValueError, "T_max"),
    (lambda: InvScaling(0.1, power_t=float("nan")), ValueError, "power_t"),
    (lambda: ReduceLROnPlateau(0.1, factor=1.0), ValueError, "factor"),
    (lambda: ReduceLROnPlateau(0.1, threshold_mode="relative"), ValueError, "threshold_mode"),
    (lambda: ReduceLROnPlateau(0.1, patience=-1), ValueError, "patience"),
])
def test_bad_schedules_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_schedule_edited_into_nonsense_is_refused_and_nothing_changes(rng):
    X, y = classification(rng)
    schedule = StepLR(0.1, step_size=2)
    schedule.gamma = 3.0  # past the constructor's check
    net = nbbp.Network([4, 6, 3])
    before = net._theta.copy()
    with pytest.raises(ValueError, match="gamma"):
        net.fit(X, y, epochs=2, learning_rate=schedule)
    assert_array_equal(net._theta, before)
    assert net.history is None


def test_partial_fit_takes_a_number_only(rng):
    X, y = classification(rng)
    net = nbbp.Network([4, 6, 3])
    before = net._theta.copy()
    with pytest.raises(TypeError, match="partial_fit takes a number"):
        net.partial_fit(X, y, learning_rate=StepLR(0.1, step_size=1))
    assert_array_equal(net._theta, before)


def test_a_history_pickled_before_schedules_unpickles(rng):
    import pickle

    X, y = classification(rng)
    history = nbbp.Network([4, 6, 3]).fit(X, y, epochs=2)
    del history.learning_rate  # as a History pickled before this record existed
    revived = pickle.loads(pickle.dumps(history))
    assert revived.learning_rate == []
    assert revived.as_arrays()["loss"].shape == (2,)


def test_a_user_schedule_giving_a_bad_rate_stops_fit_at_that_epoch(rng):
    class Broken(nbbp.schedules.Schedule):
        def rate(self, epoch, monitored):
            return self.lr if epoch < 2 else float("nan")

    X, y = classification(rng)
    net = nbbp.Network([4, 6, 3])
    with pytest.raises(ValueError, match="gave epoch 2 the rate nan"):
        net.fit(X, y, epochs=4, learning_rate=Broken(0.1))
    assert net.history.epochs == 2
    assert net.history.learning_rate == [0.1, 0.1]
