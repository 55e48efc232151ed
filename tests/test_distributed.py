"""nbbp.distributed.shard under real MPI ranks (mpiexec, MPICH on loopback): each rank maps its
contiguous slice of an .npy file alone, the slices tile the file, a network trains on a shard
in place, and an error on one rank raises on every rank, naming it."""

import itertools
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nbbp
from nbbp import distributed

MPI = pytest.importorskip("mpi4py.MPI")


def mpiexec():
    found = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = found if os.path.exists(found) else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (pip install 'nbbp[mpi]')")
    return found


def run_ranks(n, script, *args):
    result = subprocess.run([mpiexec(), "-n", str(n), sys.executable, "-c", script,
                             *map(str, args)], capture_output=True, text=True, timeout=300,
                            check=False)
    return result


@pytest.mark.parametrize("n_rows, size", [(10, 3), (3, 5), (0, 2), (1000, 7)])
def test_rows_tile_the_file_in_rank_order(n_rows, size):
    spans = [distributed.rows_of(n_rows, r, size) for r in range(size)]
    assert spans[0][0] == 0
    assert spans[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    lengths = [stop - start for start, stop in spans]
    assert max(lengths) - min(lengths) <= 1


def test_one_rank_gets_the_whole_file_and_trains_on_it_in_place(tmp_path, rng):
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=300)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    Xs, ys = (distributed.shard(tmp_path / name, MPI.COMM_SELF) for name in ("X.npy", "y.npy"))
    assert isinstance(Xs, np.memmap)
    assert not Xs.flags.writeable
    assert_array_equal(Xs, X)
    a, b = (nbbp.Network([5, 4, 3], dtype=np.float32, seed=2) for _ in range(2))
    a.fit(X, y, epochs=2, batch_size=30)
    b.fit(Xs, ys, epochs=2, batch_size=30)
    assert_array_equal(a._theta, b._theta)


SHARDS = """
import sys
import numpy as np
from mpi4py import MPI
from nbbp import distributed
comm = MPI.COMM_WORLD
# rank argv[2] reads argv[3] instead (a file only it sees)
path = sys.argv[1] if comm.rank != int(sys.argv[2]) else sys.argv[3]
report = open(f"{sys.argv[1]}.rank{comm.rank}.txt", "w")  # ranks share stdout: a file each
try:
    part = distributed.shard(path, comm)
except ValueError as error:
    report.write(f"error: {error}")
    sys.exit(0)
parts = comm.gather(np.asarray(part), root=0)
if comm.rank == 0:
    np.save(sys.argv[1] + ".joined.npy", np.concatenate(parts))
report.write(f"rows {len(part)} offset {part.offset}")
"""


def reports(path, n):
    return [(path.parent / f"{path.name}.rank{r}.txt").read_text().split() for r in range(n)]


def test_the_ranks_shards_tile_the_file(tmp_path, rng):
    X = rng.normal(size=(1001, 6))
    np.save(tmp_path / "X.npy", X)
    result = run_ranks(3, SHARDS, tmp_path / "X.npy", -1, "")
    assert result.returncode == 0, result.stderr
    lines = reports(tmp_path / "X.npy", 3)
    assert [int(line[1]) for line in lines] == [334, 334, 333]
    header = np.load(tmp_path / "X.npy", mmap_mode="r").offset
    # each rank maps its own rows alone, from where they start in the file
    assert [int(line[3]) for line in lines] == [header + r * 8 * 6 for r in (0, 334, 668)]
    assert_array_equal(np.load(tmp_path / "X.npy.joined.npy"), X)


@pytest.mark.parametrize("case", ["missing", "other shape", "other dtype", "header overflows",
                                  "fewer rows than ranks"])
def test_an_error_on_one_rank_raises_on_every_rank(tmp_path, rng, case):
    np.save(tmp_path / "X.npy", rng.normal(size=(20, 2)))
    other = tmp_path / "other.npy"
    expected = {"missing": "other.npy: no such file",
                "other shape": "its file holds rows of shape (3,) and dtype float64, rank 0's "
                               "of shape (2,) and dtype float64: the ranks read different files",
                "other dtype": "dtype float32, rank 0's of shape (2,) and dtype float64",
                "header overflows": "OverflowError",
                "fewer rows than ranks": "has 2 rows for 3 ranks: every rank needs one"}[case]
    if case == "other shape":
        np.save(other, rng.normal(size=(20, 3)))
    elif case == "other dtype":
        np.save(other, rng.normal(size=(20, 2)).astype(np.float32))
    elif case == "header overflows":  # a header whose row count does not fit a C long
        np.save(other, np.zeros((1, 2)))
        data = other.read_bytes().replace(b"(1, 2)", b"(" + str(2**70).encode() + b", 2)")
        other.write_bytes(data)
    elif case == "fewer rows than ranks":
        np.save(tmp_path / "X.npy", rng.normal(size=(2, 2)))
        other = tmp_path / "X.npy"
    result = run_ranks(3, SHARDS, tmp_path / "X.npy", 1, other)  # rank 1 reads ``other``
    assert result.returncode == 0, result.stderr
    for line in reports(tmp_path / "X.npy", 3):
        text = " ".join(line)
        where = "rank 0 of 3" if case == "fewer rows than ranks" else "rank 1 of 3"
        assert text.startswith(f"error: nbbp.distributed.shard: {where}: "), text
        assert expected in text, text


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator; got int"):
        distributed.shard(tmp_path / "X.npy", 3)
    np.save(tmp_path / "F.npy", np.asfortranarray(np.ones((4, 3))))
    with pytest.raises(ValueError, match=r"rank 0 of 1: .*F\.npy is stored in Fortran order"):
        distributed.shard(tmp_path / "F.npy", MPI.COMM_SELF)
    np.save(tmp_path / "O.npy", np.array([{}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"O\.npy is not an \.npy file nbbp reads"):
        distributed.shard(tmp_path / "O.npy", MPI.COMM_SELF)
