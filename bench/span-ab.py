#!/usr/bin/env python3
"""span-ab: a sort across MPI ranks, two builds side by side (docs/scale-out.md).

Starts `mpirun -np N hybridd --mpi` for each build, in temporary directories, and submits to
each in turn (A B A B ...) `hybridctl --json sort -n N --dtype f64 --dist D --threads 1
--repeat 5 --warmup 1 --ranks all`. Prints, per build, the median and quartiles of the
sample+partition phase (from the asking rank's `sort across N ranks` log lines, one per
timed run and warm-up) and the median of the invocations' median span times.

    python3 bench/span-ab.py --a BUILD_DIR --b BUILD_DIR [--ranks 3] [--rounds 7]
                             [-n 1e7] [--dist normal] [--input IN.npy] [--keep-mib M]
                             [--mpirun mpirun]

With --input, each build sorts that `.npy` across the ranks instead (`sort --input IN.npy
--output OUT.npy`, every rank reading its slice and writing its run), and the report gives
the medians of the ranks' records (compute, exchange, I/O) over every rank and round.

A build directory holds daemon/hybridd and client/hybridctl (a CMake build of hybridd). As
root, mpirun needs --allow-run-as-root, which this passes. Standard library only."""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import MpiWorld as World, median, quartiles  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="the first build directory")
    ap.add_argument("--b", required=True, help="the second build directory")
    ap.add_argument("--ranks", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("-n", default="1e7")
    ap.add_argument("--dist", default="normal")
    ap.add_argument("--input", help="a .npy to sort across the ranks, file to file")
    ap.add_argument("--keep-mib", type=int,
                    help="limits.span_keep_bytes for both builds, in MiB (default: theirs)")
    ap.add_argument("--mpirun", default="mpirun")
    args = ap.parse_args()
    keep = args.keep_mib << 20 if args.keep_mib is not None else None
    what = ["--input", os.path.abspath(args.input)] if args.input else [
        "-n", args.n, "--dtype", "f64", "--dist", args.dist]
    job = ["--json", "sort"] + what + ["--threads", "1", "--repeat", "5", "--warmup", "1",
                                       "--ranks", "all"]
    records = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as ta, tempfile.TemporaryDirectory() as tb:
        worlds = {"a": World(args.mpirun, args.a, args.ranks, ta, keep),
                  "b": World(args.mpirun, args.b, args.ranks, tb, keep)}
        spans = {"a": [], "b": []}
        try:
            for _ in range(args.rounds):
                for name, w in worlds.items():
                    out = ["--output", os.path.join(w.tmp, "out.npy")] if args.input else []
                    r = w.ctl(*(job + out))
                    if r.returncode != 0:
                        raise SystemExit("%s: %s" % (name, r.stderr.strip()))
                    got = json.loads(r.stdout)
                    spans[name].append(got["median_ns"] / 1e6)
                    records[name] += got.get("per_rank") or []
            time.sleep(2)  # mpirun forwards the ranks' log lines on its own time
        finally:
            for w in worlds.values():
                w.stop()
        print("%d ranks, %s, %d rounds in turns" % (
            args.ranks, args.input or "%s f64 %s" % (args.n, args.dist), args.rounds))
        for name, w in worlds.items():
            if args.input:
                fig = {k: median([x[k] / 1e6 for x in records[name]])
                       for k in ("compute_ns", "exchange_ns", "io_ns")}
                print("%s (%s): a rank's compute %.1f ms, exchange %.1f, I/O %.1f (medians of "
                      "%d records); span median %.1f ms (%.1f-%.1f)" % (
                          name, getattr(args, name), fig["compute_ns"], fig["exchange_ns"],
                          fig["io_ns"], len(records[name]), median(spans[name]),
                          min(spans[name]), max(spans[name])))
                continue
            parts = w.partitions()
            q = quartiles(parts) if parts else (0, 0, 0)
            print("%s (%s): sample+partition median %.1f ms (quartiles %.1f-%.1f, %d spans); "
                  "span median %.1f ms (%.1f-%.1f)" % (
                      name, getattr(args, name), q[1], q[0], q[2], len(parts),
                      median(spans[name]), min(spans[name]), max(spans[name])))


if __name__ == "__main__":
    main()
