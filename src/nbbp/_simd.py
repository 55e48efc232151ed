"""Short vectors for the outer-product kernels: ``lanes(a)`` consecutive elements of a row of an
array, held in one SIMD register (8 float32 or 4 float64 in AVX2's 32 bytes).

Numba vectorises loops along their index, so a sum over i of w_ij x_ki becomes one vector
accumulator per j only through a reduction over i, with horizontal adds at the end and a
register per output. The delta rule and the weight gradients want the other shape: for a
block of 4 rows x 2 vectors of outputs, each step of i loads two vectors of a row of W once
and adds x_ki times them into 8 accumulators that stay in registers for the whole sum. Numba
has no vector type and LLVM's SLP vectoriser, which could build one, is off in Numba, so these
five intrinsics build it: ``zeros``, ``load``, ``fma`` (acc + x * v with a scalar x),
``scale`` (x * v) and ``store``; ``square_add`` (acc + v * v), ``add`` and ``total`` (the sum
of the lanes) let the weight gradients sum their squares on the way out.
"""

from typing import Any, Callable

import numpy as np
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, models, overload, register_model
from numba.np.arrayobj import populate_array

from ._jit import helper, part

# One AVX2 register. AVX-512 machines hold a Vector in one of their 256-bit registers; on SSE or
# NEON machines LLVM splits it into two: correct everywhere, tuned for AVX2.
REGISTER_BYTES = 32


class Vector(types.Type):
    """``lanes`` elements of ``dtype`` in one SIMD register."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = REGISTER_BYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vector({dtype} x {self.lanes})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def lanes(a):
    """The number of elements of ``a``'s dtype in one Vector."""
    return REGISTER_BYTES // a.itemsize


@overload(lanes, inline="always")
def _lanes(a):
    n = REGISTER_BYTES // (a.dtype.bitwidth // 8)
    return lambda a: n


# The kernels work on strips of 2 vectors of columns. A strip of a row-major matrix is read one
# cache line per row, 4 KiB apart at 1024 columns: the rows fall into a few cache sets and evict
# each other. Copied into a contiguous block first ("packed", as BLAS does), it is read at full
# speed; the copy pays once it is reused by enough blocks of output rows. Float32, 2 threads,
# the delta rule at 256x1024x1024: 37 GFLOP/s unpacked, 156 packed; at 32x128x64 (8 row
# blocks): 99 unpacked, 67 packed.
PACK_MIN_ROWS = 64


@intrinsic
def _matrix(typingctx, flat, n_rows, n_cols):
    """The C-contiguous (n_rows, n_cols) view of the first n_rows * n_cols elements of a
    contiguous 1-D array (the caller checks the length)."""
    if (not isinstance(flat, types.Array) or flat.ndim != 1 or flat.layout != "C"
            or not isinstance(n_rows, types.Integer) or not isinstance(n_cols, types.Integer)):
        return None
    matrix_type = flat.copy(ndim=2, layout="C")

    def codegen(context, builder, signature, args):
        src = context.make_array(flat)(context, builder, args[0])
        rows = context.cast(builder, args[1], n_rows, types.intp)
        cols = context.cast(builder, args[2], n_cols, types.intp)
        itemsize = src.itemsize
        view = context.make_array(matrix_type)(context, builder)
        populate_array(view, data=src.data, shape=cgutils.pack_array(builder, [rows, cols]),
                       strides=cgutils.pack_array(builder, [builder.mul(cols, itemsize), itemsize]),
                       itemsize=itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, matrix_type, view._getvalue())

    return matrix_type(flat, n_rows, n_cols), codegen


def _python_matrix(flat, n_rows, n_cols):
    return flat[:n_rows * n_cols].reshape((n_rows, n_cols))


@helper
def matrix(flat, start, n_rows, n_cols):
    """flat[start:start + n_rows * n_cols] as a C-contiguous (n_rows, n_cols) view.

    What ``flat[...].reshape((n_rows, n_cols))`` gives, without the call into Numba's general
    reshape (which handles any strides): 27 ns a view against 1, about 30 views a batch in the
    epoch driver and one or two per strip in the kernels.
    """
    if start < 0 or n_rows < 0 or n_cols < 0 or start + n_rows * n_cols > flat.shape[0]:
        raise IndexError("matrix view out of bounds")
    return _matrix_view(flat[start:start + n_rows * n_cols], n_rows, n_cols)


# NumPy aligns an array's data to 16 bytes; a 32-byte vector at 16 bytes past a cache line ends
# in the next line every other time. Training's buffers and parameters start on a cache line:
# float32 kernels at 32x784x128 ran 6-14% faster aligned, W2 3-5% (190 -> 196 thousand
# samples/s); W4, bound by the matrix products' cache misses, is level.
CACHE_LINE = 64


def aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype), with its data starting on a CACHE_LINE boundary."""
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(n_bytes + CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + n_bytes].view(dtype).reshape(shape)


# The widest strip a kernel works on: 2 vectors of float32. Scratch sizes are computed for it
# (float64 strips, of 8, fit in the same room).
STRIP_MAX = 2 * REGISTER_BYTES // 4


def padded(n):
    """n rounded up to a whole number of STRIP_MAX: room for the strips of n columns, the last
    one padded."""
    return STRIP_MAX * ((n + STRIP_MAX - 1) // STRIP_MAX)


padded_in_kernel = helper(padded)  # the same, for compiled code


# Strips packed by the task that works on them, STRIP_GROUP at a time (reading STRIP_GROUP x 64
# bytes of each row of the source), where they make 16 groups or more (for balance between
# threads; else one at a time). A parallel copy of all of them first was as fast (the delta rule
# at 256x1024x1024 176-182 GFLOP/s, against 163-167 strip by strip), but a parallel loop of its
# own in each kernel took about 2.5 s more of a first fit's compile.
STRIP_GROUP = 4


@helper
def strips_per_group(n_strips):
    """STRIP_GROUP where n_strips make 16 groups or more, else 1."""
    return STRIP_GROUP if n_strips >= 16 * STRIP_GROUP else 1


@part
def pack_strips(src, p0, p1, s0, s1, S):
    """S[s n + p, c] = src[p, s w + c] for the rows p0 <= p < p1 of src (n of them in all), the
    strips s0 <= s < s1 of w = S.shape[1] = 2 lanes columns, and c < w; 0 past src's last
    column.

    Each strip of src becomes n contiguous rows of S. The copy runs along src's rows, in
    vectors: float32 1024x1024, 1 thread, 222 us against 807 strip by strip, reading each strip
    down its column of cache lines (a memcpy: 154 us).
    """
    n_rows, n_cols = src.shape
    width = S.shape[1]
    half = lanes(S)
    n_whole = n_cols // width
    j0 = n_whole * width
    for p in range(p0, p1):
        for s in range(s0, min(s1, n_whole)):
            store(S, s * n_rows + p, 0, load(src, p, s * width))
            store(S, s * n_rows + p, half, load(src, p, s * width + half))
        if j0 < n_cols and s0 <= n_whole < s1:
            r = n_whole * n_rows + p
            for c in range(n_cols - j0):
                S[r, c] = src[p, j0 + c]
            for c in range(n_cols - j0, width):
                S[r, c] = 0


@helper
def packed_strips(src, width, scratch):
    """The (n_strips n, width) view of scratch that pack_strips fills for src (n, n_cols)."""
    n_strips = (src.shape[1] + width - 1) // width
    return matrix(scratch, 0, n_strips * src.shape[0], width)


@helper
def pack_group(src, s0, s1, first, scratch):
    """Packs src's strips max(s0, first) <= s < s1, of 2 vectors of columns each, into their
    rows of the packed_strips of src in scratch (pack_strips over every row)."""
    if max(s0, first) < s1:
        pack_strips(src, 0, src.shape[0], max(s0, first), s1,
                    packed_strips(src, 2 * lanes(src), scratch))


@helper
def strip_source(src, strip, width, first, scratch):
    """(V, v0) with V[p, v0 + c] = src[p, strip * width + c] for c < width: src itself for the
    strips before ``first``, else the strip's rows of the packed_strips of src in scratch (which
    pack_group fills from ``first`` on; a ragged last strip is always among them)."""
    if strip < first:
        return src, strip * width
    n_rows = src.shape[0]
    return matrix(scratch, strip * n_rows * width, n_rows, width), 0


def _vector_pointer(context, builder, array_type, array, k, j, vector_type):
    """The address of a[k, j], as a pointer to a Vector. No wraparound: the callers' loops keep
    k, j and j + lanes - 1 inside the array, and with NUMBA_BOUNDSCHECK=1 both ends of the
    vector are checked (IndexError) like any other index."""
    a = context.make_array(array_type)(context, builder, array)
    shape = cgutils.unpack_tuple(builder, a.shape)
    strides = cgutils.unpack_tuple(builder, a.strides)

    def address(column, check):
        return cgutils.get_item_pointer2(context, builder, a.data, shape, strides,
                                         array_type.layout, [k, column], wraparound=False,
                                         boundscheck=check)

    if context.enable_boundscheck:
        address(builder.add(j, j.type(vector_type.lanes - 1)), True)
    return builder.bitcast(address(j, context.enable_boundscheck),
                           context.get_value_type(vector_type).as_pointer())


def _is_c_matrix(a):
    return isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and isinstance(
        a.dtype, types.Float)


@intrinsic
def _zeros(typingctx, like):
    """A Vector of zeros of ``like``'s dtype."""
    if not isinstance(like, types.Array) or not isinstance(like.dtype, types.Float):
        return None
    vector = Vector(like.dtype)

    def codegen(context, builder, signature, args):
        return ir.Constant(context.get_value_type(vector), None)

    return vector(like), codegen


