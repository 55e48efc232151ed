"""The machine side of the kernels, in one place: short vectors and register blocks sized by the
host profile (nbbp.host), packing into contiguous strips, aligned buffers. The kernel
modules keep the formulas; this module keeps what depends on the CPU.

A ``Vector`` is ``lanes(a)`` consecutive elements of a row, held in one SIMD register (16 float32
with AVX-512's 64 bytes, 8 with AVX2's 32, 4 with SSE's or NEON's 16). Numba has no vector type
and LLVM's SLP vectoriser, which could build one, is off in Numba, so eight intrinsics build and
use it: ``zeros``, ``load``, ``store``, ``fma`` (acc + x * v with a scalar x), ``scale``,
``square_add``, ``add`` and ``total`` (the sum of the lanes). Two more serve scalar loops:
``power_of_two`` (2.0 ** n from its bits, for activations.exp32) and ``prefetch`` (a cache hint).

A block of ``Sums`` is the register block of a matrix product, BLIS's micro-tile: ``block_rows``
rows x ``block_vectors`` vectors of sums, held in registers over a whole sum over p. A kernel
writes its block body as its formula, over rows r and the columns c of the block::

    acc += outer(down(X, r0, p), row(Y, p, c0))    # acc_rc += x_(r0 + r)p y_pc

where ``down(X, r0, p)`` is the block's ``block_rows`` scalars of step p read down column p of X
from row r0 (``across(X, p, c0)``: along row p from column c0), ``row(Y, p, c0)`` the block's
vectors of row p of Y from column c0, and ``acc += outer(x, y)`` one fused multiply-add per
vector of the block, a broadcast of each scalar. All three matrix kernels run this one
micro-kernel: the forward over W's strips transposed (``pack_transposed_strips``, lanes x lanes
tiles transposed in registers by ``transpose_tile``), the delta rule and the gradients over
strips of W and A_prev. The blocks' intrinsics: ``zeros_block``, ``down``, ``across``, ``row``,
``outer``, ``store_block`` (the first n_rows rows of a block into a matrix) and
``block_squares`` (their squares, summed lane by lane). ``zeros_narrow`` is a block one vector
wide, for the last strip of a matrix when at most one vector of columns is left (a layer of 10
outputs: 16 float32 columns of sums on AVX-512, not 32). With NUMBA_DISABLE_JIT each intrinsic has
a NumPy stand-in, at the end of this module.
"""

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, models, overload, register_model
from numba.np.arrayobj import populate_array

from ._jit import helper, part
from .host import host_profile


