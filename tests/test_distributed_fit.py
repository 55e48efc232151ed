"""Network.fit(comm=...) under real MPI ranks (mpiexec, MPICH on loopback). Each rank trains on
its contiguous shard (distributed.rows_of) of one data set, writes its parameters and a JSON
report, and the test checks them against one process: the union of the ranks' batches step by
step (sync_every=1), reference.model_averaging (sync_every=k), and the loss and score of the
union of the ranks' validation sets. Failures on one rank end every rank, inside a timeout."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import COMPILE_LISTENER
from numpy.testing import assert_allclose, assert_array_equal

import nbbp
from nbbp import reference
from nbbp.distributed import rows_of

TRAIN = r"""
import json, os, signal, sys, threading
import numpy as np
from mpi4py import MPI
import nbbp
from nbbp.distributed import rows_of

comm = MPI.COMM_WORLD
base, case = sys.argv[1], json.loads(sys.argv[2])
nbbp._collective.USE_NODE_SUM = case.get("node_sum", True)  # False: MPI_Allreduce
node_sums = []  # the steps summed through the shared window
summed = nbbp._collective.NodeSum.sum
nbbp._collective.NodeSum.sum = lambda self: node_sums.append(1) or summed(self)
data = np.load(base + ".data.npz")
start, stop = rows_of(len(data["X"]), comm.rank, comm.size)
X, y = data["X"][start:stop].copy(), data["y"][start:stop]
if case.get("shard"):  # read-only memmaps of this rank's rows of .npy files
    from nbbp.distributed import shard
    X, y = shard(base + ".X.npy", comm), shard(base + ".y.npy", comm)
fit = dict(case["fit"])
odd = comm.rank == case.get("odd_rank", -1)  # the rank that goes wrong, if any
if "w" in data:
    fit["sample_weight"] = data["w"][start:stop]
if odd and case.get("odd") == "weighted":  # weights of 1 on this rank alone: as none
    fit["sample_weight"] = np.ones(len(X))
if "Xv" in data:
    a, b = rows_of(len(data["Xv"]), comm.rank, comm.size)
    fit["validation_data"] = (data["Xv"][a:b], data["yv"][a:b])
sizes = list(case["sizes"])
if odd and case.get("odd") == "learning_rate":
    fit["learning_rate"] = 2 * fit.get("learning_rate", 0.01)
if odd and case.get("odd") == "nan":
    X[3, 1] = np.nan
if odd and case.get("odd") == "sizes":
    sizes[1] += 1
if odd and case.get("odd") == "callback":
    def callback(epoch, history):
        if epoch == 1:
            raise RuntimeError("the callback of rank 1 failed")
    fit["callback"] = callback
if odd and case.get("odd") == "sigint":  # Ctrl-C on this rank alone, mid-training
    def callback(epoch, history):  # from epoch 1: the ranks share a recorded epoch
        if epoch == 1:
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    fit["callback"] = callback
if case.get("nested"):  # every rank's callback trains another network on the same comm
    def callback(epoch, history):
        nbbp.Network([6, 4, 3]).fit(X, y, epochs=1, batch_size=8, comm=comm)
    fit["callback"] = callback
if case.get("odd") in ("sigint_schedule", "interrupt_schedule"):  # while one rank's rate is
    class Interrupted(nbbp.schedules.StepLR):                     # asked, after an epoch
        def rate(self, epoch, monitored):
            if odd and epoch == 1 and case["odd"] == "sigint_schedule":
                os.kill(os.getpid(), signal.SIGINT)  # held (noted) until the ranks settle
            if odd and epoch == 1 and case["odd"] == "interrupt_schedule":
                raise KeyboardInterrupt  # one that was not held
            return super().rate(epoch, monitored)
    fit["learning_rate"] = Interrupted(0.01, 5)
