"""Training across MPI ranks: ``Network.fit(..., comm=comm)`` and ``partial_fit``. Every rank
runs _fit.train on its own shard and asks its ``Group`` for the parts that need the others.

- Before training the ranks agree (``agree``, ``check_same``): an error on any rank raises on
  every rank, and they must hold the same network. Then rank 0's parameters, running
  statistics, optimizer state and random generator go to every rank (``start``).
- Each step (``sync_every=1``), every rank computes its batch's gradient with the epoch driver
  (optimizers.NO_UPDATE), weighted by the batch's weight, and one sum over the ranks adds up
  the gradients and the weights (through a shared-memory window, NodeSum, where the ranks share
  one machine; else MPI_Allreduce): the step is that of one process on the union of the ranks'
  batches, and every rank applies the same step to the same parameters, which stay bitwise
  equal. A rank out of samples adds zero.
- With ``sync_every=k``, every rank takes up to k steps of its own (local SGD), then the
  parameters, the optimizer state and the running statistics are averaged, weighted by the
  samples each rank trained on, and the step count becomes the largest rank's; also at the end
  of every epoch.
- The epoch's loss, the validation loss and score, early stopping, divergence and a callback's
  stop come from allreduced values: every rank records the same History and stops alike.

A failure on one rank (an exception, Ctrl-C) is flagged in the next collective call, and every
rank raises: the failing rank its own exception, the others a RankError (a ValueError or
TypeError for those) that names it. mpi4py is imported only here, when a comm is given.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from ._interrupts import deliver_held_interrupt, interrupt_noted
from ._jit import part
from ._layout import BN_OFF, N_OUT, layer
from ._simd import aligned_zeros
from .optimizers import LBFGS, NO_UPDATE, optimizer_update, update_in_parallel
from .passes import score
from .training import CLIP_EPS, sum_of_squares


class RankError(RuntimeError):
    """Training stopped on every MPI rank because another rank failed
    (``Network.fit(comm=...)``); the message names the rank and its error. Also
    ``nbbp.distributed.RankError``."""


# The errors raised on the other ranks as the type they had on the failing one.
_SAME_TYPE = {"ValueError": ValueError, "TypeError": TypeError}
_COMM_METHODS = ("Get_rank", "Get_size", "Allreduce", "Bcast", "allgather", "bcast")


def group_for(comm, sync_every):
    """The Group of ``comm`` (an mpi4py communicator), or None for comm=None. ``sync_every``
    is checked by ``prepared``, on every rank together (one rank's bad value would otherwise
    leave the others waiting)."""
    if comm is None:
        if sync_every != 1:
            raise ValueError("sync_every needs comm: it is how often MPI ranks average")
        return None
    if not all(hasattr(comm, name) for name in _COMM_METHODS):
        raise TypeError(f"comm must be an mpi4py communicator; got {type(comm).__name__}")
    return Group(comm, sync_every)


def _check_sync_every(sync_every):
    if isinstance(sync_every, bool) or not isinstance(sync_every, (int, np.integer)) \
            or sync_every < 1:
        raise ValueError(f"sync_every must be an integer >= 1; got {sync_every!r}")
    return int(sync_every)


@part
def union_gradient(grad, theta, mask, layout, inv_weight, l2, grad_norm_sum):
    """dE/dtheta on the union of the ranks' batches, from grad = sum_r w_r g_r (each rank's
    batch gradient g_r times its batch weight w_r), is inv_weight grad (inv_weight =
    1 / sum_r w_r), plus l2 w_ij on the weights where mask_ij != 0. With l2 = 0 grad is only
    read (the optimizer applies inv_weight as it reads it: no pass of its own over grad); else it
    becomes dE/dtheta, in place. Adds ||dE/dW(l)|| to grad_norm_sum[l]; returns (||dE/dtheta||^2
    over every parameter, clipping's, and sum_l ||W(l)||^2, the penalty's)."""
    if l2 != 0:
        for p in range(grad.shape[0]):
            grad[p] *= inv_weight
    scale = grad.dtype.type(1) if l2 != 0 else inv_weight  # from grad to dE/dtheta
    squares = 0.0
    weight_squares = 0.0
    for l in range(layout.shape[0]):
        W, _ = layer(theta, layout, l)
        dW, db = layer(grad, layout, l)
        layer_squares = 0.0
        if l2 != 0:
            M, _ = layer(mask, layout, l)
            for i in range(W.shape[0]):
                for j in range(W.shape[1]):
                    if M[i, j] != 0:
                        dW[i, j] += l2 * W[i, j]
                    layer_squares += dW[i, j] * dW[i, j]
                    weight_squares += W[i, j] * W[i, j]
        else:  # squares in the dtype's vectors, by chunks (training.sum_of_squares)
            layer_squares = sum_of_squares(dW.ravel()) * scale * scale
        grad_norm_sum[l] += np.sqrt(layer_squares)
        squares += layer_squares
        n_out, bn_off = layout[l, N_OUT], layout[l, BN_OFF]
        for i in range(db.shape[0]):
            squares += (db[i] * scale) * (db[i] * scale)
        if bn_off >= 0:
            for p in range(bn_off, bn_off + 2 * n_out):
                squares += (grad[p] * scale) * (grad[p] * scale)
    return squares, weight_squares


# Whether ranks that share one node's memory sum their steps' gradients through a shared window
# (NodeSum) rather than MPI_Allreduce: False here, or NBBP_NODE_SUM=0 in any rank's
# environment, turns it off (False tests the Allreduce path on one machine).
USE_NODE_SUM = True
# A shared window is used only if the node's shared memory (/dev/shm) has this many times its
# size free: a container's default 64 MiB fills at 8 ranks of W4.
SHM_HEADROOM = 2


class NodeSum:
    """The sum over the ranks of one buffer each, for ranks that share a node's memory: each
    rank's buffer is its row of an MPI shared-memory window, and after a fence each rank adds
    its own slice of columns over every row, in rank order, into the window's last row, which
    every rank then reads in place. A W4 step's 8 MiB between 2 ranks on the Xeon, the buffers
    fresh from other work (not in cache), timed alone: 1.2 ms, against 2.7 for MPI_Allreduce;
    in training 1.6 against 3.2.

    The window holds ``capacity`` elements a row; ``use(n)`` sets ``rows[rank]``, this rank's
    buffer, and ``total``, the sum (read-only to the ranks: a rank that edits the sum works on a
    copy), to the first n. ``comm`` is the node's communicator, freed with the window; ``token``
    is the same number on every rank (rank 0's draw), to tell this window from another."""

    def __init__(self, comm, MPI, capacity, dtype):
        self.capacity = -(-capacity // 16) * 16  # every row starts on a cache line
        self.dtype = np.dtype(dtype)
        self.comm, self.users = comm, 0  # users: training calls using it now
        self.window = MPI.Win.Allocate_shared(
            (comm.size + 1) * self.capacity * self.dtype.itemsize if comm.rank == 0 else 0,
            self.dtype.itemsize, comm=comm)
        memory, _ = self.window.Shared_query(0)
        self.table = np.ndarray(buffer=memory, dtype=self.dtype,
                                shape=(comm.size + 1, self.capacity))
        self.token = comm.bcast(int.from_bytes(os.urandom(8), "little"), root=0)
        self.window.Fence()  # opens the first epoch: every later fence ends one (a barrier)

    def use(self, n):
        self.rows, self.total = self.table[:self.comm.size, :n], self.table[self.comm.size, :n]
        width = -(-n // 16) * 16
        per = -(-width // (16 * self.comm.size)) * 16
        self.columns = slice(min(n, self.comm.rank * per), min(n, (self.comm.rank + 1) * per))

    def sum(self):
        """Collective: total = sum of the rows, in rank order. Each fence is a barrier and a
        memory barrier: the rows are written before it, the sum read after the second."""
        self.window.Fence()
        part = self.total[self.columns]
        np.copyto(part, self.rows[0, self.columns])
        for r in range(1, self.comm.size):
            part += self.rows[r, self.columns]
        self.window.Fence()

    def free(self):
        """Collective: release the window and the node's communicator."""
        self.window.Free()
        self.comm.Free()


def _keyval(MPI):
    """The attribute key under which a communicator keeps its NodeSum (an attribute, not a
    table by handle: a communicator freed and its handle reused carries none)."""
    global _KEYVAL  # noqa: PLW0603 - one key per process, created on first use
    if _KEYVAL is None:
        _KEYVAL = MPI.Comm.Create_keyval()
    return _KEYVAL


_KEYVAL = None


def _shm_room(n_bytes):
    """Whether /dev/shm (where Linux MPIs put a shared window) has SHM_HEADROOM x n_bytes free;
    True where there is no /dev/shm to ask."""
    try:
        found = os.statvfs("/dev/shm")
    except OSError:
        return True
    return found.f_bavail * found.f_frsize >= SHM_HEADROOM * n_bytes


def node_sum(comm, MPI, n, dtype):
    """Collective over comm: where all its ranks share one node's memory, a NodeSum in use for
    n elements of dtype, else None. The window is kept on comm for the next training call (a new
    one's pages fault in on first touch: about 10 ms of a W4 fit call on 2 ranks), and held until
    the process ends (the OS reclaims it), or replaced by a larger one. A call inside another's
    callback on the same comm, while the outer one uses the window, gets None."""
    dtype = np.dtype(dtype)
    keyval = _keyval(MPI)
    kept = comm.Get_attr(keyval)
    want = USE_NODE_SUM and os.environ.get("NBBP_NODE_SUM", "1") != "0"
    state = None if kept is None else (kept.token, kept.capacity, kept.dtype.str,
                                       kept.users > 0)
    every = comm.allgather((want, state))
    if not all(w for w, _ in every):
        return None
    states = {state for _, state in every}
    if len(states) == 1 and kept is not None:  # the same window on every rank
        if kept.users:  # an outer call's: this one sums with MPI_Allreduce
            return None
        if kept.capacity >= n and kept.dtype == dtype:
            kept.users += 1
            kept.use(n)
            return kept
        comm.Delete_attr(keyval)
        kept.free()
    elif kept is not None:  # ranks holding different windows: left to the process's end
        comm.Delete_attr(keyval)
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    size = (comm.size + 1) * (-(-n // 16) * 16) * dtype.itemsize
    room = comm.bcast(_shm_room(size) if comm.rank == 0 else None, root=0)
    if not comm.allreduce(local.size == comm.size and room, op=MPI.LAND):
        local.Free()
        return None
    node = NodeSum(local, MPI, n, dtype)
    node.use(n)
    if not comm.allreduce(node.rows[0].ctypes.data % 64 == 0, op=MPI.LAND):
        node.free()
        return None
    comm.Set_attr(keyval, node)
    node.users += 1
    return node


class Group:
    """The ranks of one communicator training one network together (see the module)."""

    def __init__(self, comm, sync_every):
        from mpi4py import MPI  # a comm was given: mpi4py is there

        self.comm, self.MPI, self.sync_every = comm, MPI, sync_every
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.steps = 0  # an epoch's steps: those of the rank that needs the most

    # ------------------------------------------------------------------ agreement and failure
    def settle(self, what, problem):
        """Collective: return if no rank had a problem (an exception, or None); else raise on
        every rank, the failing rank its own exception (a noted Ctrl-C as KeyboardInterrupt).
        The others' error names ``what`` failed, or "training" for a Ctrl-C: one noted between
        two collectives is found by the next, whatever that one does (a schedule's rate, the
        callback), and it interrupted the training, not that."""
        noted = problem is None and interrupt_noted()
        report = None
        if noted or isinstance(problem, KeyboardInterrupt):  # one not held (nbbp train's setup)
            report = ("training", "KeyboardInterrupt", "interrupted (Ctrl-C)")
        elif problem is not None:
            report = (what, type(problem).__name__, str(problem) or repr(problem))
        reports = self.comm.allgather(report)
        failed = [(r, found) for r, found in enumerate(reports) if found is not None]
        if not failed:
            return
        if problem is not None:
            raise problem
        if noted:
            deliver_held_interrupt()  # KeyboardInterrupt through the handler it replaced
        r, (where, name, message) = failed[0]
        more = f" (and {len(failed) - 1} more ranks)" if len(failed) > 1 else ""
        raise _SAME_TYPE.get(name, RankError)(
            f"{where}: rank {r} of {self.size} failed{more}, so every rank stopped: {name}: "
            f"{message}")

    def agree(self, what, thunk):
        """thunk() on every rank; an exception (Ctrl-C included) on any rank raises on all
        (``settle``)."""
        result, problem = None, None
        try:
            result = thunk()
        except BaseException as error:  # reported to every rank, then raised
            problem = error
        self.settle(what, problem)
        return result

    def check_same(self, what, fields):
        """Collective: every rank's ``fields`` (a dict of comparable values) equal rank 0's, or
        a ValueError on every rank naming the first field and rank that differ."""
        every = self.comm.allgather(fields)
        for r, theirs in enumerate(every):
            for name, value in theirs.items():
                if value != every[0][name]:
                    raise ValueError(f"{what}: rank {r} of {self.size} has {name} {value}, rank "
                                     f"0 {every[0][name]}; every rank must train the same "
                                     "network the same way")

    def _sum(self, values, op=None):
        buf = np.ascontiguousarray(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM if op is None else op)
        return buf

    # ---------------------------------------------------------------------------- training
    def share(self, params):
        """Collective: where the ranks all share one node's memory, the shared window their
        step's buffers are summed in (NodeSum); ``allocate`` then takes this rank's row."""
        self.node = None
        if self.sync_every == 1 and self.size > 1 and USE_NODE_SUM:
            self.node = node_sum(self.comm, self.MPI, params.theta.size + 3,
                                 params.theta.dtype)

    def allocate(self, params):
        """The step's buffer: one batch's gradient, its weight and sample count, and a failure
        flag (in the parameters' dtype: float32 sums the weights to about 1e-7); this rank's
        row of the shared window, or its own, summed with MPI_Allreduce."""
        self.buf = aligned_zeros(params.theta.size + 3, params.theta.dtype) \
            if self.node is None else self.node.rows[self.rank]

    def done(self):
        """After training: this call stops using the shared window, which is kept for the next
        call (node_sum)."""
        if getattr(self, "node", None) is not None:
            self.node.users -= 1
            self.node = None

    def start(self, net, params, plan, opt):
        """Collective, before the first epoch: rank 0's parameters, running statistics,
        optimizer state, step count and generator to every rank (each rank's own kept for
        ``restore``); the shards' sizes, which set the epoch's steps."""
        self.saved = None
        if self.rank != 0:
            self.saved = (params.theta.copy(), params.stats.copy(), opt.state.copy(), opt.steps)
        n = plan.X.shape[0] if plan.rows is None else len(plan.rows)
        self.shards = self.comm.allgather((n, plan.batch_size, plan.sample_weight is not None))
        self.steps = max(-(-n_r // b_r) for n_r, b_r, _ in self.shards)
        self.weighted = any(weighted for _, _, weighted in self.shards)
        self.smallest = 2 if net._has_batch_norm else 1  # batch statistics need two samples
        for array in (params.theta, params.stats, opt.state):
            if array.size:
                self.comm.Bcast(array, root=0)
        opt.steps = self.comm.bcast(opt.steps, root=0)
        net.rng.bit_generator.state = self.comm.bcast(net.rng.bit_generator.state, root=0)

    def restore(self, params, opt):
        """This rank's own network as before ``start`` (a call that failed before an epoch
        completed; the generator and the optimizer object are the caller's to restore)."""
        if getattr(self, "saved", None) is not None:
            params.theta[...], params.stats[...], opt.state[...], opt.steps = self.saved

    def _even(self, s):
        """Whether at step s every rank trains on an unweighted batch of one size (from the
        shards' sizes alone: the batches' sizes do not depend on the order). The union's
        gradient is then the mean of the ranks': no weighting pass over the gradient."""
        if self.weighted:
            return False
        sizes = {min(b_r, max(0, n_r - s * b_r)) for n_r, b_r, _ in self.shards}
        return len(sizes) == 1 and sizes.pop() >= self.smallest

    def order(self, rng, n, shuffle):
        """This rank's order of its n samples for an epoch: a permutation drawn from a seed the
        shared generator gives every rank alike, and the rank."""
        if not shuffle:
            return np.arange(n)
        seed = int(rng.integers(2**63))
        return np.random.default_rng([seed, self.rank]).permutation(n)

    def epoch(self, run, net, params, plan, opt, order, rate, grad_norm_sum, delta_abs_sum,
              drop_seed):
        """One epoch over every rank's ``order``: ``run`` is the network's Epochs.run. Returns
        what it returns for one process, (loss total, steps, samples, their weight), summed over
        the ranks, with grad_norm_sum and delta_abs_sum likewise."""
        if drop_seed is not None:  # each rank's own dropout masks
            drop_seed = np.uint64((int(drop_seed) + 0x9E3779B97F4A7C15 * self.rank) % 2**64)
        steps_of = self._gradient_steps if self.sync_every == 1 else self._local_steps
        total, n_used, weight_used, steps, penalty = steps_of(
            run, net, params, plan, opt, order, rate, grad_norm_sum, delta_abs_sum, drop_seed)
        L = len(delta_abs_sum)
        if self.sync_every == 1 and params.stats.size:  # each rank's batches' running averages
            params.stats[:] = self._sum(params.stats) / self.size
        # a parameter or statistic that is not finite on any rank is a divergence on all
        broken = not (np.isfinite(params.theta).all() and np.isfinite(params.stats).all())
        sums = self._sum([total, n_used, weight_used, broken, *delta_abs_sum, *grad_norm_sum])
        delta_abs_sum[:] = sums[4:4 + L]
        if self.sync_every > 1:  # each rank's own steps: their mean norm
            grad_norm_sum[:] = sums[4 + L:] / self.size
        total = np.nan if sums[3] else sums[0] + penalty
        return total, steps, int(sums[1]), float(sums[2])

    def _gradient_steps(self, run, net, params, plan, opt, order, rate, grad_norm_sum,
                        delta_abs_sum, drop_seed):
        theta, P, dt = params.theta, params.theta.size, net.dtype.type
        buf = self.buf  # this rank's; ``summed`` the ranks' sum
        grad = buf[:P]
        private = None if self.node is None or plan.l2 == 0 else aligned_zeros(P, dt)
        b = plan.batch_size
        unused = np.zeros(len(grad_norm_sum))
        h0, h1, h2, h3 = (dt(h) for h in opt.optimizer.hyperparameters())
        total = penalty = weight_used = 0.0
        n_used = steps = 0
        for s in range(self.steps):
            rows = order[s * b:(s + 1) * b]
            even = self._even(s)  # else each rank's gradient is weighted, and the sum divided
            problem, weight, count = None, 0.0, 0
            try:
                if len(rows) >= self.smallest:
                    batch_total, took, count, weight = run(
                        plan.X, plan.Y, plan.labels, rows, theta, grad, params.mask_theta,
                        params.layout, net._loss_code, net._eps, 0.0, opt.optimizer, opt.state,
                        rate, opt.steps + steps, unused, delta_abs_sum, 0.0, plan.sample_weight,
                        drop_seed, False, opt_code=NO_UPDATE)
                    if not took:  # a batch of weight 0: in the union's count, no gradient
                        weight, count = 0.0, len(rows)
                if not weight:
                    grad[:] = 0
                elif not even:
                    grad *= dt(weight)
            except BaseException as error:  # every rank raises, in settle
                problem = error
            buf[P:] = weight, count, problem is not None or interrupt_noted()
            if self.node is None:
                self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
                summed = buf
            else:
                self.node.sum()
                summed = self.node.total
            if summed[P + 2] != 0:
                self.settle("training", problem)
            W, N = float(summed[P]), float(summed[P + 1])
            union = summed[:P]
            if private is not None:  # union_gradient adds l2 w_ij in place: not in the sum
                np.copyto(private, union)
                union = private
            if W == 0:  # no rank had a sample of weight > 0: no step, as in one process
                continue
            # this rank's share of what one process would add up for the union's batch
            if weight:
                total += batch_total * (N / W if plan.l2_per_batch else 1.0)
            n_used += count
            weight_used += count if plan.l2_per_batch else weight
            l2 = dt(plan.l2 / W if plan.l2_per_batch else plan.l2)
            inv = dt(1 / self.size) if even else dt(1 / W)
            squares, weight_squares = union_gradient(union, theta, params.mask_theta,
                                                     params.layout, inv, l2, grad_norm_sum)
            penalty += (N if plan.l2_per_batch else W) * 0.5 * float(l2) * weight_squares
            scale = 1.0 if l2 != 0 else float(inv)  # union_gradient's scale, left to apply
            if plan.clip_norm > 0 and np.isfinite(squares):  # as training.clip_scale
                scale *= min(1.0, plan.clip_norm / (np.sqrt(squares) + CLIP_EPS))
            steps += 1
            optimizer_update(opt.optimizer.code, theta, union, dt(scale), opt.state, dt(rate), h0,
                             h1, h2, h3, opt.steps + steps, update_in_parallel(P) or None)
        return total, n_used, weight_used, steps, penalty

    def _local_steps(self, run, net, params, plan, opt, order, rate, grad_norm_sum,
                     delta_abs_sum, drop_seed):
        b, k = plan.batch_size, self.sync_every
        total = weight_used = 0.0
        n_used = steps = 0
        for s in range(0, self.steps, k):
            rows = order[s * b:(s + k) * b]
            problem, took, count = None, 0, 0
            try:
                if len(rows):
                    batch_total, took, count, weight = run(
                        plan.X, plan.Y, plan.labels, rows, params.theta, self.buf[:-3],
                        params.mask_theta, params.layout, net._loss_code, net._eps, plan.l2,
                        opt.optimizer, opt.state, rate, opt.steps + steps, grad_norm_sum,
                        delta_abs_sum,
                        plan.clip_norm, plan.sample_weight, drop_seed, plan.l2_per_batch)
                    total += batch_total
                    n_used += count
                    weight_used += weight
            except BaseException as error:  # every rank raises, in settle
                problem = error
            flags = self._sum([problem is not None or interrupt_noted(), took], self.MPI.MAX)
            if flags[0]:
                self.settle("training", problem)
            self._average(params, opt, count)
            steps += int(flags[1])  # every rank's t goes on from the most steps any took
        return total, n_used, weight_used, steps, 0.0

    def _average(self, params, opt, count):
        """theta, optimizer state and running statistics <- their means over the ranks,
        weighted by the samples each trained on since the last average (none: all stay)."""
        arrays = [params.theta, opt.state.ravel(), params.stats]
        parts = [a * count for a in arrays] + [np.array([count], dtype=params.theta.dtype)]
        buf = np.concatenate(parts)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        N = buf[-1]
        if N == 0:
            return
        start = 0
        for a in arrays:
            a[:] = buf[start:start + a.size] / N
            start += a.size

    def validate(self, net, plan):
        """(validation loss, validation score) over every rank's held-out samples; R^2 from
        the squares about the union's mean, as passes.score (two allreduces)."""
        problem = None
        n_out = net.sizes[-1]
        sums = np.zeros(4 + n_out)  # failure, weight, loss total, right answers, sum w y
        O = Y = w = None
        try:
            zs, a_list = net._forward(plan.X_val)
            O, Y = a_list[-1].astype(np.float64), plan.Y_val.astype(np.float64)
            w = np.ones(len(Y)) if plan.val_weight is None else plan.val_weight
            sums[1] = np.sum(w)
            sums[2] = sums[1] * net._loss(zs[-1], a_list[-1], plan.Y_val, plan.val_weight)
            if net.loss_name in ("cross_entropy", "log_loss"):  # right answers, weighted
                sums[3] = sums[1] * score(a_list[-1], plan.Y_val, net.loss_name, plan.val_weight)
            sums[4:] = w @ Y
        except BaseException as error:  # every rank raises, in settle
            problem = error
        sums[0] = problem is not None or interrupt_noted()
        sums = self._sum(sums)
        if sums[0]:
            self.settle("validation", problem)
        weight = sums[1]
        val_loss = sums[2] / weight
        if net.loss_name in ("cross_entropy", "log_loss"):
            return val_loss, sums[3] / weight
        squares = self._sum(np.concatenate([w @ (Y - sums[4:] / weight) ** 2, w @ (Y - O) ** 2]))
        spread, residual = squares[:n_out], squares[n_out:]
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(spread > 0, 1 - residual / spread, np.where(residual == 0, 1.0, 0.0))
        return val_loss, float(np.mean(r2))

    def decide(self, thunk):
        """Whether any rank's thunk() (a callback's says_stop) says stop; collective."""
        problem, stop = None, False
        try:
            stop = bool(thunk())
        except BaseException as error:  # every rank raises, in settle
            problem = error
        flags = self._sum([problem is not None or interrupt_noted(), stop], self.MPI.MAX)
        if flags[0]:
            self.settle("callback", problem)
        return bool(flags[1])


def prepared(comm, sync_every, net, what, prepare):
    """(the Group of comm or None, then prepare()'s epochs, optimizer and FitPlan); with comm,
    prepared on every rank together: an error on any rank raises on all (bad input on one rank
    included), and the ranks must train the same network the same way."""
    group = group_for(comm, sync_every)
    if group is None:
        return (None, *prepare())

    def checked():
        group.sync_every = _check_sync_every(group.sync_every)
        epochs, opt, plan = prepare()
        if plan.balanced_classes:
            raise ValueError(f"{what}: class_weight='balanced' would count each rank's classes "
                             "alone; compute n / (n_classes * count) over the whole data set and "
                             "pass the weights as a dict")
        if isinstance(opt, LBFGS):
            raise ValueError(f"{what}: L-BFGS does not train across MPI ranks (its line search "
                             "is not collective); use one of the gradient-descent optimizers")
        return epochs, opt, plan

    epochs, opt, plan = group.agree(what, checked)
    group.check_same(what, {
        "network": repr(net), "layout": zlib.crc32(np.ascontiguousarray(net._layout)),
        "masks": zlib.crc32(net._mask_theta) if net._masked.size else 0, "optimizer": repr(opt),
        "optimizer state of": repr(net.optimizer), "epochs": epochs,
        "learning_rate": repr(plan.learning_rate), "l2": plan.l2, "clip_norm": plan.clip_norm,
        "l2_per_batch": plan.l2_per_batch, "shuffle": plan.shuffle,
        "early_stopping": plan.early_stopping, "patience": plan.patience,
        "validation": plan.X_val is not None, "sync_every": group.sync_every})
    return group, epochs, opt, plan
