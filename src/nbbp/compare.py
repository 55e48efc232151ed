"""nbbp against its peers, side by side: one epoch of mini-batch SGD on the workloads of
bench/README.md, in one process, one system after another, on the same data and thread count.

    nbbp bench [--workloads W1,W2] [--threads N] [--repeat R] [--dtype float32] [--quick]
               [--isa avx2]
    python bench/compare.py [same options]

Every system trains the same MLP (ReLU hidden layers, softmax output, cross-entropy, plain SGD
with learning rate 0.01, no shuffling) on standard-normal inputs and uniform random integer
labels from ``np.random.default_rng(0)``, and is timed as the best of R epochs after one warm-up
epoch (which pays for compilation). D1 batch-normalises every hidden layer (batch statistics,
running averages updated per batch: torch.nn.BatchNorm1d in training mode); scikit-learn has no
batch normalisation and sits it out. Results are ratios, nbbp's samples/s over each peer's:
absolute times on shared machines move from run to run. A peer whose package is not installed
is skipped with a note.

Importable: ``main(argv)`` runs the comparison. The peers are optional (``pip install
nbbp[peers]``, and PyTorch's CPU wheel). No function here is named like an asv benchmark
(``time_*``, ``track_*``, ...): bench/compare.py imports it, and asv imports every module of
bench/.
"""

import argparse
import contextlib
import importlib.util
import itertools
import os
import platform
import sys
import time
import warnings
from importlib import metadata

import numpy as np

from ._args import ArgumentParser

LEARNING_RATE = 0.01

# name: (sizes, batch, samples), as in bench/README.md
WORKLOADS = {
    "W1": ((64, 32, 10), 32, 20_000),
    "W2": ((784, 128, 64, 10), 32, 20_000),
    "W3": ((784, 128, 64, 10), 128, 20_000),
    "W4": ((1024, 1024, 1024, 10), 256, 4_096),
    "D1": ((256,) * 20 + (10,), 128, 8_192),
}
DESCRIPTIONS = {"W1": "tiny", "W2": "medium", "W3": "medium, larger batch", "W4": "large",
                "D1": "deep (20 layers), batch-normalised"}
# Workloads whose hidden layers are batch-normalised.
BATCH_NORM = {"D1"}

# (workload, peer, minimum of nbbp samples/s over the peer's), from bench/README.md
TARGETS = [
    ("W1", "JAX", 2.0), ("W1", "PyTorch", 20.0),
    ("W2", "JAX", 1.2), ("W2", "PyTorch", 3.0),
    ("W3", "JAX", 1.2),
    ("W4", "PyTorch", 1.0), ("W4", "JAX", 1.0),
    ("D1", "PyTorch", 1.2),
]


# --isa: the environment that holds each system to an instruction set, set before any of them
# is imported. Numba compiles for NUMBA_CPU_NAME with NUMBA_CPU_FEATURES (empty: that CPU's own
# features; unset, Numba would add the host's, AVX-512 included).
ISA_LIMITS = {
    "avx2": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "",
             "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
             "OPENBLAS_CORETYPE": "Haswell"},
}


def isa_environment(isa, environ):
    """``environ`` with the variables of ISA_LIMITS[isa] set (XLA_FLAGS appended to)."""
    env = dict(environ)
    for name, value in ISA_LIMITS[isa].items():
        if name == "XLA_FLAGS" and env.get(name):
            env[name] = f"{env[name]} {value}"
        else:
            env[name] = value
    env["NBBP_BENCH_ISA"] = isa
    return env