if case.get("odd") == "schedule":  # fails on one rank, in the first epoch
    class Flaky(nbbp.schedules.StepLR):
        def rate(self, epoch, monitored):
            if odd:
                raise RuntimeError("the schedule of rank 1 failed")
            return super().rate(epoch, monitored)
    fit["learning_rate"] = Flaky(0.01, 5)
net = nbbp.Network(sizes, seed=10 + comm.rank, **case.get("net", {}))
if case.get("warm"):  # another network trained first: the shared window of another size
    nbbp.Network([6, 4, 3]).fit(X, y, epochs=1, batch_size=8, comm=comm)
if case.get("odd") == "schedule":  # a first fit of the same optimizer: its state is kept
    net.fit(X, y, epochs=1, batch_size=4, optimizer="adam")
before = (net._theta.copy(), net._stats.copy(), net._opt.state.copy(), net._opt.steps,
          net.rng.bit_generator.state, net.history)
try:
    if case.get("partial"):  # partial_fit, one epoch a call, the optimizer state kept
        for _ in range(fit.pop("epochs")):
            history = net.partial_fit(X, y, comm=comm, **fit)
    else:
        history = net.fit(X, y, comm=comm, **fit)
    report = {"loss": history.loss, "val_loss": history.val_loss,
              "val_score": history.val_score, "grad_norm": np.array(history.grad_norm).tolist(),
              "stopped_early": history.stopped_early, "best_epoch": history.best_epoch,
              "steps": net._opt.steps, "node_sums": len(node_sums)}
except BaseException as error:
    report = {"error": f"{type(error).__name__}: {error}", "epochs": len(net.history.loss)
              if net.history is not None else 0,
              "unchanged": all(np.array_equal(a, b) for a, b in zip(
                  before[:3], (net._theta, net._stats, net._opt.state)))
              and before[3:] == (net._opt.steps, net.rng.bit_generator.state, net.history)}
np.save(f"{base}.theta{comm.rank}.npy", net._theta)
np.save(f"{base}.stats{comm.rank}.npy", net._stats)
with open(f"{base}.rank{comm.rank}.json", "w") as f:  # ranks share stdout: a file each
    json.dump(report, f)
