"""The kernels are right under every CPU profile this host can run, not only its own: the kernel
equivalence tests and the 1-vs-2-threads training test pass again in a process that Numba
compiles for an older CPU (NUMBA_CPU_NAME), where the host profile, and so the vector width and
the register blocks, differ. Also the host profile itself: what it reads from the LLVM target."""

import os
import pathlib
import subprocess
import sys

import llvmlite.binding as ll
import pytest

from nbbp.host import HostProfile, _isa, _parse_size, host_profile

TESTS = pathlib.Path(__file__).parent

# name: (environment, the ISA the profile must then report). NUMBA_CPU_FEATURES empty: that
# CPU's own features (unset, Numba adds the host's, AVX-512 included).
PROFILES = {
    "haswell": ({"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}, "avx2"),
    "generic": ({"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""}, "sse"),
}
KERNEL_TESTS = ["test_forward.py", "test_deltas.py", "test_gradients.py", "test_simd.py",
                "test_losses.py",
                "test_training.py::test_same_seed_gives_bitwise_identical_runs_with_1_and_2_threads",
                "test_chunks.py::test_chunked_fit_is_bitwise_identical_on_1_and_2_threads"]


def _host_has(feature):
    return ll.get_host_cpu_features().get(feature, False)


def _run(args, tmp_path, env):
    full_env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), **env)
    return subprocess.run([sys.executable, *args], env=full_env, capture_output=True, text=True,
                          timeout=1200, cwd=TESTS.parent, check=False)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_kernel_tests_pass_under_an_older_cpu_profile(tmp_path, name):
    if ll.get_process_triple().split("-")[0] != "x86_64":
        pytest.skip("the profiles named are x86-64 CPUs")
    if name == "haswell" and not _host_has("avx2"):
        pytest.skip("this host has no AVX2")
    env, isa = PROFILES[name]
    shown = _run(["-c", "from nbbp.host import host_profile; print(host_profile().isa)"],
                 tmp_path, env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.strip() == isa  # the child really is built for that profile
    result = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider",
                   *(str(TESTS / f) for f in KERNEL_TESTS)], tmp_path, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


def test_the_host_profile_matches_the_host_features():
    profile = host_profile()
    features = ll.get_host_cpu_features()
    if os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES") is not None:
        pytest.skip("compiling for a named CPU, not the host")
    if ll.get_process_triple().startswith("x86_64"):
        expected = ("avx512" if features.get("avx512f") else
                    "avx2" if features.get("avx2") else "avx" if features.get("avx") else "sse")
        assert profile.isa == expected
        assert profile.vector_bytes == {"avx512": 64, "avx2": 32, "avx": 32, "sse": 16}[expected]
        assert profile.fma == bool(features.get("fma"))
    assert profile.block_rows * profile.block_vectors <= 3 * profile.vector_registers // 4
    assert profile.l1d_bytes >= 8 * 1024
    assert profile.l2_bytes >= profile.l1d_bytes


@pytest.mark.parametrize("triple, vector_bytes, features, expected", [
    ("x86_64-unknown-linux-gnu", 64, "+avx512f", ("avx512", 32)),
    ("x86_64-unknown-linux-gnu", 32, "+avx2,+fma", ("avx2", 16)),
    ("x86_64-unknown-linux-gnu", 32, "+avx,-avx2", ("avx", 16)),
    ("x86_64-unknown-linux-gnu", 32, "", ("avx2", 16)),  # a named CPU's own features
    ("x86_64-unknown-linux-gnu", 16, "", ("sse", 16)),
    ("aarch64-unknown-linux-gnu", 16, "+neon", ("neon", 32)),
    ("arm64-apple-darwin", 16, "", ("neon", 32)),
])
def test_isa_and_registers_from_the_target(triple, vector_bytes, features, expected):
    assert _isa(triple, vector_bytes, features) == expected


@pytest.mark.parametrize("isa, vector_bytes, registers, rows", [
    ("avx512", 64, 32, 8),  # 3/4 of 32 registers would be 12 rows; an x86 L1 set holds 8
    ("avx2", 32, 16, 6),
    ("sse", 16, 16, 6),
    ("neon", 16, 32, 12),
])
def test_register_block_rows_from_the_registers_and_on_x86_the_l1_ways(isa, vector_bytes,
                                                                        registers, rows):
    profile = HostProfile(cpu_name="cpu", cpu_features="", isa=isa, vector_bytes=vector_bytes,
                          vector_registers=registers, fma=True, l1d_bytes=32 << 10,
                          l2_bytes=1 << 20, cache_source="default")
    assert profile.block_rows == rows
    assert profile.block_rows * profile.block_vectors <= 3 * registers // 4


@pytest.mark.parametrize("text, expected", [("48K", 49152), ("2048K", 2 << 20), ("2M", 2 << 20),
                                            ("32768", 32768), ("1G", 1 << 30), ("", None),
                                            ("0K", None), ("-4K", None), ("abc", None)])
def test_cache_sizes_parse_as_sysfs_writes_them(text, expected):
    assert _parse_size(text) == expected


def test_nbbp_info_prints_the_profile_and_versions(tmp_path):
    result = _run(["-m", "nbbp", "info"], tmp_path, {})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in ("numba ", "llvmlite ", "numpy ", f"ISA: {host_profile().isa}",
                   "register block:", "caches per core:", "threading layer:"):
        assert needle in out
