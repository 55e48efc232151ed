"""Training on a memmap larger than the memory the process may use (not an asv benchmark: it
needs a cgroup, and writes GBs).

    sudo python bench/memmap_training.py --limit-mib 1024 --data-gib 2.5

writes a float32 .npy of W2's shape (784 features, 10 classes) of --data-gib GiB, then trains
one epoch (in order, or with --shuffle shuffled) of 784-128-64-10 (batch 256, float32) on
``np.load(path, mmap_mode="r")`` in a child process confined to a cgroup (v1 memory controller)
of --limit-mib MiB. The page
cache of the file is charged to the cgroup and reclaimed under the limit; a copy of the data
would not fit, and the kernel would kill the child. Reports whether the epoch finished, its
time, the cgroup's peak usage and the child's peak resident memory (VmHWM, file pages
included) and anonymous memory at the end (RssAnon). Without a writable cgroup it runs
unconfined and says so.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

CGROUP = "/sys/fs/cgroup/memory"

CHILD = """
import sys, time
import numpy as np
import nbbp
X = np.load(sys.argv[1], mmap_mode=None if sys.argv[4] == "in memory" else "r")
y = np.load(sys.argv[2], mmap_mode="r")
net = nbbp.Network([784, 128, 64, 10], dtype=np.float32, seed=0)
net.fit(X[:512], y[:512], epochs=1, batch_size=256)  # compile first
start = time.perf_counter()
net.fit(X, y, epochs=1, batch_size=256, learning_rate=0.01, shuffle=sys.argv[3] == "shuffle")
elapsed = time.perf_counter() - start
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(f"{elapsed:.1f} {status['VmHWM'].split()[0]} {status['RssAnon'].split()[0]}")
"""


def write_data(folder, gib):
    rows = int(gib * 2**30 / (784 * 4))
    with open(os.path.join(folder, "X.npy"), "wb+") as X:
        import numpy as np

        header = np.lib.format.header_data_from_array_1_0(np.empty((0, 784), np.float32))
        header["shape"] = (rows, 784)
        np.lib.format.write_array_header_1_0(X, header)
        rng = np.random.default_rng(0)
        for start in range(0, rows, 65536):  # 200 MB at a time
            X.write(rng.standard_normal((min(65536, rows - start), 784),
                                        dtype=np.float32).tobytes())
    np.save(os.path.join(folder, "y.npy"), rng.integers(0, 10, size=rows))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-mib", type=int, default=1024)
    parser.add_argument("--data-gib", type=float, default=2.5)
    parser.add_argument("--shuffle", action="store_true", help="shuffle the epoch (random reads "
                        "of rows: bound by the disk once the file outgrows the page cache)")
    parser.add_argument("--no-mmap", action="store_true", help="load X into memory instead "
                        "(what a copy of it costs: under the limit, the kernel kills the child)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the epoch may take")
    parser.add_argument("--folder", default=None, help="an empty folder to write the data in "
                        "(default: a temporary one); the files are removed after")
    args = parser.parse_args()
    if args.folder is not None:
        taken = [name for name in ("X.npy", "y.npy")
                 if os.path.exists(os.path.join(args.folder, name))]
        if taken:
            parser.error(f"--folder {args.folder} already holds {', '.join(taken)}: give an "
                         "empty folder")
    folder = args.folder or tempfile.mkdtemp(prefix="nbbp-memmap-")
    try:
        return run(args, folder)
    finally:
        for name in ("X.npy", "y.npy"):  # several GB: never left behind
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        if args.folder is None:
            os.rmdir(folder)


def run(args, folder):
    rows = write_data(folder, args.data_gib)
    group = os.path.join(CGROUP, f"nbbp-memmap-{os.getpid()}")
    confined = False
    try:
        os.mkdir(group)
        with open(os.path.join(group, "memory.limit_in_bytes"), "w") as f:
            f.write(str(args.limit_mib * 2**20))
        confined = True
    except OSError as error:
        print(f"no cgroup ({error}): running unconfined")

    def enter():
        if confined:
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    # The file's pages, cached as it was written, are charged to this process: drop them, so
    # that the child reads from disk and its cgroup is charged for what it maps.
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
    except OSError as error:
        print(f"could not drop the page cache ({error}): the file's pages stay cached, and "
              "are not charged to the child's cgroup")
    started = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-c", CHILD, os.path.join(folder, "X.npy"),
                                 os.path.join(folder, "y.npy"),
                                 "shuffle" if args.shuffle else "in order",
                                 "in memory" if args.no_mmap else "mapped"],
                                capture_output=True, text=True, preexec_fn=enter,
                                timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        result = subprocess.CompletedProcess([], -1, "", f"timed out after {args.timeout:g} s")
    wall = time.perf_counter() - started
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                         text=True, check=False).stdout.split(":", 1)[-1].strip()
    print(f"CPU: {cpu}; data: {rows:,} x 784 float32 = {args.data_gib:g} GiB on disk; "
          f"limit: {args.limit_mib} MiB" + ("" if confined else " (not enforced)")
          + f"; {'shuffled' if args.shuffle else 'in order'}")
    if result.returncode != 0:
        print(f"the child failed (exit {result.returncode}; -9 is the kernel's OOM kill) after "
              f"{wall:.1f} s:\n{result.stderr[-2000:]}")
    else:
        epoch, hwm, anon = result.stdout.split()
        line = (f"one epoch in {epoch} s ({rows / float(epoch):,.0f} samples/s); child peak "
                f"resident {int(hwm) / 1024:,.0f} MiB (file pages included), anonymous at the "
                f"end {int(anon) / 1024:,.0f} MiB")
        if confined:
            with open(os.path.join(group, "memory.max_usage_in_bytes")) as f:
                line += f"; cgroup peak {int(f.read()) / 2**20:,.0f} MiB"
        print(line)
    if confined:
        with open(os.path.join(group, "cgroup.procs")) as f:
            pids = f.read().split()
        for pid in pids:
            os.kill(int(pid), 9)  # a timed-out child's own children
        time.sleep(0.5)
        os.rmdir(group)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