"""


def mpiexec():
    pytest.importorskip("mpi4py.MPI")
    found = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = found if os.path.exists(found) else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (pip install 'nbbp[mpi]')")
    return found


def train_on_ranks(tmp_path, n_ranks, case, timeout=240, env=None, **data):
    """Run TRAIN on n_ranks ranks (with ``env`` added to the environment); returns (thetas,
    reports) per rank."""
    base = tmp_path / "run"
    np.savez(f"{base}.data.npz", **data)
    result = subprocess.run([mpiexec(), "-n", str(n_ranks), sys.executable, "-c", TRAIN,
                             str(base), json.dumps(case)], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})}, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    thetas = [np.load(f"{base}.theta{r}.npy") for r in range(n_ranks)]
    reports = [json.loads(tmp_path.joinpath(f"run.rank{r}.json").read_text())
               for r in range(n_ranks)]
    return thetas, reports


def union_order(n, n_ranks, batch_size):
    """The rows of one process's epoch: step s's batch is every rank's batch s, in rank order."""
    shards = [np.arange(*rows_of(n, r, n_ranks)) for r in range(n_ranks)]
    steps = max(-(-len(s) // batch_size) for s in shards)
    return [np.concatenate([s[k * batch_size:(k + 1) * batch_size] for s in shards])
            for k in range(steps)]


def data(rng, n, n_features=6, n_classes=3):
    return rng.normal(size=(n, n_features)), rng.integers(0, n_classes, n)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("extras", [{}, {"l2": 0.01, "clip_norm": 0.5, "weighted": True},
                                    {"l2": 0.05, "l2_per_batch": True, "weighted": True}])
@pytest.mark.parametrize("node_sum", [True, False], ids=["shared window", "Allreduce"])
def test_two_ranks_train_as_one_process_on_the_union_of_their_batches(tmp_path, rng, optimizer,
                                                                      extras, node_sum):
    X, y = data(rng, 96)
    extras = dict(extras)
    w = rng.uniform(0, 2, size=96) if extras.pop("weighted", False) else None
    if w is not None:
        w[8:16] = 0  # a batch of weight 0 on rank 0, beside rank 1's of weight > 0
        w[48 + 40:] = 0  # the last batch of rank 1: weight 0
    fit = {"epochs": 3, "batch_size": 8, "optimizer": optimizer, "shuffle": False,
           "learning_rate": 0.05, **extras}
    arrays = {"X": X, "y": y} if w is None else {"X": X, "y": y, "w": w}
    thetas, reports = train_on_ranks(tmp_path, 2, {"sizes": [6, 16, 3], "fit": fit,
                                                   "node_sum": node_sum}, **arrays)
    assert_array_equal(thetas[0], thetas[1])  # bitwise
    assert reports[0] == reports[1]
    assert reports[0]["node_sums"] == (18 if node_sum else 0)
    order = np.concatenate(union_order(96, 2, 8))  # equal shards: batches of 16 in one process
    one = nbbp.Network([6, 16, 3], seed=10)  # rank 0's network
    history = one.fit(X[order], y[order], **{**fit, "batch_size": 16},
                      sample_weight=None if w is None else w[order])
    assert_allclose(thetas[0], one._theta, rtol=0, atol=1e-12)
    assert_allclose(reports[0]["loss"], history.loss, rtol=1e-12)
    assert_allclose(reports[0]["grad_norm"], history.grad_norm, rtol=1e-12)
    assert reports[0]["steps"] == one._opt.steps == 18


def test_partial_fit_on_memmapped_shards_keeps_adams_state_across_calls(tmp_path, rng):
    X, y = data(rng, 96)
    np.save(tmp_path / "run.X.npy", X)
    np.save(tmp_path / "run.y.npy", y)
    fit = {"epochs": 3, "batch_size": 8, "optimizer": "adam", "shuffle": False,
           "learning_rate": 0.05}
    thetas, reports = train_on_ranks(tmp_path, 2, {"sizes": [6, 16, 3], "fit": fit,
                                                   "partial": True, "shard": True}, X=X, y=y)
    assert_array_equal(thetas[0], thetas[1])
    order = np.concatenate(union_order(96, 2, 8))
    one = nbbp.Network([6, 16, 3], seed=10)
    for _ in range(3):
        one.partial_fit(X[order], y[order], batch_size=16, optimizer="adam", shuffle=False,
                        learning_rate=0.05)
    assert_allclose(thetas[0], one._theta, rtol=0, atol=1e-12)
    assert reports[0]["steps"] == one._opt.steps == 18


def test_a_fit_inside_a_callback_on_the_same_comm_leaves_the_outer_one_alone(tmp_path, rng):
    # the inner call finds the outer one's shared window in use and sums with MPI_Allreduce
    X, y = data(rng, 96)
    fit = {"epochs": 2, "batch_size": 8, "shuffle": False, "learning_rate": 0.1}
    thetas, reports = train_on_ranks(tmp_path, 2, {"sizes": [6, 5, 3], "fit": fit,
                                                   "nested": True}, X=X, y=y)
    assert_array_equal(thetas[0], thetas[1])
    assert reports[0]["node_sums"] == 12  # the outer call's 2 x 6 steps alone
    order = np.concatenate(union_order(96, 2, 8))
    one = nbbp.Network([6, 5, 3], seed=10)
    one.fit(X[order], y[order], **{**fit, "batch_size": 16})
    assert_allclose(thetas[0], one._theta, rtol=0, atol=1e-12)


def test_float32_ranks_stay_bitwise_equal_and_near_one_process(tmp_path, rng):
    X, y = data(rng, 96)
    fit = {"epochs": 3, "batch_size": 8, "optimizer": "adam", "shuffle": False,
           "learning_rate": 0.05}
    case = {"sizes": [6, 16, 3], "net": {"dtype": "float32"}, "fit": fit}
    thetas, reports = train_on_ranks(tmp_path, 2, case, X=X.astype(np.float32), y=y)
    assert thetas[0].dtype == np.float32
    assert reports[0] == reports[1]
    assert_array_equal(thetas[0], thetas[1])
    order = np.concatenate(union_order(96, 2, 8))
    one = nbbp.Network([6, 16, 3], seed=10, dtype=np.float32)
    one.fit(X[order].astype(np.float32), y[order], **{**fit, "batch_size": 16})
    assert_allclose(thetas[0], one._theta, rtol=0, atol=1e-5)


def test_weights_on_one_rank_alone_train_as_the_same_data_unweighted(tmp_path, rng):
    X, y = data(rng, 96)
    fit = {"epochs": 2, "batch_size": 8, "shuffle": False, "learning_rate": 0.1}
    thetas, _ = train_on_ranks(tmp_path, 2, {"sizes": [6, 5, 3], "fit": fit, "odd_rank": 1,
                                             "odd": "weighted"}, X=X, y=y)
    assert_array_equal(thetas[0], thetas[1])
    order = np.concatenate(union_order(96, 2, 8))
    one = nbbp.Network([6, 5, 3], seed=10)
    one.fit(X[order], y[order], **{**fit, "batch_size": 16})
    assert_allclose(thetas[0], one._theta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("node_sum", [True, False], ids=["shared window", "Allreduce"])
def test_unequal_shards_step_on_what_every_rank_has_left(tmp_path, rng, node_sum):
    # 100 rows on 3 ranks: 34, 33, 33; batches of 8 make 5 steps, the last of 2 + 1 + 1 rows
    X, y = data(rng, 100)
    fit = {"epochs": 2, "batch_size": 8, "shuffle": False, "learning_rate": 0.1}
    # NBBP_NODE_SUM=0, the user's switch, for the Allreduce path
    thetas, reports = train_on_ranks(tmp_path, 3, {"sizes": [6, 5, 3], "fit": fit,
                                                   "warm": True}, X=X, y=y,
                                     env={"NBBP_NODE_SUM": "1" if node_sum else "0"})
    assert reports[0]["node_sums"] == (5 + 10 if node_sum else 0)  # the warm network's too
    assert all(np.array_equal(t, thetas[0]) for t in thetas)
    assert reports[0] == reports[2]
    one = nbbp.Network([6, 5, 3], seed=10)
    batches = union_order(100, 3, 8)
    assert [len(b) for b in batches] == [24, 24, 24, 24, 4]
    for _ in range(2):
        for rows in batches:  # plain gradient descent on the union batch
            one.step(X[rows], y[rows], 0.1)
    assert_allclose(thetas[0], one._theta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("optimizer, hyper", [("momentum", {"momentum": 0.9}), ("adam", {})])
def test_local_sgd_equals_the_reference_model_averaging(tmp_path, rng, optimizer, hyper):
    X, y = data(rng, 100)  # 34, 33, 33 rows: the last round is short on every rank
    fit = {"epochs": 2, "batch_size": 8, "shuffle": False, "learning_rate": 0.05,
           "sync_every": 3, "optimizer": optimizer}
    thetas, _ = train_on_ranks(tmp_path, 3, {"sizes": [6, 5, 3], "fit": fit}, X=X, y=y)
    assert all(np.array_equal(t, thetas[0]) for t in thetas)
    net = nbbp.Network([6, 5, 3], seed=10)  # rank 0's, as the ranks start
    Y = np.eye(3)[y]
    shards = [(X[a:b], Y[a:b]) for a, b in (rows_of(100, r, 3) for r in range(3))]
    Ws, bs = reference.model_averaging(
        [W.copy() for W in net.weights], [b.copy() for b in net.biases], shards,
        ["relu", "softmax"], "cross_entropy", epochs=2, batch_size=8, sync_every=3,
        learning_rate=0.05, optimizer=optimizer, **hyper)
    net._theta[...] = thetas[0]
    for l in range(2):
        assert_allclose(net.weights[l], Ws[l], rtol=0, atol=1e-12)
        assert_allclose(net.biases[l], bs[l], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_validation_is_scored_on_the_union_of_the_ranks_held_out_rows(tmp_path, rng, kind):
    X, y = data(rng, 90)
    Xv, yv = data(rng, 31)
    net_args = {}
    if kind == "regressor":
        y, yv = X[:, :2] @ [[1.0, -2.0], [0.5, 1.0]], Xv[:, :2] @ [[1.0, -2.0], [0.5, 1.0]]
        net_args = {"output": "identity", "loss": "squared_error"}
    sizes = [6, 8, 3 if kind == "classifier" else 2]
    case = {"sizes": sizes, "net": net_args,
            "fit": {"epochs": 3, "batch_size": 10, "learning_rate": 0.05}}
    thetas, reports = train_on_ranks(tmp_path, 3, case, X=X, y=y, Xv=Xv, yv=yv)
    assert all(np.array_equal(t, thetas[0]) for t in thetas)
    assert reports[0] == reports[1]
    final = nbbp.Network(sizes, **net_args)
    final._theta[...] = thetas[0]
    assert_allclose(reports[0]["val_loss"][-1], final.loss(Xv, yv), rtol=1e-12)
    assert_allclose(reports[0]["val_score"][-1], final.score(Xv, yv), rtol=1e-10)


def test_batch_norm_and_dropout_keep_the_ranks_alike(tmp_path, rng):
    # each rank normalises with its own batch's statistics and drops its own units; the running
    # averages are averaged over the ranks at the end of every epoch
    X, y = data(rng, 90)
    case = {"sizes": [6, 16, 16, 3], "net": {"batch_norm": True, "dropout": 0.2},
            "fit": {"epochs": 4, "batch_size": 8, "optimizer": "adam", "learning_rate": 0.01}}
    thetas, reports = train_on_ranks(tmp_path, 3, case, X=X, y=y)
    stats = [np.load(tmp_path / f"run.stats{r}.npy") for r in range(3)]
    assert all(np.array_equal(t, thetas[0]) for t in thetas)
    assert all(np.array_equal(s, stats[0]) for s in stats)
    assert stats[0].size == 64
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["loss"][-1] < reports[0]["loss"][0]


def test_early_stopping_on_unequal_shards_stops_every_rank_alike(tmp_path, rng):
    X, y = data(rng, 101)
    fit = {"epochs": 60, "batch_size": 4, "optimizer": "adam", "learning_rate": 0.05,
           "validation_fraction": 0.25, "early_stopping": True, "patience": 2}
    thetas, reports = train_on_ranks(tmp_path, 3, {"sizes": [6, 32, 3], "fit": fit}, X=X, y=y)
    assert all(np.array_equal(t, thetas[0]) for t in thetas)
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["stopped_early"]
    assert len(reports[0]["loss"]) < 60
    best = reports[0]["best_epoch"]
    assert reports[0]["val_loss"][best] == min(reports[0]["val_loss"])


@pytest.mark.parametrize("odd, own, others", [
    ("nan", "ValueError: X",
     "ValueError: fit: rank 1 of 2 failed, so every rank stopped: ValueError: X"),
    ("sizes", "ValueError: fit: rank 1 of 2 has network",
     "ValueError: fit: rank 1 of 2 has network"),
    ("callback", "RuntimeError: the callback of rank 1 failed",
     ("RankError: callback: rank 1 of 2 failed, so every rank stopped: RuntimeError: the "
      "callback of rank 1 failed")),
    ("sigint", "KeyboardInterrupt", ("RankError: training: rank 1 of 2 failed, so every rank "
                                     "stopped: KeyboardInterrupt: interrupted (Ctrl-C)")),
    # noted while the ranks agree on the epoch's rate: a Ctrl-C interrupts the training, not
    # the schedule, whichever collective finds it
    ("sigint_schedule", "KeyboardInterrupt", ("RankError: training: rank 1 of 2 failed, so every "
                                              "rank stopped: KeyboardInterrupt: interrupted "
                                              "(Ctrl-C)")),
    ("interrupt_schedule", "KeyboardInterrupt", ("RankError: training: rank 1 of 2 failed, so "
                                                 "every rank stopped: KeyboardInterrupt: "
                                                 "interrupted (Ctrl-C)")),
    ("learning_rate", "ValueError: fit: rank 1 of 2 has learning_rate 0.02, rank 0 0.01",
     "ValueError: fit: rank 1 of 2 has learning_rate 0.02, rank 0 0.01"),
    ("schedule", "RuntimeError: the schedule of rank 1 failed",
     ("RankError: the learning-rate schedule: rank 1 of 2 failed, so every rank stopped: "
      "RuntimeError: the schedule of rank 1 failed")),
])
def test_a_failure_on_one_rank_ends_every_rank(tmp_path, rng, odd, own, others):
    X, y = data(rng, 400 if odd == "sigint" else 40)
    epochs = 100000 if odd == "sigint" else 4
    case = {"sizes": [6, 16, 3], "odd_rank": 1, "odd": odd,
            "fit": {"epochs": epochs, "batch_size": 4, "optimizer": "adam"}}
    thetas, reports = train_on_ranks(tmp_path, 2, case, timeout=120, X=X, y=y)
    assert reports[1]["error"].startswith(own), reports
    assert reports[0]["error"].startswith(others), reports
    assert reports[0]["epochs"] == reports[1]["epochs"]
    # the epochs recorded before it are kept, alike
    if odd in ("callback", "sigint", "sigint_schedule", "interrupt_schedule"):
        assert reports[0]["epochs"] >= 1
        assert_array_equal(thetas[0], thetas[1])
    else:  # a failure before an epoch completes changes nothing on any rank
        assert reports[0]["unchanged"], reports
        assert reports[1]["unchanged"], reports


def test_lbfgs_and_mismatched_settings_are_refused_on_every_rank(tmp_path, rng):
    X, y = data(rng, 40)
    pytest.importorskip("scipy")
    _, reports = train_on_ranks(tmp_path, 2, {"sizes": [6, 4, 3],
                                              "fit": {"optimizer": "lbfgs", "epochs": 2}},
                                X=X, y=y)
    assert all("L-BFGS does not train across MPI ranks" in r["error"] for r in reports)


def test_comm_and_sync_every_are_checked():
    net = nbbp.Network([2, 3, 2])
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator; got str"):
        net.fit(X, y, comm="world")
    with pytest.raises(ValueError, match="sync_every needs comm"):
        net.fit(X, y, sync_every=2)
    MPI = pytest.importorskip("mpi4py.MPI")
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="sync_every must be an integer >= 1"):
            net.partial_fit(X, y, comm=MPI.COMM_SELF, sync_every=bad)
    assert net.history is None  # nothing changed


COMPILES = r"""
import json, sys
import numpy as np
from mpi4py import MPI
from numba.core import event
import nbbp

""" + COMPILE_LISTENER + r"""

comm = MPI.COMM_WORLD
X = np.random.default_rng(comm.rank).normal(size=(64, 5))
with event.install_listener("numba:compile", Compiles()):
    nbbp.Network([5, 4, 3], dtype=np.float32).fit(X, np.arange(64) % 3, epochs=2, comm=comm)
with open(f"{sys.argv[1]}.{comm.rank}.json", "w") as f:
    json.dump([name for name in compiled if name.startswith("nbbp.")
               and "<locals>" not in name], f)
"""


def test_ranks_on_an_empty_cache_compile_each_function_once_and_a_warm_cache_none(tmp_path):
    # the ranks alone, without a compile helper (nbbp._warm; tests/test_warm.py)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NBBP_COMPILE_HELPER": "0"}
    runs = []
    for run in ("cold", "warm"):
        result = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-c", COMPILES,
                                 str(tmp_path / run)], env=env, capture_output=True, text=True,
                                timeout=900, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append([json.loads((tmp_path / f"{run}.{r}.json").read_text()) for r in range(2)])
    cold = runs[0][0] + runs[0][1]
    assert "nbbp._collective.union_gradient" in cold
    assert "nbbp.training.train_epoch" in cold
    assert sorted(cold) == sorted(set(cold)), [n for n in set(cold) if cold.count(n) > 1]
    assert runs[1] == [[], []]


def nbbp_on_ranks(n_ranks, *args):
    return subprocess.run([mpiexec(), "-n", str(n_ranks), sys.executable, "-m", "nbbp", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_nbbp_train_under_mpiexec_trains_on_every_rank_and_rank_0_reports(tmp_path, iris_csv):
    model = tmp_path / "m.npz"
    result = nbbp_on_ranks(2, "train", "--data", str(iris_csv), "--model", str(model),
                           "--quiet")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("saved ") == 1, out  # rank 0 alone
    assert out.count("nbbp train: ") == 1, out
    assert "epochs in" in out
    assert "on 2 MPI ranks" in out
    accuracy = float(out.split("\naccuracy ")[1].split()[0])
    assert accuracy >= 0.9
    predicted = subprocess.run([sys.executable, "-m", "nbbp", "predict", "--model", str(model),
                                "--data", str(iris_csv)], capture_output=True, text=True,
                               timeout=300, check=False)
    assert predicted.returncode == 0
    assert predicted.stdout.count("\n") == 151


def test_nbbp_train_under_mpiexec_reports_a_bad_file_once(tmp_path):
    result = nbbp_on_ranks(3, "train", "--data", str(tmp_path / "missing.csv"), "--model",
                           str(tmp_path / "m.npz"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"nbbp: error: {tmp_path / 'missing.csv'}: no such file"
    assert not (tmp_path / "m.npz").exists()


def test_the_projection_gives_the_smallest_batch_at_80_percent():
    from nbbp import scaling

    t_s = 100e-6
    for n in scaling.RANKS:
        for gbit in scaling.BANDWIDTHS_GBIT:
            for every in (1, 8):
                b = scaling.smallest_batch(t_s, n, 8e6, gbit, every)
                ring = scaling.allreduce_seconds(n, 8e6, gbit)
                compute = b * t_s * every
                assert compute / (compute + ring) >= 0.8
                fewer = (b - 1) * t_s * every
                assert b == 1 or fewer / (fewer + ring) < 0.8
    # 2 (N - 1) / N of 8 MB at 10 Gb/s, and 2 (N - 1) messages of 20 us
    assert scaling.allreduce_seconds(2, 8e6, 10) == pytest.approx(8e6 * 8 / 10e9 + 2 * 20e-6)
    lines = scaling.projection_lines("W4", 2_109_450, 4, t_s)
    assert len(lines) == 4 + len(scaling.RANKS)
    assert lines[-1].startswith("| 64 | ")


def test_bench_distributed_measures_two_ranks_and_projects(tmp_path):
    mpiexec()
    result = subprocess.run([sys.executable, "-m", "nbbp", "bench", "--distributed",
                             "--workloads", "W2", "--quick", "--repeat", "1"],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "machine: " in out
    assert "1 rank x 2 threads, batch 32:" in out
    for what in ("batch 16 per rank, every step", "batch 32 per rank, every step",
                 "sync_every=8"):
        line = next(line for line in out.splitlines() if what in line)
        assert float(line.rsplit("(", 1)[1].rstrip("x)")) > 0
    assert "one allreduce of a step's 0.42 MiB between the 2 ranks:" in out
    assert "| 64 | " in out
