"""The benchmark code runs: bench/compare.py end to end on its smallest workload, and the set-up
and one call of every asv benchmark at its cheapest parameters (``asv check`` only imports
them). Smoke tests: nothing here is timed, and nothing asserts on speed."""

import importlib.util
import os
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
QUICK_W1 = ["--quick", "--workloads", "W1", "--repeat", "1"]
# compare.py's peer rows and the module each one imports.
PEERS = {"PyTorch": "torch", "JAX": "jax", "scikit-learn (f64)": "sklearn"}
BENCHMARK_PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")


def load(name):
    """bench/<name>.py as a module (bench/ is not an installed package)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_compare(monkeypatch, capsys):
    """compare.main(QUICK_W1)'s printed report, as {system: rest of its table row} and the text.
    XLA_FLAGS is restored afterwards: with one thread, compare.py sets it for jax."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    assert load("compare").main(QUICK_W1) == 0
    out = capsys.readouterr().out
    rows = {line[2:22].strip(): line[22:].split() for line in out.splitlines()
            if line.startswith("  ") and not line.startswith("   ")}
    return rows, out


def rate(row):
    """The samples/s column of a table row, or None for '-'."""
    return None if row[0] == "-" else float(row[0].replace(",", ""))


def assert_ran(rows, out):
    assert "matmul 1024x1024 @ 1024x1024:" in out
    assert "GFLOP/s (the ceiling" in out
    assert "W1 tiny: sizes 64-32-10, batch 32, 2,000 samples" in out
    assert rate(rows["nbbp"]) > 0
    assert rate(rows["nbbp.reference"]) > 0
    assert "targets (bench/README.md)" in out


def test_compare_skips_missing_peers_and_threadpoolctl(monkeypatch, capsys):
    # A None entry in sys.modules makes `import name` raise ImportError: as on CI, where no peer
    # and no threadpoolctl is installed.
    # Submodules too: `from sklearn.neural_network import ...` finds an already imported
    # sklearn.neural_network in sys.modules without looking at sklearn itself.
    for module in [*PEERS.values(), "threadpoolctl"]:
        for name in [module, *(m for m in sys.modules if m.startswith(module + "."))]:
            monkeypatch.setitem(sys.modules, name, None)
    rows, out = run_compare(monkeypatch, capsys)
    assert_ran(rows, out)
    for system, module in PEERS.items():
        assert rate(rows[system]) is None
        assert " ".join(rows[system]).endswith(
            f"skipped: {module.replace('sklearn', 'scikit-learn')} is not installed")
    assert "W1  >=  2.0x JAX       n/a (JAX did not run)" in out


def test_compare_runs_installed_peers(monkeypatch, capsys):
    rows, out = run_compare(monkeypatch, capsys)
    assert_ran(rows, out)
    for system, module in PEERS.items():
        if importlib.util.find_spec(module) is None:
            assert "skipped:" in rows[system]
        else:
            assert rate(rows[system]) is not None, rows[system]


# (module, class, parameters): the cheapest combination of each asv benchmark class but
# ColdStart, which starts interpreters (and with an empty cache compiles every kernel).
ASV_CASES = [
    ("bench_kernels", "LayerKernels", ("W2 784x128 b32", "nbbp", "float32", 1)),
    ("bench_kernels", "LayerKernels", ("W2 784x128 b32", "reference", "float32", 1)),
    ("bench_kernels", "NetworkKernels", ("W2", "nbbp", "float32", 1)),
    ("bench_kernels", "NetworkKernels", ("W2", "reference", "float32", 1)),
    ("bench_training", "TrainEpoch", ("W1", "float32", 1, "nbbp")),
    ("bench_training", "TrainEpoch", ("W1", "float32", 1, "reference")),
    ("bench_training", "TrainingLoss", (1,)),
    ("bench_training", "BatchNormEpoch", (1,)),
    ("bench_training", "FitMemory", ()),
]


@pytest.mark.parametrize("module, name, params", ASV_CASES,
                         ids=[f"{c}-{'-'.join(map(str, p))}" for _, c, p in ASV_CASES])
def test_asv_benchmark_sets_up_and_runs_once(module, name, params):
    cls = getattr(load(module), name)
    param_names = getattr(cls, "param_names", [])
    grid = cls.params if len(param_names) > 1 else [getattr(cls, "params", [])]
    assert len(params) == len(param_names)
    for value, values in zip(params, grid):
        assert value in values, f"{value!r} is not among {name}'s params {values}"
    methods = [m for m in dir(cls) if m.startswith(BENCHMARK_PREFIXES)]
    assert methods
    bench = cls()
    try:
        bench.setup(*params)
    except NotImplementedError as exc:  # asv's "skip": here, only a reference row without
        pytest.skip(str(exc))           # threadpoolctl, which cannot limit BLAS to 1 thread
    try:
        for method in methods:
            getattr(bench, method)(*params)
    finally:
        if hasattr(bench, "teardown"):
            bench.teardown(*params)
