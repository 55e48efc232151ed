"""The host profile: what the CPU that Numba compiles for offers the kernels (vector width,
vector registers, data caches) and the block sizes derived from it, decided once per process.

Numba compiles for the CPU that ``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES`` name, else for the
host, and keys its on-disk cache on that name and feature string. The vector width and register
count are read from the same pair (LLVM compiles a probe for it and the assembly says which
registers it used), so a value frozen into a kernel from them always matches the cache entry
it is saved in. Cache sizes come from the operating system; they may differ between two
machines with one CPU name, so the kernels take what depends on them as arguments, never as
globals.

``python -m nbbp info`` prints the profile with the versions a bug report needs.
"""

import functools
import os
import platform
import subprocess
from dataclasses import dataclass

# Where the operating system does not say: the smallest L1d and L2 of the CPUs nbbp is used on.
DEFAULT_L1D = 32 * 1024
DEFAULT_L2 = 1024 * 1024

# The x86 ISAs (HostProfile.isa), and the most rows of a register block on them: measured best
# on the AMD EPYC Zen 4, and the ways of the smallest x86 L1 data cache in use (8, Zen 1-4 and
# Skylake; 12 on newer Intel cores and Zen 5). See HostProfile.block_rows.
X86_ISAS = ("avx512", "avx2", "avx", "sse")
X86_BLOCK_ROWS = 8

# LLVM IR of a multiply-add of 16 float32: the registers the assembly names give the widest
# vector the target compiles to one register (zmm: 64 bytes; ymm: 32; else 16).
_PROBE = """
define void @probe(<16 x float>* %a, <16 x float>* %b) {
  %x = load <16 x float>, <16 x float>* %a
  %y = load <16 x float>, <16 x float>* %b
  %z = call <16 x float> @llvm.fmuladd.v16f32(<16 x float> %x, <16 x float> %y, <16 x float> %y)
  store <16 x float> %z, <16 x float>* %a
  ret void
}
declare <16 x float> @llvm.fmuladd.v16f32(<16 x float>, <16 x float>, <16 x float>)
"""


@dataclass(frozen=True)
class HostProfile:
    """What the kernels are built for. Block sizes follow BLIS's split: one micro-kernel, whose
    register block (``block_rows`` rows x ``block_vectors`` vectors of sums) and vector width
    come from here.

    Attributes
    ----------
    cpu_name, cpu_features : str
        The CPU LLVM compiles for, as Numba passes it (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``
        or the host's); features may be empty (the CPU's defaults).
    isa : str
        The widest vector instructions used: ``avx512``, ``avx2``, ``avx``, ``sse`` or ``neon``
        (another architecture: its name).
    vector_bytes, vector_registers : int
        Bytes in one vector register (64, 32 or 16) and how many the ISA has (32 or 16).
    fma : bool
        Whether a multiply-add compiles to one fused instruction.
    l1d_bytes, l2_bytes : int
        Per-core data caches, from the OS, or DEFAULT_L1D / DEFAULT_L2.
    cache_source : str
        Where the cache sizes came from.
    """

    cpu_name: str
    cpu_features: str
    isa: str
    vector_bytes: int
    vector_registers: int
    fma: bool
    l1d_bytes: int
    l2_bytes: int
    cache_source: str

    def lanes(self, itemsize):
        """Elements of ``itemsize`` bytes in one vector."""
        return self.vector_bytes // itemsize

    @property
    def block_vectors(self):
        """Vectors of columns in a register block: 2, so a step loads 2 vectors of a row for
        each broadcast scalar (BLIS's sgemm blocks on Haswell, SkylakeX and Armv8 alike)."""
        return 2

    @property
    def block_rows(self):
        """Rows of a register block: its block_rows x 2 vector sums take at most 3/4 of the
        vector registers, the rest hold the row's 2 vectors and a broadcast: 6 rows with 16
        registers (AVX2, SSE), 12 with 32 (NEON). On the AVX2 host, 4 x 2 had been measured at
        88 GFLOP/s a thread, and 4 x 3 spilled.

        On x86, at most X86_BLOCK_ROWS (so 8 with AVX-512's 32 registers), as measured on the
        AMD EPYC Zen 4: at 256x1024x1024 float32, 1 thread, 12 rows ran the forward at 92-94
        GFLOP/s and the delta rule at 88-89, 8 rows at 101-103 and 103-104 (6 and 10 level with
        8). A block reads its rows in place, and rows 4 KiB apart share one set of an x86 L1
        data cache, of 8 lines on Zen 1-4 and Skylake (docs/kernels.md, "How many rows"). NEON
        keeps 12, unmeasured. The rule is part of every cache entry's key (_jit.profile_key)."""
        rows = 3 * self.vector_registers // 8
        if self.isa in X86_ISAS:
            rows = min(rows, X86_BLOCK_ROWS)
        return rows

    def describe(self):
        """Lines for ``nbbp info`` and the benchmark's header."""
        enabled = [f for f in self.cpu_features.split(",") if f.startswith("+")]
        features = self.cpu_features if len(self.cpu_features) <= 60 else (
            f"{len(enabled)} features enabled")
        return [
            f"CPU (LLVM): {self.cpu_name} [{features or 'the CPU defaults'}]",
            f"CPU (OS): {cpu_model()}",
            (f"ISA: {self.isa}, {self.vector_bytes}-byte vectors, {self.vector_registers} "
             f"vector registers, fused multiply-add: {'yes' if self.fma else 'no'}"),
            (f"caches per core: L1d {self.l1d_bytes // 1024} KiB, L2 {self.l2_bytes // 1024} "
             f"KiB ({self.cache_source})"),
            (f"register block: {self.block_rows} rows x {self.block_vectors} vectors "
             f"({self.block_rows} x {self.block_vectors * self.lanes(4)} float32, "
             f"{self.block_rows} x {self.block_vectors * self.lanes(8)} float64)"),
        ]


