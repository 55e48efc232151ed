"""Data across processes (MPI): each rank holds a shard of the data set. ``shard`` gives a rank
its contiguous slice of an ``.npy`` file as a read-only memmap, which Network.fit reads in place
(no copy, as any memmap). Needs mpi4py for a communicator (``pip install "nbbp[mpi]"``, which
brings MPICH's ``mpiexec``); ``import nbbp`` imports neither this module nor mpi4py.

    from mpi4py import MPI
    X = nbbp.distributed.shard("X.npy", MPI.COMM_WORLD)   # under mpiexec -n 4: a quarter each
"""

from __future__ import annotations

import os

import numpy as np

from ._collective import RankError

__all__ = ["RankError", "rows_of", "shard"]


def rows_of(n_rows: int, rank: int, size: int) -> tuple[int, int]:
    """The contiguous rows [start, stop) of rank ``rank`` of ``size``: n_rows // size each, the
    first n_rows % size ranks one more."""
    base, extra = divmod(n_rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def _read_shard(path, rank, size):
    """The shard as a read-only np.memmap of its rows alone (the header, then the slice's
    bytes: nothing else of the file is mapped)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:  # the header only: a mapping reads no page until one is touched
        whole = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not an .npy file nbbp reads ({error})") from None
    if not isinstance(whole, np.memmap):
        raise ValueError(f"{path} is not an .npy file (an .npz archive?)")
    shape, dtype, offset = whole.shape, whole.dtype, whole.offset
    if whole.ndim > 1 and not whole.flags.c_contiguous:
        raise ValueError(f"{path} is stored in Fortran order: a rank's rows are not contiguous "
                         "in it (save it from np.ascontiguousarray)")
    del whole
    if len(shape) == 0:
        raise ValueError(f"{path} holds a scalar, not rows")
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    if shape[0] < size:
        raise ValueError(f"{path} has {shape[0]} rows for {size} ranks: every rank needs one")
    start, stop = rows_of(shape[0], rank, size)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset + start * row_bytes,
                     shape=(stop - start, *shape[1:]))


def shard(path: str | os.PathLike, comm) -> np.ndarray:
    """This rank's contiguous slice of the rows of the ``.npy`` file at ``path``, as a
    read-only memmap that maps those rows alone (``rows_of``: as equal as can be, in rank
    order). Collective: every rank of ``comm`` (an mpi4py communicator) must call it, and an
    error on any rank (a missing or corrupt file, a Fortran-order or object array, fewer rows
    than ranks, rows of another shape or dtype than rank 0's) raises on every rank a
    ValueError naming the rank and the problem, so that none waits for another."""
    if not all(hasattr(comm, name) for name in ("Get_rank", "Get_size", "allgather")):
        raise TypeError(f"comm must be an mpi4py communicator; got {type(comm).__name__}")
    rank, size = comm.Get_rank(), comm.Get_size()
    result, problem, layout = None, None, None
    try:  # anything: a rank that left before the allgather would leave the others waiting
        result = _read_shard(path, rank, size)
        layout = (result.shape[1:], result.dtype.str)
    except Exception as error:
        problem = str(error) if isinstance(error, (OSError, ValueError)) else repr(error)
    reports = comm.allgather((problem, layout))
    failed = [(r, p) for r, (p, _) in enumerate(reports) if p is not None]
    if not failed:  # the ranks must read one data set: the same row shape and dtype
        first = reports[0][1]
        failed = [(r, (f"its file holds rows of shape {shape} and dtype {np.dtype(kind)}, rank "
                       f"0's of shape {first[0]} and dtype {np.dtype(first[1])}: the ranks "
                       "read different files"))
                  for r, (_, (shape, kind)) in enumerate(reports) if (shape, kind) != first]
    if failed:
        r, p = failed[0]
        more = f" (and {len(failed) - 1} more ranks)" if len(failed) > 1 else ""
        raise ValueError(f"nbbp.distributed.shard: rank {r} of {size}: {p}{more}")
    assert result is not None
    return result
