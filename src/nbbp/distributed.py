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
    start, stop = rows_of(shape[0], rank, size)
    if stop == start:
        return np.empty((0, *shape[1:]), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset + start * row_bytes,
                     shape=(stop - start, *shape[1:]))


def shard(path: str | os.PathLike, comm) -> np.ndarray:
    """This rank's contiguous slice of the rows of the ``.npy`` file at ``path``, as a
    read-only memmap that maps those rows alone (``rows_of``: as equal as can be, in rank
    order). Collective: every rank of ``comm`` (an mpi4py communicator) must call it, and an
    error on any rank (a missing or corrupt file, a Fortran-order or object array) raises on
    every rank a ValueError naming the rank and the problem, so that none waits for another."""
    if not all(hasattr(comm, name) for name in ("Get_rank", "Get_size", "allgather")):
        raise TypeError(f"comm must be an mpi4py communicator; got {type(comm).__name__}")
    rank, size = comm.Get_rank(), comm.Get_size()
    result, problem = None, None
    try:
        result = _read_shard(path, rank, size)
    except (OSError, ValueError) as error:
        problem = str(error)
    problems = comm.allgather(problem)
    failed = [(r, p) for r, p in enumerate(problems) if p is not None]
    if failed:
        r, p = failed[0]
        more = f" (and {len(failed) - 1} more ranks)" if len(failed) > 1 else ""
        raise ValueError(f"nbbp.distributed.shard: rank {r} of {size}: {p}{more}")
    assert result is not None
    return result
