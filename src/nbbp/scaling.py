"""``nbbp bench --distributed``: data-parallel training on MPI ranks, measured here and
projected to a cluster.

- Each of W2, W4 and D1 trains epochs on 1 process with 2 threads, and on 2 MPI ranks
  (``mpiexec -n 2``) with 1 thread each and half the data each, at the same global batch (each
  rank half of it): the same steps and the same arithmetic, so the ratio of their speeds is the
  cost of the allreduce and of its bookkeeping.
- It times one allreduce of a step's buffer (the gradient and 3 numbers) between the 2 ranks.
- It projects to N ranks with a model: a step computes for b t_s (t_s, one thread's seconds per
  sample, measured), then allreduces the gradient, a ring allreduce of B bytes taking
  2 (N - 1) / N B / bandwidth + 2 (N - 1) latency; nothing overlaps. The efficiency is
  b t_s / (b t_s + allreduce), and the tables give the smallest batch per rank b that keeps it
  at 80% or more, every step (sync_every=1) and with local SGD (sync_every=k), which
  allreduces parameters and optimizer state (3 P for Adam) once every k steps.

Needs mpi4py and an ``mpiexec`` (``pip install "nbbp[mpi]"``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from .compare import BATCH_NORM, DESCRIPTIONS, LEARNING_RATE, WORKLOADS, best_of, make_data

DISTRIBUTED_WORKLOADS = ("W2", "W4", "D1")
RANKS = (2, 4, 8, 16, 32, 64)
BANDWIDTHS_GBIT = (10, 25, 100)
LATENCY_S = 20e-6  # per message on TCP over Ethernet; an assumption, stated in the report
EFFICIENCY = 0.8
SYNC_EVERY = 8
ADAM_COPIES = 3  # parameters, m and v: what local SGD averages with Adam
RANKS_TIMEOUT_S = 1800  # one workload's ranks: compiles from an empty cache and 10 timed epochs


def allreduce_seconds(n_ranks, n_bytes, gbit_per_s, latency=LATENCY_S):
    """The ring allreduce model: 2 (N - 1) / N bytes / bandwidth + 2 (N - 1) latency."""
    return 2 * (n_ranks - 1) / n_ranks * n_bytes * 8 / (gbit_per_s * 1e9) \
        + 2 * (n_ranks - 1) * latency


def smallest_batch(sample_seconds, n_ranks, n_bytes, gbit_per_s, every=1):
    """The smallest batch per rank b with b t_s k / (b t_s k + allreduce) >= EFFICIENCY, for an
    allreduce of n_bytes once every ``every`` steps."""
    ring = allreduce_seconds(n_ranks, n_bytes, gbit_per_s)
    b = max(1, int(np.ceil(EFFICIENCY / (1 - EFFICIENCY) * ring / (every * sample_seconds))))
    while b > 1 and efficiency(b - 1, sample_seconds, ring, every) >= EFFICIENCY:
        b -= 1  # the ceiling of a quotient that rounding put just past a whole number
    return b


def efficiency(batch, sample_seconds, ring_seconds, every=1):
    """compute / (compute + allreduce) over ``every`` steps of ``batch`` samples a rank."""
    compute = batch * sample_seconds * every
    return compute / (compute + ring_seconds)


def projection_lines(workload, n_params, itemsize, sample_seconds):
    """A Markdown table: per N and bandwidth, the smallest batch per rank for 80% efficiency,
    every step / with sync_every=SYNC_EVERY (Adam)."""
    step_bytes = (n_params + 3) * itemsize
    local_bytes = (ADAM_COPIES * n_params + 1) * itemsize
    lines = [(f"{workload}: {n_params:,} parameters; one thread computes "
              f"{sample_seconds * 1e6:.1f} us per sample. Smallest batch per rank for "
              f"{EFFICIENCY:.0%} efficiency, every step / sync_every={SYNC_EVERY} (Adam):"), "",
             "| ranks | " + " | ".join(f"{g} Gb/s" for g in BANDWIDTHS_GBIT) + " |",
             "|---|" + "---|" * len(BANDWIDTHS_GBIT)]
    for n in RANKS:
        cells = [f"{smallest_batch(sample_seconds, n, step_bytes, g):,} / "
                 f"{smallest_batch(sample_seconds, n, local_bytes, g, SYNC_EVERY):,}"
                 for g in BANDWIDTHS_GBIT]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


# ----------------------------------------------------------------------- the ranks' side
def worker(workload, repeat, dtype, quick, out):
    """On every rank of MPI.COMM_WORLD: the epoch's seconds (the slowest rank's best), the
    median seconds of one allreduce of a step's buffer, and rank 0's seconds per sample
    computing alone on one thread; rank 0 writes them to ``out`` as JSON."""
    from mpi4py import MPI

    import nbbp

    from .distributed import rows_of

    comm = MPI.COMM_WORLD
    sizes, batch, n_samples = WORKLOADS[workload]
    if quick:
        n_samples //= 10
    X, y = make_data(sizes, n_samples, np.dtype(dtype))
    start, stop = rows_of(n_samples, comm.rank, comm.size)
    X, y = X[start:stop], y[start:stop]
    per_rank = max(1, batch // comm.size)  # the same global batch as one process
    net = nbbp.Network(sizes, dtype=X.dtype, seed=0, batch_norm=workload in BATCH_NORM)
    seconds = {}
    for name, size, every in (("global", per_rank, 1), ("per rank", batch, 1),
                              ("local", per_rank, SYNC_EVERY)):
        seconds[name] = comm.allreduce(best_of(
            lambda size=size, every=every: net.fit(
                X, y, epochs=1, batch_size=size, learning_rate=LEARNING_RATE, shuffle=False,
                comm=comm, sync_every=every), repeat), op=MPI.MAX)
    buf = np.zeros(net.n_parameters + 3, dtype=X.dtype)
    times = []
    for _ in range(21):
        comm.Barrier()
        begin = MPI.Wtime()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(MPI.Wtime() - begin)
    allreduce = comm.allreduce(float(np.median(times)), op=MPI.MAX)
    alone = None
    if comm.rank == 0:  # one thread, no communication: the model's t_s
        try:
            alone = best_of(lambda: net.fit(X, y, epochs=1, batch_size=per_rank,
                                            learning_rate=LEARNING_RATE, shuffle=False), repeat)
        except BaseException:  # the other ranks wait in the barrier: end them too
            import traceback

            traceback.print_exc()
            comm.Abort(1)
    comm.Barrier()
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump({"seconds": seconds, "allreduce": allreduce, "alone": alone,
                       "n_local": len(X), "n_samples": n_samples, "n_params": net.n_parameters,
                       "per_rank": per_rank}, f)


# ----------------------------------------------------------------------------- the parent
def mpiexec():
    """The mpiexec beside this Python (pip's mpich), or the one on PATH, or None."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


def run(workloads, repeat, dtype, quick):
    """Measure and project each workload; prints the report. Returns 0, or 1 without MPI."""
    from .compare import nbbp_seconds

    launcher = mpiexec()
    try:
        import mpi4py  # noqa: F401 - only whether it is there
    except ImportError:
        launcher = None
    if launcher is None:
        print('nbbp bench --distributed needs mpi4py and mpiexec: pip install "nbbp[mpi]"',
              file=sys.stderr)
        return 1
    print(f"Model: ring allreduce, {LATENCY_S * 1e6:g} us latency per message, no overlap of "
          f"communication and compute; efficiency = compute / (compute + allreduce).\n")
    for workload in workloads:
        sizes, batch, n_samples = WORKLOADS[workload]
        if quick:
            n_samples //= 10
        X, y = make_data(sizes, n_samples, np.dtype(dtype))
        one = nbbp_seconds(sizes, X, y, batch, 2, repeat, batch_norm=workload in BATCH_NORM)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "ranks.json")
            env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            command = [launcher, "-n", "2", sys.executable, "-m", "nbbp.scaling", workload,
                       str(repeat), dtype, str(int(quick)), out]
            try:
                done = subprocess.run(command, env=env, capture_output=True, text=True,
                                      timeout=RANKS_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                print(f"{workload}: the ranks took over {RANKS_TIMEOUT_S} s", file=sys.stderr)
                return 1
            if done.returncode != 0:
                print(f"{workload}: the ranks failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            with open(out) as f:
                ranks = json.load(f)
        itemsize = np.dtype(dtype).itemsize
        two = ranks["seconds"]
        half = ranks["per_rank"]
        print(f"{workload} {DESCRIPTIONS[workload]}: sizes {'-'.join(map(str, sizes))}, batch "
              f"{batch}, {n_samples:,} samples, {dtype}")
        rows = [(f"1 rank x 2 threads, batch {batch}", one)] + [
            (f"2 ranks x 1 thread, {what}", two[name]) for name, what in (
                ("global", f"batch {half} per rank, every step (the same steps)"),
                ("per rank", f"batch {batch} per rank, every step"),
                ("local", f"batch {half} per rank, sync_every={SYNC_EVERY}"))]
        for what, seconds in rows:
            ratio = "" if seconds is one else f" ({one / seconds:.2f}x)"
            print(f"  {what + ':':70} {n_samples / seconds:10,.0f} samples/s{ratio}")
        print(f"  one allreduce of a step's {(ranks['n_params'] + 3) * itemsize / 2**20:.2f} MiB "
              f"between the 2 ranks: {ranks['allreduce'] * 1e6:,.0f} us")
        print()
        sample_seconds = ranks["alone"] / ranks["n_local"]
        for line in projection_lines(workload, ranks["n_params"], itemsize, sample_seconds):
            print(line)
        print(flush=True)
    return 0


def main(argv, prog="nbbp bench --distributed"):
    """``nbbp bench --distributed [--workloads W2,W4,D1] [--repeat R] [--dtype D] [--quick]``."""
    import argparse

    from ._args import ArgumentParser
    from .compare import machine_lines

    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distributed", action="store_true", required=True)
    parser.add_argument("--workloads", default=",".join(DISTRIBUTED_WORKLOADS),
                        help="comma-separated names among " + ", ".join(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=3,
                        help="best of this many epochs, after one warm-up epoch (default 3)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--quick", action="store_true",
                        help="10x fewer samples per workload: a smoke run, not a measurement")
    args = parser.parse_args(argv)
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown or not workloads:
        parser.error(f"--workloads takes names among {list(WORKLOADS)}; got {unknown or 'none'}")
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1; got {args.repeat}")
    for line in machine_lines(2):
        print(line)
    return run(workloads, args.repeat, args.dtype, args.quick)


if __name__ == "__main__":  # a rank, started by run() under mpiexec
    workload, repeat, dtype, quick, out = sys.argv[1:6]
    worker(workload, int(repeat), dtype, bool(int(quick)), out)