def isa_lines():
    """What each system reports of the instruction set it runs (a peer that ignores its knob
    shows here)."""
    from .host import host_profile

    profile = host_profile()
    lines = [f"nbbp: {profile.isa} ({profile.cpu_name}), {profile.vector_bytes}-byte vectors"]
    try:
        import torch

        lines.append(f"PyTorch: ATen CPU capability {torch.backends.cpu.get_cpu_capability()} "
                     "(oneDNN's own kernels choose theirs at run time)")
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i.get('internal_api')} {i.get('architecture') or ''}".strip()
                for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            lines.append("NumPy's BLAS: " + ", ".join(blas))
    except ImportError:
        pass
    if importlib.util.find_spec("jax"):
        lines.append("JAX: XLA does not report the instruction set it compiled for; "
                     f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    return lines


class Skipped(Exception):
    """A peer that cannot run here (package not installed, unsupported option)."""


# ------------------------------------------------------------------------------------ helpers
def flops_per_sample(sizes):
    """Training FLOPs per sample: forward, delta rule and gradient are 2 n_in n_out each."""
    return 6 * sum(n_in * n_out for n_in, n_out in itertools.pairwise(sizes))


def make_data(sizes, n_samples, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, sizes[0]), dtype=dtype)
    y = rng.integers(0, sizes[-1], size=n_samples)
    return X, y


