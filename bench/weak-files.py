#!/usr/bin/env python3
"""weak-files: weak scaling of a sort of .npy paths across MPI ranks on this machine
(docs/scale-out.md, "The spread input, measured here").

For each rank count P, starts `mpirun -np P hybridd --mpi` and writes a .npy of P x N keys
(f64 from a normal distribution, the same seed), then submits to each job in turn, round by
round, `hybridctl --json sort --input IN.npy --output OUT.npy --threads 1 --repeat 5
--warmup 1 --ranks all`: every rank reads its slice, partitions it, exchanges buckets,
sorts its bucket and writes its run. Prints, per P, the median of the invocations' medians
and its range, the ranks' records (compute, exchange, I/O: medians over every rank and
round) and the efficiency T(1) / T(P), the same keys a rank at every P.

    python3 bench/weak-files.py --build BUILD_DIR [--ranks 1,2] [-n 1e7] [--rounds 7]
                                [--dir DIR] [--mpirun mpirun]

The inputs go to --dir (default: a temporary directory; 8 bytes a key, P x N keys each).
As root, mpirun needs --allow-run-as-root, which this passes. Standard library only."""

import argparse
import array
import json
import os
import random
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import MpiWorld, median  # noqa: E402


def write_normal_npy(path, n, seed):
    """n f64 from a normal distribution as a .npy 1.0 file, as numpy writes it."""
    rnd = random.Random(seed)
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }" % n
    head += " " * (63 - (10 + len(head)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode())
        step = 1 << 20
        for at in range(0, n, step):
            a = array.array("d", (rnd.gauss(0.0, 1.0) for _ in range(min(step, n - at))))
            if sys.byteorder != "little":
                a.byteswap()
            f.write(a.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="a build directory of hybridd")
    ap.add_argument("--ranks", default="1,2", help="rank counts, e.g. 1,2")
    ap.add_argument("-n", default="1e7", help="keys a rank")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", help="where the inputs go (default: a temporary directory)")
    ap.add_argument("--mpirun", default="mpirun")
    args = ap.parse_args()
    per = int(float(args.n))
    counts = [int(x) for x in args.ranks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        where = args.dir or tmp
        inputs = {}
        for p in counts:
            inputs[p] = os.path.join(where, "weak-%d-%d.npy" % (p, per))
            if not os.path.exists(inputs[p]):
                write_normal_npy(inputs[p], p * per, 16)
        dirs = {p: tempfile.TemporaryDirectory() for p in counts}
        worlds, spans, records = {}, {p: [] for p in counts}, {p: [] for p in counts}
        try:
            for p in counts:
                worlds[p] = MpiWorld(args.mpirun, args.build, p, dirs[p].name)
            for _ in range(args.rounds):
                for p in counts:
                    r = worlds[p].ctl("--json", "sort", "--input", inputs[p], "--output",
                                      os.path.join(dirs[p].name, "out.npy"), "--threads", "1",
                                      "--repeat", "5", "--warmup", "1", "--ranks", "all")
                    if r.returncode != 0:
                        raise SystemExit("%d ranks: %s" % (p, r.stderr.strip()))
                    got = json.loads(r.stdout)
                    spans[p].append(got["median_ns"] / 1e6)
                    records[p] += got.get("per_rank") or []
        finally:
            for w in worlds.values():
                w.stop()
            for d in dirs.values():
                d.cleanup()
    print("%d keys a rank, f64 normal, file to file, %d rounds in turns" % (per, args.rounds))
    base = median(spans[counts[0]]) if counts[0] == 1 else None
    for p in counts:
        t = median(spans[p])
        line = "%d rank(s): span median %.1f ms (%.1f-%.1f)" % (p, t, min(spans[p]),
                                                                  max(spans[p]))
        if records[p]:
            fig = {k: median([x[k] / 1e6 for x in records[p]])
                   for k in ("compute_ns", "exchange_ns", "io_ns")}
            line += "; a rank's compute %.1f ms, exchange %.1f, I/O %.1f" % (
                fig["compute_ns"], fig["exchange_ns"], fig["io_ns"])
        if base:
            line += "; efficiency %.2f" % (base / t)
        print(line)


if __name__ == "__main__":
    main()