def _lanes_of(dtype):
    """Elements of a Numba float type in one vector of the host profile."""
    return host_profile().lanes(dtype.bitwidth // 8)


class Vector(types.Type):
    """``lanes`` elements of ``dtype`` in one SIMD register."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = _lanes_of(dtype)
        super().__init__(name=f"Vector({dtype} x {self.lanes})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def lanes(a):
    """The number of elements of ``a``'s dtype in one Vector."""
    return host_profile().lanes(a.itemsize)


@overload(lanes, inline="always")
def _lanes(a):
    n = _lanes_of(a.dtype)
    return lambda a: n


def block_rows():
    """Rows of a register block (host profile)."""
    return host_profile().block_rows


@overload(block_rows, inline="always")
def _block_rows():
    n = host_profile().block_rows
    return lambda: n


def strip_width(a):
    """Columns of a register block and of a packed strip: block_vectors vectors of a's dtype."""
    return host_profile().block_vectors * lanes(a)


@overload(strip_width, inline="always")
def _strip_width(a):
    n = host_profile().block_vectors * _lanes_of(a.dtype)
    return lambda a: n


# The kernels work on strips of block_vectors vectors of columns. A strip of a row-major matrix
# is read one cache line per row, 4 KiB apart at 1024 columns: the rows fall into a few cache
# sets and evict each other. Copied into a contiguous block first ("packed", as BLAS does), it is
# read at full speed; the copy pays once it is reused by enough blocks of output rows. AMD EPYC
# (Zen 3, AVX2), float32, 2 threads, the delta rule at 256x1024x1024: 37 GFLOP/s unpacked, 156
# packed; at 32x128x64 (8 row blocks): 99 unpacked, 67 packed.
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


def borrowed(a):
    """``a`` itself, or for an array (or a tuple of arrays) the same view of its data holding no
    reference to it: an array that outlives the call, passed down a compiled call tree, is then
    not counted.

    Numba counts references to an array's memory with atomic adds, on every view of it and on
    every array argument a compiled function receives (NUMBA_DEBUG_NRT, one call each at W1's
    32x64x32: 40 in the forward kernel, 101 in the gradients, 72 in the delta rule). A borrowed
    array and its views count nothing (their meminfo is NULL), so the epoch driver borrows its
    arguments, which its caller holds for the whole call: W1's epoch went from 3.55-3.98 to
    2.80-2.88 ms on the AMD EPYC Zen 5 of 2026-12-08, with no count left in its batch loop. A
    borrowed array must not outlive that call nor be returned to Python (it would not keep
    its data alive)."""
    return a


def _borrow(context, builder, array_type, value):
    """The array struct ``value`` with a NULL meminfo and parent."""
    src = context.make_array(array_type)(context, builder, value)
    view = context.make_array(array_type)(context, builder)
    populate_array(view, data=src.data, shape=src.shape, strides=src.strides,
                   itemsize=src.itemsize, meminfo=cgutils.get_null_value(src.meminfo.type),
                   parent=cgutils.get_null_value(src.parent.type))
    return view._getvalue()


def _borrowable(a):
    """Whether the Numba type ``a`` is an array or a non-empty tuple of arrays."""
    return isinstance(a, types.Array) or (isinstance(a, types.BaseTuple) and bool(a.types)
                                          and all(isinstance(t, types.Array) for t in a.types))


@intrinsic
def _borrowed_array(typingctx, a):
    """The array ``a``, or each array of the tuple ``a``, with a NULL meminfo and parent: the
    same data, shape and strides. (A tuple is borrowed whole: taking its arrays out first
    would count each.)"""
    if not _borrowable(a):
        return None

    def codegen(context, builder, signature, args):
        if isinstance(a, types.Array):
            return _borrow(context, builder, a, args[0])
        out = args[0]
        for i, t in enumerate(a.types):
            item = builder.extract_value(args[0], i)
            out = builder.insert_value(out, _borrow(context, builder, t, item), i)
        return out

    return a(a), codegen


@overload(borrowed, inline="always")
def _borrowed(a):
    if _borrowable(a):
        return lambda a: _borrowed_array(a)  # noqa: PLW0108 - compiled by Numba
    return lambda a: a


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


def read_only(a):
    """A read-only view of ``a``."""
    view = a.view()
    view.flags.writeable = False
    return view


def aligned(a):
    """``a`` itself if its data start on a CACHE_LINE boundary and it is writeable, else an
    aligned copy (a read-only array, from a read-only memmap say, would compile every kernel
    again for its type)."""
    if a.ctypes.data % CACHE_LINE == 0 and a.flags.c_contiguous and a.flags.writeable:
        return a
    copy = aligned_zeros(a.shape, a.dtype)
    copy[...] = a
    return copy


def strip_max():
    """The widest strip of any dtype, in elements: float32's. Scratch sizes are computed for it
    (float64 strips, half as many elements, fit in the same room)."""
    return host_profile().block_vectors * host_profile().lanes(4)


@overload(strip_max, inline="always")
def _strip_max():
    n = strip_max()
    return lambda: n


def padded(n):
    """n rounded up to a whole number of strip_max(): room for the strips of n columns, the last
    one padded."""
    width = strip_max()
    return width * ((n + width - 1) // width)


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
    strips s0 <= s < s1 of w = S.shape[1] = strip_width(src) columns, and c < w; 0 past src's
    last column.

    Each strip of src becomes n contiguous rows of S. The copy runs along src's rows, in
    vectors: float32 1024x1024, 1 thread, 222 us against 807 strip by strip, reading each strip
    down its column of cache lines (a memcpy: 154 us).
    """
    n_rows, n_cols = src.shape
    width = S.shape[1]
    step = lanes(S)
    n_whole = n_cols // width
    j0 = n_whole * width
    for p in range(p0, p1):
        for s in range(s0, min(s1, n_whole)):
            for c in range(0, width, step):
                store(S, s * n_rows + p, c, load(src, p, s * width + c))
        if j0 < n_cols and s0 <= n_whole < s1:
            r = n_whole * n_rows + p
            for c in range(n_cols - j0):
                S[r, c] = src[p, j0 + c]
            for c in range(n_cols - j0, width):
                S[r, c] = 0


# pack_transposed_strips prefetches from src of this many elements up. Its tiles read lanes rows
# of src at a time, short streams that the hardware prefetchers miss: with W cold (D1's 20
# layers of 256x256 float32, 2 threads, Intel Xeon AVX-512), a forward call took 153 us a layer
# without and 73 with; with W in L1 (W1's 32x64) the prefetches cost 4-10% of the call.
PREFETCH_MIN_ELEMENTS = 1 << 14


@part
def pack_transposed_strips(src, s0, s1, S):
    """S[s m + p, c] = src[s w + c, p] for every column p of src (n, m), the strips s0 <= s < s1
    of w = S.shape[1] = strip_width(src) rows of src, and c < w; 0 past src's last row.

    Each strip of w rows of src becomes m contiguous rows of S: the strip transposed. Square
    tiles of lanes x lanes are transposed in registers (transpose_tile, with zeros for rows past
    src's last); a last part of a row too short for a tile, element by element.
    """
    n_rows, n_cols = src.shape
    width = S.shape[1]
    step = lanes(S)
    whole = n_cols // step * step
    ahead = step if n_rows * n_cols >= PREFETCH_MIN_ELEMENTS else 0
    for s in range(s0, s1):
        for c0 in range(0, width, step):
            i0 = s * width + c0
            valid = min(step, n_rows - i0)
            if valid <= 0:
                for p in range(n_cols):
                    for c in range(step):
                        S[s * n_cols + p, c0 + c] = 0
                continue
            for p0 in range(0, whole, step):
                for r in range(ahead):  # the same tile of the next rows, while this one turns
                    prefetch(src, min(i0 + step + r, n_rows - 1), p0)
                transpose_tile(src, i0, p0, valid, S, s * n_cols + p0, c0)
            for p in range(whole, n_cols):
                for c in range(step):
                    S[s * n_cols + p, c0 + c] = src[i0 + c, p] if c < valid else 0


@helper
def transposed_strips(src, width, scratch):
    """The (n_strips m, width) view of scratch that pack_transposed_strips fills for src (n, m),
    with n_strips strips of width rows."""
    n_strips = (src.shape[0] + width - 1) // width
    return matrix(scratch, 0, n_strips * src.shape[1], width)


@helper
def packed_strips(src, width, scratch):
    """The (n_strips n, width) view of scratch that pack_strips fills for src (n, n_cols)."""
    n_strips = (src.shape[1] + width - 1) // width
    return matrix(scratch, 0, n_strips * src.shape[0], width)


@helper
def pack_group(src, s0, s1, first, scratch):
    """Packs src's strips max(s0, first) <= s < s1, of strip_width(src) columns each, into their
    rows of the packed_strips of src in scratch (pack_strips over every row)."""
    if max(s0, first) < s1:
        pack_strips(src, 0, src.shape[0], max(s0, first), s1,
                    packed_strips(src, strip_width(src), scratch))


@helper
def strip_source(src, strip, width, first, scratch):
    """(V, v0) with V[p, v0 + c] = src[p, strip * width + c] for c < width: src itself for the
    strips before ``first``, else the strip's rows of the packed_strips of src in scratch (which
    pack_group fills from ``first`` on; a ragged last strip is always among them)."""
    if strip < first:
        return src, strip * width
    n_rows = src.shape[0]
    return matrix(scratch, strip * n_rows * width, n_rows, width), 0


@part
def pack_column_panel(src, i0, start, P):
    """P[start + p, r] = src[p, min(i0 + r, m - 1)] for every row p of src (n, m) and r <
    P.shape[1]: block_rows columns of src from i0, as a panel whose step p holds the block's
    scalars side by side (columns past src's end repeat its last column)."""
    n_rows, n_cols = src.shape
    for p in range(n_rows):
        for r in range(P.shape[1]):
            P[start + p, r] = src[p, min(i0 + r, n_cols - 1)]


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


@intrinsic
def _transpose_tile(typingctx, src, r0, c0, n_rows, dst, d0, e0):
    """dst[d0 + c, e0 + r] = src[r0 + r, c0 + c] for r, c < lanes, 0 for the rows r >= n_rows
    (1 <= n_rows; past src's last row): a square tile of src, loaded as its lanes rows,
    transposed in registers and stored as lanes rows of dst.

    The transposition takes log2(lanes) rounds. The round of a power of two b pairs each row i
    that has bit b clear with row i + b, and in each pair swaps the lanes that have bit b set in
    row i with the lanes that have it clear in row i + b: one shuffle of the two rows for each
    (so a[r, c] moves to where bit b of r and bit b of c are exchanged; after every round, to
    a[c, r]).
    """
    if (not _is_c_matrix(src) or not _is_c_matrix(dst) or src.dtype != dst.dtype
            or not all(isinstance(t, types.Integer) for t in (r0, c0, n_rows, d0, e0))):
        return None
    vector = Vector(src.dtype)
    n = vector.lanes

    def codegen(context, builder, signature, args):
        row0, col0, count, drow0, dcol0 = (
            context.cast(builder, value, t, types.intp)
            for value, t in zip(args[1:4] + args[5:7], (r0, c0, n_rows, d0, e0)))
        align = src.dtype.bitwidth // 8
        zero = ir.Constant(context.get_value_type(vector), None)
        last = builder.sub(count, count.type(1))
        rows = []
        for r in range(n):  # a row past n_rows loads the last one (in bounds), then reads 0
            inside = builder.icmp_signed("<", count.type(r), count)
            offset = builder.select(inside, count.type(r), last)
            loaded = builder.load(_vector_pointer(context, builder, src, args[0],
                                                  builder.add(row0, offset), col0, vector),
                                  align=align)
            rows.append(builder.select(inside, loaded, zero))
        b = n // 2
        while b >= 1:
            keep = [c if c & b == 0 else n + c - b for c in range(n)]
            swap = [c + b if c & b == 0 else n + c for c in range(n)]
            for i in range(n):
                if i & b == 0:
                    upper, lower = rows[i], rows[i + b]
                    rows[i], rows[i + b] = (
                        builder.shuffle_vector(upper, lower, ir.Constant(
                            ir.VectorType(ir.IntType(32), n), [ir.IntType(32)(m) for m in mask]))
                        for mask in (keep, swap))
            b //= 2
        for c in range(n):
            pointer = _vector_pointer(context, builder, dst, args[4],
                                      builder.add(drow0, drow0.type(c)), dcol0, vector)
            builder.store(rows[c], pointer, align=align)
        return context.get_dummy_value()

    return types.void(src, r0, c0, n_rows, dst, d0, e0), codegen


@intrinsic
def _prefetch(typingctx, a, k, j):
    """A hint to bring the cache line of a[k, j] (a C-contiguous matrix, k and j inside it)
    into the caches before it is read: it loads nothing, and changes no result."""
    if not _is_c_matrix(a) or not isinstance(k, types.Integer) or not isinstance(j, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(a)(context, builder, args[0])
        pointer = cgutils.get_item_pointer2(
            context, builder, array.data, cgutils.unpack_tuple(builder, array.shape),
            cgutils.unpack_tuple(builder, array.strides), a.layout,
            [context.cast(builder, args[1], k, types.intp),
             context.cast(builder, args[2], j, types.intp)], wraparound=False)
        i8_pointer = ir.IntType(8).as_pointer()
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8_pointer] + [ir.IntType(32)] * 3),
            "llvm.prefetch.p0i8")
        i32 = ir.IntType(32)  # a read (0), kept in every level (3), of data (1)
        builder.call(hint, [builder.bitcast(pointer, i8_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(a, k, j), codegen


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


def _fmuladd(builder, x, y, acc):
    """x * y + acc, one fused multiply-add per lane where the machine has one."""
    bits = 64 if isinstance(acc.type.element, ir.DoubleType) else 32
    fmuladd = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(acc.type, [acc.type] * 3),
        f"llvm.fmuladd.v{acc.type.count}f{bits}")
    return builder.call(fmuladd, [x, y, acc])


def _lane_sum(context, builder, v, dtype):
    """The sum of a vector's lanes, in any order (a tree of adds)."""
    element = context.get_value_type(dtype)
    reduce = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(element, [element, v.type]),
        f"llvm.vector.reduce.fadd.v{v.type.count}f{dtype.bitwidth}")
    call = builder.call(reduce, [ir.Constant(element, 0.0), v])
    call.fastmath.add("reassoc")  # else LLVM adds the lanes one after another
    return call


@intrinsic
def _fma(typingctx, acc, x, v):
    """acc + x * v for a scalar x: one fused multiply-add per lane where the machine has one."""
    if not isinstance(acc, Vector) or v != acc or not _is_scalar(x):
        return None

    def codegen(context, builder, signature, args):
        return _fmuladd(builder, _broadcast(context, builder, args[1], x, acc), args[2], args[0])

    return acc(acc, x, v), codegen


@intrinsic
def _square_add(typingctx, acc, v):
    """acc + v * v, lane by lane."""
    if not isinstance(acc, Vector) or v != acc:
        return None

    def codegen(context, builder, signature, args):
        return _fmuladd(builder, args[1], args[1], args[0])

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
        return _lane_sum(context, builder, args[0], v.dtype)

    return v.dtype(v), codegen


@intrinsic
def _power_of_two(typingctx, n):
    """2.0 ** n as a float64, for an int64 -1022 <= n <= 1023: the bits (n + 1023) << 52,
    reinterpreted (so that a loop of activations.exp32 vectorises: ldexp is a call)."""
    if n != types.int64:
        return None

    def codegen(context, builder, signature, args):
        bits = builder.shl(builder.add(args[0], ir.Constant(ir.IntType(64), 1023)),
                           ir.Constant(ir.IntType(64), 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(n), codegen


# ------------------------------------------------------------------ blocks of sums
# A block of sums is a grid of Vectors held in registers, block_rows x block_vectors: acc +=
# outer(column, row), a scalar of each row of the block times a row's vectors.
class Sums(types.Type):
    """rows x cols Vectors of ``dtype``: the sums of a block."""

    def __init__(self, dtype, rows, cols):
        self.dtype, self.rows, self.cols = dtype, rows, cols
        self.lanes = _lanes_of(dtype)
        super().__init__(name=f"Sums({dtype}, {rows} x {cols} x {self.lanes})")


class Vectors(types.Type):
    """``count`` Vectors of ``dtype``: a row's consecutive vectors."""

    def __init__(self, dtype, count):
        self.dtype, self.count = dtype, count
        self.lanes = _lanes_of(dtype)
        super().__init__(name=f"Vectors({dtype}, {count} x {self.lanes})")


class Column(types.Type):
    """A block's block_rows scalars x_rp of one step p (one per row)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.rows = host_profile().block_rows
        super().__init__(name=f"Column({dtype} x {self.rows})")


class Product(types.Type):
    """The products x_r y_c of every scalar of a Column and every Vector of a row, not formed:
    ``acc + product`` is one fused multiply-add per pair."""

    def __init__(self, left, right):
        self.dtype, self.left, self.right = right.dtype, left, right
        super().__init__(name=f"Product({left}, {right})")


@register_model(Sums)
@register_model(Vectors)
class _VectorArrayModel(models.PrimitiveModel):
    """An LLVM array of Vectors: rows x cols of them, or count."""

    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        n = fe_type.count if isinstance(fe_type, Vectors) else fe_type.rows * fe_type.cols
        super().__init__(dmm, fe_type, ir.ArrayType(ir.VectorType(element, fe_type.lanes), n))


@register_model(Column)
class _ColumnModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.ArrayType(element, fe_type.rows))


@register_model(Product)
class _ProductModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.LiteralStructType([
            dmm.lookup(fe_type.left).get_value_type(), dmm.lookup(fe_type.right).get_value_type()]))


def _block_sums(dtype):
    return Sums(dtype, host_profile().block_rows, host_profile().block_vectors)


def _narrow_sums(dtype):
    return Sums(dtype, host_profile().block_rows, 1)


def _zeros_intrinsic(sums_of):
    """zeros(like): the Vector or Sums that ``sums_of(dtype)`` gives, of zeros of ``like``'s
    dtype."""

    def typer(typingctx, like):
        if not isinstance(like, types.Array) or not isinstance(like.dtype, types.Float):
            return None
        sums = sums_of(like.dtype)

        def codegen(context, builder, signature, args):
            return ir.Constant(context.get_value_type(sums), None)

        return sums(like), codegen

    return intrinsic(typer)


_zeros = _zeros_intrinsic(Vector)  # a Vector of zeros
_zeros_block = _zeros_intrinsic(_block_sums)
_zeros_narrow = _zeros_intrinsic(_narrow_sums)  # block_rows x 1 Vector: a strip's last lanes


def _column_intrinsic(doc, along_rows):
    """An intrinsic reading a Column from a matrix X: ``down(X, r0, p)`` the scalars X[r0 + r, p]
    (along_rows), ``across(X, p, c0)`` the scalars X[p, c0 + r], for r < block_rows; an index
    past X's last row or column is read as the last one."""

    def typer(typingctx, X, i, j):
        if (not _is_c_matrix(X) or not isinstance(i, types.Integer)
                or not isinstance(j, types.Integer)):
            return None
        column_type = Column(X.dtype)

        def codegen(context, builder, signature, args):
            a = context.make_array(X)(context, builder, args[0])
            shape = cgutils.unpack_tuple(builder, a.shape)
            strides = cgutils.unpack_tuple(builder, a.strides)
            row0 = context.cast(builder, args[1], i, types.intp)
            col0 = context.cast(builder, args[2], j, types.intp)
            axis = 0 if along_rows else 1
            start = (row0, col0)[axis]
            last = builder.sub(shape[axis], shape[axis].type(1))
            value = ir.Constant(context.get_value_type(column_type), ir.Undefined)
            for r in range(column_type.rows):
                index = builder.add(start, start.type(r))
                index = builder.select(builder.icmp_signed("<", index, last), index, last)
                indices = [index, col0] if along_rows else [row0, index]
                pointer = cgutils.get_item_pointer2(context, builder, a.data, shape, strides,
                                                    X.layout, indices, wraparound=False,
                                                    boundscheck=context.enable_boundscheck)
                value = builder.insert_value(value, builder.load(pointer), r)
            return value

        return column_type(X, i, j), codegen

    typer.__doc__ = doc
    return intrinsic(typer)


_down = _column_intrinsic("The Column X[r0, p], ..., X[r0 + block_rows - 1, p]: a block's scalars "
                          "of step p, down column p of X.", along_rows=True)
_across = _column_intrinsic("The Column X[p, c0], ..., X[p, c0 + block_rows - 1]: a block's "
                            "scalars of step p, across row p of X.", along_rows=False)


@intrinsic
def _row(typingctx, Y, p, c0):
    """The block_vectors Vectors Y[p, c0 + v lanes:], v < block_vectors: a block's columns of one
    row."""
    if not _is_c_matrix(Y) or not isinstance(p, types.Integer) or not isinstance(c0, types.Integer):
        return None
    row_type = Vectors(Y.dtype, host_profile().block_vectors)
    vector = Vector(Y.dtype)

    def codegen(context, builder, signature, args):
        p_index = context.cast(builder, args[1], p, types.intp)
        c_index = context.cast(builder, args[2], c0, types.intp)
        value = ir.Constant(context.get_value_type(row_type), ir.Undefined)
        for v in range(row_type.count):
            column = builder.add(c_index, c_index.type(v * row_type.lanes))
            pointer = _vector_pointer(context, builder, Y, args[0], p_index, column, vector)
            value = builder.insert_value(value, builder.load(pointer, align=Y.dtype.bitwidth // 8),
                                         v)
        return value

    return row_type(Y, p, c0), codegen


@intrinsic
def _product(typingctx, x, y):
    """outer(x, y) of a Column and a block's row: to be added to Sums."""
    if not isinstance(x, Column) or not isinstance(y, Vectors) or x.dtype != y.dtype:
        return None
    product_type = Product(x, y)

    def codegen(context, builder, signature, args):
        value = ir.Constant(context.get_value_type(product_type), ir.Undefined)
        return builder.insert_value(builder.insert_value(value, args[0], 0), args[1], 1)

    return product_type(x, y), codegen


@intrinsic
def _add_product(typingctx, acc, product):
    """acc_rc + x_r y_c for every row r and column c of the block (x_r a Column's scalar,
    broadcast), one fused multiply-add each. A block narrower than the row (zeros_narrow) takes
    its first vectors; LLVM drops the loads of the others."""
    if (not isinstance(acc, Sums) or not isinstance(product, Product) or acc.dtype != product.dtype
            or acc.rows != product.left.rows or acc.cols > product.right.count):
        return None

    def codegen(context, builder, signature, args):
        vector = Vector(acc.dtype)
        x, y = builder.extract_value(args[1], 0), builder.extract_value(args[1], 1)
        ys = [builder.extract_value(y, c) for c in range(acc.cols)]
        sums = args[0]
        for r in range(acc.rows):
            x_r = _broadcast(context, builder, builder.extract_value(x, r), acc.dtype, vector)
            for c in range(acc.cols):
                index = r * acc.cols + c
                sums = builder.insert_value(
                    sums, _fmuladd(builder, x_r, ys[c], builder.extract_value(sums, index)), index)
        return sums

    return acc(acc, product), codegen


@overload(operator.add)
@overload(operator.iadd)
def _sums_plus_product(acc, product):
    if isinstance(acc, Sums) and isinstance(product, Product):
        return lambda acc, product: _add_product(acc, product)  # noqa: PLW0108 - compiled by Numba
    return None


@intrinsic
def _scale_sums(typingctx, acc, x):
    """x acc_rc for a scalar x."""
    if not isinstance(acc, Sums) or not _is_scalar(x):
        return None

    def codegen(context, builder, signature, args):
        x_v = _broadcast(context, builder, args[1], x, Vector(acc.dtype))
        sums = args[0]
        for index in range(acc.rows * acc.cols):
            sums = builder.insert_value(sums, builder.fmul(builder.extract_value(sums, index), x_v),
                                        index)
        return sums

    return acc(acc, x), codegen


@overload(operator.mul)
def _sums_times_scalar(acc, x):
    if isinstance(acc, Sums) and _is_scalar(x):
        return lambda acc, x: _scale_sums(acc, x)  # noqa: PLW0108 - compiled by Numba
    return None


@intrinsic
def _store_block(typingctx, out, r0, c0, acc, n_rows):
    """out[r0 + r, c0 + c] = acc_rc for the rows r < n_rows of the block and all its columns."""
    if (not _is_c_matrix(out) or not isinstance(acc, Sums) or acc.dtype != out.dtype
            or not all(isinstance(t, types.Integer) for t in (r0, c0, n_rows))):
        return None
    vector = Vector(acc.dtype)

    def codegen(context, builder, signature, args):
        row0 = context.cast(builder, args[1], r0, types.intp)
        col0 = context.cast(builder, args[2], c0, types.intp)
        count = context.cast(builder, args[4], n_rows, types.intp)
        for r in range(acc.rows):
            with builder.if_then(builder.icmp_signed("<", count.type(r), count), likely=True):
                for c in range(acc.cols):
                    pointer = _vector_pointer(context, builder, out, args[0],
                                              builder.add(row0, row0.type(r)),
                                              builder.add(col0, col0.type(c * acc.lanes)), vector)
                    builder.store(builder.extract_value(args[3], r * acc.cols + c), pointer,
                                  align=out.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(out, r0, c0, acc, n_rows), codegen


@intrinsic
def _block_squares(typingctx, acc, n_rows):
    """sum over the rows r < n_rows and columns c of acc_rc * acc_rc, lane by lane: a Vector
    (each row's squares apart, then the rows added in a tree)."""
    if not isinstance(acc, Sums) or not isinstance(n_rows, types.Integer):
        return None
    vector = Vector(acc.dtype)

    def codegen(context, builder, signature, args):
        count = context.cast(builder, args[1], n_rows, types.intp)
        zero = ir.Constant(context.get_value_type(vector), None)
        sums = []
        for r in range(acc.rows):
            q = zero
            for c in range(acc.cols):
                g = builder.extract_value(args[0], r * acc.cols + c)
                q = _fmuladd(builder, g, g, q)
            sums.append(builder.select(builder.icmp_signed("<", count.type(r), count), q, zero))
        while len(sums) > 1:
            sums = [builder.fadd(sums[m], sums[m + 1]) if m + 1 < len(sums) else sums[m]
                    for m in range(0, len(sums), 2)]
        return sums[0]

    return vector(acc, n_rows), codegen


# Under NUMBA_DISABLE_JIT: Sums are a (rows, cols, lanes) array, a Column a 1-D array, Vectors a
# (count, lanes) array, and the products NumPy's broadcasting.
class _PythonSums(np.ndarray):
    """A block of sums under NUMBA_DISABLE_JIT: ``acc + outer(x, y)`` (and ``+=``) adds the first
    of y's vectors that the block is wide, as the compiled block does."""

    def __add__(self, product):
        return np.ndarray.__add__(self, product[:, :self.shape[1]])

    def __iadd__(self, product):
        return np.ndarray.__iadd__(self, product[:, :self.shape[1]])


def _python_sums(shape_of):
    def zeros(like):
        rows, cols = shape_of()
        return np.zeros((rows, cols, lanes(like)), like.dtype).view(_PythonSums)
    return zeros


def _python_down(X, r0, p):
    return X[np.minimum(np.arange(r0, r0 + block_rows()), X.shape[0] - 1), p].copy()


def _python_across(X, p, c0):
    return X[p, np.minimum(np.arange(c0, c0 + block_rows()), X.shape[1] - 1)].copy()


def _python_row(Y, p, c0):
    return Y[p, c0:c0 + strip_width(Y)].reshape(-1, lanes(Y)).copy()


def _python_product(x, y):
    return x[:, None, None] * y[None, :, :]  # each scalar of the Column times every vector


def _python_store_block(out, r0, c0, acc, n_rows):
    out[r0:r0 + n_rows, c0:c0 + acc.shape[1] * acc.shape[2]] = acc[:n_rows].reshape(n_rows, -1)


def _python_block_squares(acc, n_rows):
    return (acc[:n_rows] ** 2).reshape(-1, acc.shape[2]).sum(axis=0).astype(acc.dtype)


def _python_transpose_tile(src, r0, c0, n_rows, dst, d0, e0):
    n = lanes(src)
    tile = np.zeros((n, n), src.dtype)
    tile[:min(n_rows, n)] = src[r0:r0 + min(n_rows, n), c0:c0 + n]
    dst[d0:d0 + n, e0:e0 + n] = tile.T


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


def _python_prefetch(a, k, j):
    pass


def _python_power_of_two(n):
    return np.ldexp(1.0, int(n))


zeros: Callable[..., Any]
_matrix_view: Callable[..., Any]
load: Callable[..., Any]
store: Callable[..., Any]
scale: Callable[..., Any]
fma: Callable[..., Any]
square_add: Callable[..., Any]
add: Callable[..., Any]
total: Callable[..., Any]
power_of_two: Callable[..., Any]
prefetch: Callable[..., Any]
zeros_block: Callable[..., Any]
zeros_narrow: Callable[..., Any]
down: Callable[..., Any]
across: Callable[..., Any]
row: Callable[..., Any]
outer: Callable[..., Any]
store_block: Callable[..., Any]
block_squares: Callable[..., Any]
transpose_tile: Callable[..., Any]
# the kernels run as plain Python: the same steps on NumPy rows
if getattr(config, "DISABLE_JIT"):  # noqa: B009 - set at run time, unknown to mypy
    zeros, load, store, scale, fma = (_python_zeros, _python_load, _python_store, _python_scale,
                                      _python_fma)
    square_add, add, total = _python_square_add, _python_add, _python_total
    power_of_two, prefetch = _python_power_of_two, _python_prefetch
    _matrix_view = _python_matrix
    transpose_tile = _python_transpose_tile
    down, across = _python_down, _python_across
    zeros_block = _python_sums(lambda: (host_profile().block_rows, host_profile().block_vectors))
    zeros_narrow = _python_sums(lambda: (host_profile().block_rows, 1))
    row, outer = _python_row, _python_product
    store_block, block_squares = _python_store_block, _python_block_squares
else:
    zeros, load, store, scale, fma = _zeros, _load, _store, _scale, _fma
    square_add, add, total = _square_add, _add, _total
    power_of_two, prefetch = _power_of_two, _prefetch
    _matrix_view = _matrix
    transpose_tile = _transpose_tile
    down, across = _down, _across
    zeros_block, zeros_narrow = _zeros_block, _zeros_narrow
    row, outer = _row, _product
    store_block, block_squares = _store_block, _block_squares