def _compile_target():
    """(cpu name, feature string, triple) exactly as Numba's JIT codegen passes them to LLVM."""
    import llvmlite.binding as ll
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    name = config.CPU_NAME if config.CPU_NAME is not None else ll.get_host_cpu_name()
    features = (config.CPU_FEATURES if config.CPU_FEATURES is not None
                else get_host_cpu_features())
    return name, features, ll.get_process_triple()


def _probe_vectors(name, features):
    """(vector bytes, fused multiply-add) of the LLVM target (name, features), from the
    assembly of _PROBE."""
    import llvmlite.binding as ll

    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    machine = ll.Target.from_default_triple().create_target_machine(cpu=name, features=features,
                                                                    opt=2)
    module = ll.parse_assembly(_PROBE)
    asm = machine.emit_assembly(module)
    fused = any(op in asm for op in ("vfmadd", "fmla", "xvmadd", "vfma"))
    if "zmm" in asm:
        return 64, fused
    if "ymm" in asm:
        return 32, fused
    return 16, fused


def _isa(triple, vector_bytes, features):
    arch = triple.split("-")[0]
    if arch in ("x86_64", "i386", "i686"):
        if vector_bytes == 64:
            return "avx512", 32
        if vector_bytes == 32:
            # the CPU's default features (an empty string) on a named CPU: AVX2 with FMA
            return ("avx2" if "+avx2" in features or not features else "avx"), 16
        return "sse", 16
    if arch in ("aarch64", "arm64"):
        return "neon", 32
    return arch, 32 if arch.startswith(("ppc64", "powerpc64")) else 16


def _sysfs_caches():
    """(L1d, L2) bytes of cpu0 from Linux's sysfs, or None."""
    root = "/sys/devices/system/cpu/cpu0/cache"
    l1d = l2 = None
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return None
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            def read(field, entry=entry):
                with open(os.path.join(root, entry, field)) as f:
                    return f.read().strip()
            level, kind, size = read("level"), read("type"), read("size")
        except OSError:
            continue
        n = _parse_size(size)
        if n is None:
            continue
        if level == "1" and kind in ("Data", "Unified"):
            l1d = n
        elif level == "2" and kind in ("Data", "Unified"):
            l2 = n
    if l1d is None or l2 is None:
        return None
    return l1d, l2


def _parse_size(text):
    """'48K' -> 49152; '2048K', '2M', '32768' alike; None if unreadable."""
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    text = text.strip().upper().removesuffix("B")
    scale = units.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in units else text
    return int(digits) * scale if digits.isdigit() and int(digits) > 0 else None


def _sysctl_caches():
    """(L1d, L2) bytes from macOS's sysctl (the performance cores' where it has levels)."""
    def read(name):
        try:
            out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True,
                                 timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        value = out.stdout.strip()
        return int(value) if out.returncode == 0 and value.isdigit() and int(value) > 0 else None

    for prefix in ("hw.perflevel0.", "hw."):
        l1d, l2 = read(prefix + "l1dcachesize"), read(prefix + "l2cachesize")
        if l1d and l2:
            return l1d, l2
    return None


def _caches():
    if platform.system() == "Linux":
        found = _sysfs_caches()
        if found:
            return (*found, "sysfs")
    elif platform.system() == "Darwin":
        found = _sysctl_caches()
        if found:
            return (*found, "sysctl")
    return DEFAULT_L1D, DEFAULT_L2, "defaults: the OS did not say"


def cpu_model():
    """The CPU's model name as the OS gives it (lscpu's "Model name"), or the platform's."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                 capture_output=True, text=True, timeout=5, check=False)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def host_profile():
    """The HostProfile of the CPU Numba compiles for in this process (computed once)."""
    name, features, triple = _compile_target()
    vector_bytes, fused = _probe_vectors(name, features)
    isa, registers = _isa(triple, vector_bytes, features)
    l1d, l2, source = _caches()
    return HostProfile(cpu_name=name, cpu_features=features, isa=isa, vector_bytes=vector_bytes,
                       vector_registers=registers, fma=fused, l1d_bytes=l1d, l2_bytes=l2,
                       cache_source=source)


def info_lines():
    """``nbbp info``: the profile, the versions and the threading that a bug report needs."""
    import llvmlite
    import numba
    import numpy as np

    from ._version import __version__

    profile = host_profile()
    lines = [(f"nbbp {__version__}, numba {numba.__version__}, llvmlite {llvmlite.__version__}, "
              f"numpy {np.__version__}, Python {platform.python_version()} "
              f"({platform.system()} {platform.machine()})")]
    lines += profile.describe()
    lines.append(f"threads: {numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS} "
                 f"(Numba), {os.cpu_count()} CPUs; threading layer: {threading_layer()}")
    return lines


def threading_layer():
    """Numba's threading layer, which is chosen when the first parallel region runs: run a tiny
    one (not cached: it exists only for this)."""
    import numba
    import numpy as np

    try:
        return numba.threading_layer()
    except ValueError:
        pass

    @numba.njit(parallel=True, cache=False)
    def touch(a):
        for i in numba.prange(a.shape[0]):
            a[i] = i

    touch(np.empty(4))
    return numba.threading_layer()