@intrinsic
def _load(typingctx, a, k, j):
    """The Vector a[k, j], ..., a[k, j + lanes - 1] of a C-contiguous matrix ``a``."""
    if not _is_c_matrix(a) or not isinstance(k, types.Integer) or not isinstance(j, types.Integer):
        return None
    vector = Vector(a.dtype)

    def codegen(context, builder, signature, args):
        k_index = context.cast(builder, args[1], k, types.intp)
        j_index = context.cast(builder, args[2], j, types.intp)
        pointer = _vector_pointer(context, builder, a, args[0], k_index, j_index, vector)
        return builder.load(pointer, align=a.dtype.bitwidth // 8)

    return vector(a, k, j), codegen


@intrinsic
def _store(typingctx, a, k, j, v):
    """a[k, j], ..., a[k, j + lanes - 1] = v, into a C-contiguous matrix ``a``."""
    if (not _is_c_matrix(a) or not isinstance(k, types.Integer) or not isinstance(j, types.Integer)
            or not isinstance(v, Vector) or v.dtype != a.dtype):
        return None

    def codegen(context, builder, signature, args):
        k_index = context.cast(builder, args[1], k, types.intp)
        j_index = context.cast(builder, args[2], j, types.intp)
        pointer = _vector_pointer(context, builder, a, args[0], k_index, j_index, v)
        builder.store(args[3], pointer, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(a, k, j, v), codegen


def _broadcast(context, builder, x_value, x_type, vector):
    """A Vector whose every lane is the scalar x."""
    vector_type = context.get_value_type(vector)
    x_value = context.cast(builder, x_value, x_type, vector.dtype)
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), x_value,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), vector.lanes), None))


def _is_scalar(x):
    return isinstance(x, (types.Float, types.Integer))


@intrinsic
def _scale(typingctx, v, x):
    """x * v for a scalar x."""
    if not isinstance(v, Vector) or not _is_scalar(x):
        return None

    def codegen(context, builder, signature, args):
        return builder.fmul(args[0], _broadcast(context, builder, args[1], x, v))

    return v(v, x), codegen


@intrinsic
def _fma(typingctx, acc, x, v):
    """acc + x * v for a scalar x: one fused multiply-add per lane where the machine has one."""
    if not isinstance(acc, Vector) or v != acc or not _is_scalar(x):
        return None

    def codegen(context, builder, signature, args):
        vector_type = context.get_value_type(acc)
        broadcast = _broadcast(context, builder, args[1], x, acc)
        fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector_type, [vector_type] * 3),
            f"llvm.fmuladd.v{acc.lanes}f{acc.dtype.bitwidth}")
        return builder.call(fmuladd, [broadcast, args[2], args[0]])

    return acc(acc, x, v), codegen


@intrinsic
def _square_add(typingctx, acc, v):
    """acc + v * v, lane by lane."""
    if not isinstance(acc, Vector) or v != acc:
        return None

    def codegen(context, builder, signature, args):
        vector_type = context.get_value_type(acc)
        fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector_type, [vector_type] * 3),
            f"llvm.fmuladd.v{acc.lanes}f{acc.dtype.bitwidth}")
        return builder.call(fmuladd, [args[1], args[1], args[0]])

    return acc(acc, v), codegen


@intrinsic
def _add(typingctx, u, v):
    """u + v, lane by lane."""
    if not isinstance(u, Vector) or v != u:
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1])

    return u(u, v), codegen


@intrinsic
def _total(typingctx, v):
    """The sum of v's lanes, in v's dtype (in any order: a tree of adds)."""
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, signature, args):
        element = context.get_value_type(v.dtype)
        reduce = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(element, [element, context.get_value_type(v)]),
            f"llvm.vector.reduce.fadd.v{v.lanes}f{v.dtype.bitwidth}")
        call = builder.call(reduce, [ir.Constant(element, 0.0), args[0]])
        call.fastmath.add("reassoc")  # else LLVM adds the lanes one after another
        return call

    return v.dtype(v), codegen


def _python_zeros(like):
    return np.zeros(lanes(like), like.dtype)


def _python_load(a, k, j):
    return a[k, j:j + lanes(a)].copy()


def _python_store(a, k, j, v):
    a[k, j:j + lanes(a)] = v


def _python_scale(v, x):
    return x * v


def _python_fma(acc, x, v):
    return acc + x * v


def _python_square_add(acc, v):
    return acc + v * v


def _python_add(u, v):
    return u + v


def _python_total(v):
    return v.dtype.type(v.sum())


zeros: Callable[..., Any]
_matrix_view: Callable[..., Any]
load: Callable[..., Any]
store: Callable[..., Any]
scale: Callable[..., Any]
fma: Callable[..., Any]
square_add: Callable[..., Any]
add: Callable[..., Any]
total: Callable[..., Any]
if getattr(config, "DISABLE_JIT"):  # the kernels run as plain Python: the same steps on NumPy rows
    zeros, load, store, scale, fma = (_python_zeros, _python_load, _python_store, _python_scale,
                                      _python_fma)
    square_add, add, total = _python_square_add, _python_add, _python_total
    _matrix_view = _python_matrix
else:
    zeros, load, store, scale, fma = _zeros, _load, _store, _scale, _fma
    square_add, add, total = _square_add, _add, _total
    _matrix_view = _matrix
