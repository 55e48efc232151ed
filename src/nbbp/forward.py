"""Forward pass of one layer: z_i = sum_j w_ij a_j + b_i, a_i = f(z_i)."""

from numba import prange

from ._jit import PARALLEL_MIN_WORK, helper, jit, kernel, part
from ._simd import dot_cols, dot_rows, lanes, neuron_rows, pairs, sample_rows, store_dots, zeros_dots
from .activations import activate_rows

# A tile is 32 samples x 48 neurons: its 32 rows of A_prev stay in L2 while each block of rows
# of W is reused from L1 across the tile's blocks of samples. AMD EPYC (Zen 3), float32, 2
# threads, at 256x1024x1024: 140 GFLOP/s tiled against 65 with whole-batch sample blocks.
SAMPLE_TILE = 32
NEURON_TILE = 48


@part
def neuron_tile(n_samples, n_in, n_out):
    """Neurons per tile of an (n_samples, n_in) x (n_in, n_out) product: NEURON_TILE, except in
    a product for the thread pool (use_threads) over a batch of one sample tile. There the
    neurons are cut into tiles of NEURON_TILE or fewer, a multiple of the block's dot_cols
    neurons, of an even count where the neurons allow it, so that 2 threads get equal shares:
    at 32x784x128 the tiles of 48 were 48, 48 and 32, one thread doing twice the other's work
    (forward 60 -> 44 us). It depends on the shapes alone, never on the thread count; and each
    z_ki is computed by the same code whatever the width. A ``part``: inlined into its callers,
    its loop cost 2 s of a first fit.
    """
    step = dot_cols()
    if n_samples > SAMPLE_TILE or n_samples * n_in * n_out < PARALLEL_MIN_WORK:
        return NEURON_TILE // step * step
    n_blocks = (n_out + step - 1) // step
    n_tiles = max(2, (n_out + NEURON_TILE - 1) // NEURON_TILE)  # of at most NEURON_TILE
    n_tiles += n_tiles % 2
    width = step * ((n_blocks + n_tiles - 1) // n_tiles)
    while ((n_out + width - 1) // width) % 2 == 1 and width > step:
        n_tiles += 2  # e.g. 2048 neurons: 44 tiles of 48 are 43; 46 of 45 are 46
        width = step * ((n_blocks + n_tiles - 1) // n_tiles)
    return width


@helper
def n_tiles(n_samples, n_out, width):
    """The number of tiles of SAMPLE_TILE samples x ``width`` neurons over (n_samples, n_out)."""
    return ((n_samples + SAMPLE_TILE - 1) // SAMPLE_TILE) * ((n_out + width - 1) // width)


@helper
def _forward_block(A_prev, W, Z, k0, i0, n_rows, n_cols):
    """z_ki = sum_j w_ij a_kj for the block's n_rows <= dot_rows samples k from k0 and n_cols <=
    dot_cols neurons i from i0: one Vector of sums per (k, i) over the lanes of j, then the
    sum of its lanes."""
    n_in = A_prev.shape[1]
    step = lanes(Z)
    acc = zeros_dots(Z)
    for j in range(0, n_in, step):  # the last vector, past n_in, reads zeros
        acc += pairs(sample_rows(A_prev, k0, j, n_in - j), neuron_rows(W, i0, j, n_in - j))  # z_ki += a_kj w_ij
    store_dots(Z, k0, i0, acc, n_rows, n_cols)


@part
def _forward_tile(tile, A_prev, W, Z, width):
    """z_ki = sum_j w_ij a_kj over one tile of SAMPLE_TILE samples x ``width`` neurons (the
    caller's neuron_tile), in blocks of dot_rows x dot_cols."""
    n_samples, n_out = Z.shape
    n_neuron_tiles = (n_out + width - 1) // width
    k_start = tile // n_neuron_tiles * SAMPLE_TILE
    i_start = tile % n_neuron_tiles * width
    k_end = min(k_start + SAMPLE_TILE, n_samples)
    i_end = min(i_start + width, n_out)
    for i0 in range(i_start, i_end, dot_cols()):
        for k0 in range(k_start, k_end, dot_rows()):
            _forward_block(A_prev, W, Z, k0, i0, min(dot_rows(), k_end - k0),
                           min(dot_cols(), i_end - i0))


@helper
def _bias_and_activate(Z, b, has_bias, code, A):
    """z_ki += b_i, then a_k = f(z_k), for every sample k."""
    if has_bias:
        for k in range(Z.shape[0]):
            for i in range(Z.shape[1]):
                Z[k, i] += b[i]
    activate_rows(Z, 0, Z.shape[0], code, A)


@kernel
def forward_layer(A_prev, W, b, has_bias, code, Z, A, parallel):
    """z_ki = sum_j w_ij a_kj + b_i, then a_k = f(z_k), for every sample k.

    A_prev: (n_samples, n_in); W: (n_out, n_in); b: (n_out,) (ignored unless ``has_bias``).
    Writes Z and A, (n_samples, n_out), in place. Parallel (if ``parallel``) over tiles of
    samples x neurons; then b and f serially.
    """
    n_samples, n_out = Z.shape
    width = neuron_tile(n_samples, A_prev.shape[1], n_out)
    if parallel:
        for tile in prange(n_tiles(n_samples, n_out, width)):
            _forward_tile(tile, A_prev, W, Z, width)
    else:
        for tile in range(n_tiles(n_samples, n_out, width)):
            _forward_tile(tile, A_prev, W, Z, width)
    # O(n_samples n_out) work, on one thread: a second parallel loop here and in the delta rule
    # cost a first fit about 4 s of compile, for about 1.5% of a W4 epoch (256x1024 layers).
    _bias_and_activate(Z, b, has_bias, code, A)


# O(width) work per sample, serial like deltas.output_delta: as a parallel kernel it took
# 7.8 s of a first fit's compile (of 61), for about 2 us a layer at 128x256 on 2 threads.
@jit()
def add_skip_and_activate(Z, A_skip, has_skip, code, A):
    """A residual connection: z_ki <- z_ki + a_ki(s), the activation of an earlier layer s of
    the same width (if ``has_skip``; else A_skip is not read), then a_k = f(z_k).

    Z, A_skip, A: (n_samples, width); writes Z and A in place. Serial over samples k.
    """
    if has_skip:
        for k in range(Z.shape[0]):
            for i in range(Z.shape[1]):
                Z[k, i] += A_skip[k, i]
    activate_rows(Z, 0, Z.shape[0], code, A)