def initial_params(sizes, dtype, seed=1):
    """He-normal W (n_out, n_in) and zero b per layer, for the peers that take arrays."""
    rng = np.random.default_rng(seed)
    weights = [(rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(dtype)
               for n_in, n_out in itertools.pairwise(sizes)]
    biases = [np.zeros(n_out, dtype=dtype) for n_out in sizes[1:]]
    return weights, biases


def best_of(epoch, repeat):
    """Seconds of the fastest of ``repeat`` calls of ``epoch()``, after one untimed warm-up."""
    epoch()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return min(times)


def blas_threads(threads):
    """Limit OpenBLAS/MKL (NumPy's matmul) to ``threads``; a no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def configure_xla(threads):
    """XLA's CPU thread pool is sized when jax starts and cannot be changed at run time: pin it
    to one thread through XLA_FLAGS before jax is imported when ``threads`` is 1. Returns a note
    for the report."""
    if threads != 1:
        return ("JAX: XLA's CPU thread count cannot be set at run time; it runs with its defaults "
                f"(all {os.cpu_count()} cores). Only --threads 1 pins it (XLA_FLAGS).")
    if "jax" in sys.modules:
        return "JAX: already imported in this process, so XLA_FLAGS could not pin it to 1 thread."
    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    return f"JAX: pinned to 1 thread with XLA_FLAGS={flags!r}."


# ------------------------------------------------------------------------------------ systems
# Each takes (sizes, X, y, batch, threads, repeat, batch_norm) and returns seconds per epoch
# over all of X; with batch_norm, every hidden layer is batch-normalised.

def nbbp_seconds(sizes, X, y, batch, threads, repeat=3, batch_norm=False):
    import numba

    import nbbp

    net = nbbp.Network(sizes, activation="relu", output="softmax", loss="cross_entropy",
                       dtype=X.dtype, seed=0, batch_norm=batch_norm)
    saved = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return best_of(lambda: net.fit(X, y, epochs=1, batch_size=batch,
                                       learning_rate=LEARNING_RATE, shuffle=False), repeat)
    finally:
        numba.set_num_threads(saved)


def reference_seconds(sizes, X, y, batch, threads, repeat=3, batch_norm=False):
    from nbbp import reference

    Y = np.zeros((X.shape[0], sizes[-1]), dtype=X.dtype)
    Y[np.arange(X.shape[0]), y] = 1
    activations = ["relu"] * (len(sizes) - 2) + ["softmax"]
    params = list(initial_params(sizes, X.dtype))
    norm = running = None
    if batch_norm:
        norm = [(np.ones(n, X.dtype), np.zeros(n, X.dtype)) for n in sizes[1:-1]] + [None]
        running = [(np.zeros(n, X.dtype), np.ones(n, X.dtype)) for n in sizes[1:-1]] + [None]
    state = [norm, running]

    def epoch():
        result = reference.train(
            params[0], params[1], None, X, Y, activations, "cross_entropy", epochs=1,
            batch_size=batch, learning_rate=LEARNING_RATE, batch_norm=state[0], running=state[1])
        params[0], params[1] = result[:2]
        if batch_norm:
            state[:] = result[3:]

    with blas_threads(threads):
        return best_of(epoch, repeat)


def torch_seconds(sizes, X, y, batch, threads, repeat=3, batch_norm=False):
    try:
        import torch
        from torch import nn
    except ImportError:
        raise Skipped("torch is not installed") from None

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        layers = []
        for n_in, n_out in itertools.pairwise(sizes):
            layers += [nn.Linear(n_in, n_out)] + ([nn.BatchNorm1d(n_out)] if batch_norm else [])
            layers += [nn.ReLU()]
        if batch_norm:  # none on the output layer
            del layers[-2]
        model = nn.Sequential(*layers[:-1]).to(torch.float64 if X.dtype == np.float64
                                               else torch.float32)
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        n = X.shape[0]

        def epoch():
            for start in range(0, n, batch):
                optimizer.zero_grad()
                loss = criterion(model(X_t[start:start + batch]), y_t[start:start + batch])
                loss.backward()
                optimizer.step()

        return best_of(epoch, repeat)
    finally:
        torch.set_num_threads(saved)


def jax_seconds(sizes, X, y, batch, threads, repeat=3, batch_norm=False):
    """The full batches run in one jitted lax.scan; a partial last batch (n not divisible by
    batch) runs in a second jitted call of the same step, so every sample is trained on. With
    batch_norm, the running averages ride along in the scan's carry."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise Skipped("jax is not installed") from None
    if X.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)

    def loss_fn(params, xb, yb):
        a = xb
        batch_stats = []
        for layer in params[:-1]:
            z = a @ layer[0] + layer[1]
            if batch_norm:
                mu, var = jnp.mean(z, axis=0), jnp.var(z, axis=0)
                z = layer[2] * (z - mu) / jnp.sqrt(var + 1e-5) + layer[3]
                batch_stats.append((mu, var * z.shape[0] / (z.shape[0] - 1)))
            a = jax.nn.relu(z)
        W, b = params[-1][:2]
        log_p = jax.nn.log_softmax(a @ W + b)
        return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1)), batch_stats

    def step(state, xb, yb):
        params, running = state
        grads, batch_stats = jax.grad(loss_fn, has_aux=True)(params, xb, yb)
        running = [(0.9 * m + 0.1 * bm, 0.9 * v + 0.1 * bv)
                   for (m, v), (bm, bv) in zip(running, batch_stats)]
        return jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params, grads), running

    @jax.jit
    def scan_epoch(params, xs, ys):
        params, _ = jax.lax.scan(lambda p, xy: (step(p, *xy), None), params, (xs, ys))
        return params

    step_jit = jax.jit(step)

    weights, biases = initial_params(sizes, X.dtype)
    params = [(jnp.asarray(W.T.copy()), jnp.asarray(b)) for W, b in zip(weights, biases)]
    running = []
    if batch_norm:
        params = ([(*p, jnp.ones_like(p[1]), jnp.zeros_like(p[1])) for p in params[:-1]]
                  + params[-1:])
        running = [(jnp.zeros_like(p[1]), jnp.ones_like(p[1])) for p in params[:-1]]
    state = [(params, running)]
    n = X.shape[0]
    n_full = n // batch
    labels = y.astype(np.int32)
    xs = jnp.asarray(X[:n_full * batch].reshape(n_full, batch, -1))
    ys = jnp.asarray(labels[:n_full * batch].reshape(n_full, batch))
    x_tail, y_tail = jnp.asarray(X[n_full * batch:]), jnp.asarray(labels[n_full * batch:])

    def epoch():
        params = state[0]
        if n_full:
            params = scan_epoch(params, xs, ys)
        if x_tail.shape[0]:
            params = step_jit(params, x_tail, y_tail)
        state[0] = jax.block_until_ready(params)

    return best_of(epoch, repeat)


def sklearn_seconds(sizes, X, y, batch, threads, repeat=3, batch_norm=False):
    """float64 data: scikit-learn is the API peer, not a speed peer. warm_start=True makes every
    fit after the first one more epoch from the current weights, so the timed calls do not
    re-initialise the network."""
    if batch_norm:
        raise Skipped("scikit-learn's MLPClassifier has no batch normalisation")
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        raise Skipped("scikit-learn is not installed") from None

    X64 = X.astype(np.float64)
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="sgd",
                        momentum=0.0, alpha=0.0, shuffle=False, max_iter=1, batch_size=batch,
                        learning_rate_init=LEARNING_RATE, warm_start=True, random_state=0)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X64, y)

    with blas_threads(threads):
        return best_of(epoch, repeat)


SYSTEMS = [
    ("nbbp", nbbp_seconds),
    ("nbbp.reference", reference_seconds),
    ("PyTorch", torch_seconds),
    ("JAX", jax_seconds),
    ("scikit-learn (f64)", sklearn_seconds),
]


def numpy_matmul_gflops(threads, dtype=np.float32, n=1024, repeat=5):
    """GFLOP/s of the best of ``repeat`` n x n @ n x n products: the machine's matmul ceiling."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=dtype)
    B = rng.standard_normal((n, n), dtype=dtype)
    with blas_threads(threads):
        seconds = best_of(lambda: A @ B, repeat)
    return 2 * n**3 / seconds / 1e9


# ------------------------------------------------------------------------------------ report
def machine_lines(threads):
    import numba

    from .host import cpu_model, host_profile, threading_layer

    versions = []
    for package in ("numba", "numpy", "torch", "jax", "scikit-learn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    return [
        (f"machine: {cpu_model()}, os.cpu_count() = {os.cpu_count()}, "
         f"{platform.system()} {platform.release()}"),
        *("nbbp host profile: " + line for line in host_profile().describe()),
        (f"numba threading layer: {threading_layer()}, threads: {threads} "
         f"(NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS})"),
        "versions: " + ", ".join(versions),
    ]


def format_table(rows, flops, ceiling):
    """rows: [(system, seconds or None, note)] with nbbp first; returns the table's lines."""
    nbbp_rate = next((rate for name, rate, _ in rows if name == "nbbp"), None)
    lines = [f"  {'system':<20}{'samples/s':>12}{'GFLOP/s':>10}{'% matmul':>10}{'nbbp ratio':>12}"]
    for name, rate, note in rows:
        if rate is None:
            lines.append(f"  {name:<20}{'-':>12}{'-':>10}{'-':>10}{'-':>12}  {note}")
            continue
        gflops = rate * flops / 1e9
        if name == "nbbp":
            ratio = ""
        elif nbbp_rate is None:
            ratio = "n/a"
        else:
            ratio = f"{nbbp_rate / rate:.2f}x"
        lines.append(f"  {name:<20}{rate:>12,.0f}{gflops:>10.2f}{100 * gflops / ceiling:>9.1f}%"
                     f"{ratio:>12}")
    return lines


def summary_lines(rates):
    """rates: {workload: {system: samples/s or None}}. One line per target of a workload run."""
    lines = ["targets (bench/README.md): nbbp samples/s over the peer's"]
    for workload, peer, minimum in TARGETS:
        if workload not in rates:
            continue
        ours, theirs = rates[workload].get("nbbp"), rates[workload].get(peer)
        goal = f"  {workload}  >= {minimum:4.1f}x {peer:<8}"
        if ours is None or theirs is None:
            lines.append(f"{goal}  n/a ({'nbbp' if ours is None else peer} did not run)")
        else:
            ratio = ours / theirs
            lines.append(f"{goal}  {ratio:8.2f}x  {'met' if ratio >= minimum else 'MISSED'}")
    return lines


def parse_args(argv, prog=None):
    import numba


    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated names among " + ", ".join(WORKLOADS))
    parser.add_argument("--threads", type=int, default=numba.get_num_threads(),
                        help="threads for every system (default: numba.get_num_threads())")
    parser.add_argument("--repeat", type=int, default=3,
                        help="best of this many epochs, after one warm-up epoch (default 3)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="data and parameter precision (scikit-learn always runs float64)")
    parser.add_argument("--quick", action="store_true",
                        help="10x fewer samples per workload: a smoke run, not a measurement")
    parser.add_argument("--isa", choices=["native", *sorted(ISA_LIMITS)], default="native",
                        help="hold every system to this instruction set, as far as each allows "
                        "(avx2 on an AVX-512 host: NUMBA_CPU_NAME=haswell and each peer's knob); "
                        "the run happens in a fresh process with those variables set")
    args = parser.parse_args(argv)
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown or not args.workloads:
        parser.error(f"--workloads takes names among {list(WORKLOADS)}; got {unknown or 'none'}")
    if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
        parser.error(f"--threads must be in 1..{numba.config.NUMBA_NUM_THREADS} "
                     f"(NUMBA_NUM_THREADS); got {args.threads}")
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1; got {args.repeat}")
    return args


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    if args.isa != "native" and os.environ.get("NBBP_BENCH_ISA") != args.isa:
        # every system must start under the limits: a fresh interpreter
        import subprocess

        argv = sys.argv[1:] if argv is None else list(argv)
        command = [sys.executable, "-m", "nbbp", "bench", *argv]
        return subprocess.run(command, env=isa_environment(args.isa, os.environ),
                              check=False).returncode
    xla_note = configure_xla(args.threads)  # before anything imports jax
    dtype = np.dtype(args.dtype)
    for line in machine_lines(args.threads):
        print(line)
    if args.isa != "native":
        print(f"--isa {args.isa}: " + ", ".join(f"{k}={v!r}" for k, v in
                                                ISA_LIMITS[args.isa].items()))
        for line in isa_lines():
            print("  " + line)
    ceiling = numpy_matmul_gflops(args.threads, dtype)
    print(f"NumPy {dtype} matmul 1024x1024 @ 1024x1024: {ceiling:.1f} GFLOP/s "
          f"(the ceiling; '% matmul' below is a share of it)")
    print(xla_note)
    if args.quick:
        print("--quick: 10x fewer samples; a smoke run, not a measurement")
    print(f"timing: best of {args.repeat} epoch(s) after one warm-up epoch, learning rate "
          f"{LEARNING_RATE}, no shuffling\n")

    rates = {}
    for workload in args.workloads:
        sizes, batch, n_samples = WORKLOADS[workload]
        if args.quick:
            n_samples //= 10
        X, y = make_data(sizes, n_samples, dtype)
        flops = flops_per_sample(sizes)
        print(f"{workload} {DESCRIPTIONS[workload]}: sizes {'-'.join(map(str, sizes))}, batch "
              f"{batch}, {n_samples:,} samples, {dtype}, {args.threads} thread(s), "
              f"{flops / 1e6:.3g} MFLOP per sample", flush=True)
        rows, rates[workload] = [], {}
        for name, seconds_per_epoch in SYSTEMS:
            try:
                seconds = seconds_per_epoch(sizes, X, y, batch, args.threads, repeat=args.repeat,
                                            batch_norm=workload in BATCH_NORM)
            except Skipped as exc:
                rows.append((name, None, f"skipped: {exc}"))
                rates[workload][name] = None
                continue
            except Exception as exc:  # a failing system is reported, the others still run
                rows.append((name, None, f"failed: {type(exc).__name__}: {exc}"))
                rates[workload][name] = None
                continue
            rates[workload][name] = n_samples / seconds
            rows.append((name, n_samples / seconds, ""))
        for line in format_table(rows, flops, ceiling):
            print(line)
        print(flush=True)

    for line in summary_lines(rates):
        print(line)
    if args.quick:
        print("(--quick: the ratios above come from a smoke run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
