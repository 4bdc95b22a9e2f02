#!/usr/bin/env python3
"""numpy's side of make bench's sort sweep: numpy.sort on one thread over types, orders, sizes.

  python sort_sweep.py --cases 10000000:i64:uniform,10000000:f64:sorted --dir DIR
                       [--save] [--repeat 3] [--json]

Issue 16 asks hybridd's serial sort to beat numpy.sort per core on every element type and
never to lose on other orders or sizes. For every case N:TYPE:ORDER this draws the array
from a seed of its own (the same array in every run), with --save writes it to
DIR/sweep-N-TYPE-ORDER.npy (with the SHA-256 of its data) for hybridd to sort the same bytes
(`hybridctl compare sort --input`), and times numpy's sort on it, in place (ndarray.sort):
one untimed warm-up, then --repeat timed runs on a fresh copy each.

TYPE: f64 f32 i64 i32 u64 u32.  ORDER:
  uniform     floats in [0, 1); integers over the type's whole range
  normal      standard normal floats; integers: normal * 2^20, rounded (absolute, unsigned)
  sorted      uniform, ascending
  reversed    uniform, descending
  few-unique  16 distinct values, 0..15
  missing     uniform, one element in 10 missing: numpy's NaN for floats, -1 for signed
              integers, the type's largest for unsigned ones (sentinels such data holds)
  counts      integers 0..999 (floats: integer-valued, as counts stored as float64 are)
  repeats     1000 uniform values (as above), each element one of them at random: data of
              a fixed set of values, such as prices or measurements at a fixed precision
  zipf        Zipf's law, numpy's zipf(1.5) (38% of the elements 1, a long tail; integers
              clipped to the type's largest): word counts, file sizes, sales per item
"""

import argparse
import hashlib
import json
import os
import statistics
import sys
import time

import numpy as np

SEED = 20261204
TYPES = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "i32": np.int32,
         "u64": np.uint64, "u32": np.uint32}
ORDERS = ("uniform", "normal", "sorted", "reversed", "few-unique", "missing", "counts",
          "repeats", "zipf")


def uniform(rng, n, dt):
    if np.issubdtype(dt, np.floating):
        return rng.random(n, dtype=dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)


def draw(n, tname, order):
    """The case's array, the same on every call."""
    dt = TYPES[tname]
    rng = np.random.default_rng([SEED, n, list(TYPES).index(tname), ORDERS.index(order)])
    if order == "uniform":
        return uniform(rng, n, dt)
    if order == "normal":
        x = rng.standard_normal(n)
        if np.issubdtype(dt, np.floating):
            return x.astype(dt)
        x = np.rint(x * (1 << 20))
        return (np.abs(x) if np.issubdtype(dt, np.unsignedinteger) else x).astype(dt)
    if order == "few-unique":
        return rng.integers(0, 16, n).astype(dt)
    if order == "counts":
        return rng.integers(0, 1000, n).astype(dt)
    if order == "repeats":
        return uniform(rng, 1000, dt)[rng.integers(0, 1000, n)]
    if order == "zipf":
        x = rng.zipf(1.5, n)
        if not np.issubdtype(dt, np.floating):
            x = np.minimum(x, np.iinfo(dt).max)
        return x.astype(dt)
    if order == "missing":
        a = uniform(rng, n, dt)
        gone = rng.random(n) < 0.1
        if np.issubdtype(dt, np.floating):
            a[gone] = np.nan
        else:
            a[gone] = np.iinfo(dt).max if np.issubdtype(dt, np.unsignedinteger) else -1
        return a
    a = np.sort(uniform(rng, n, dt))
    return a if order == "sorted" else a[::-1].copy()


def parse_cases(text):
    out = []
    for c in text.split(","):
        parts = c.split(":")
        if len(parts) != 3 or parts[1] not in TYPES or parts[2] not in ORDERS:
            raise SystemExit("sort_sweep: bad case %r (N:TYPE:ORDER, TYPE in %s, ORDER in %s)"
                             % (c, " ".join(TYPES), " ".join(ORDERS)))
        out.append((int(float(parts[0])), parts[1], parts[2]))
    return out


def measure(a, repeat):
    """numpy's sort's seconds on a fresh copy of a, in place (ndarray.sort: np.sort would
    also allocate and copy its result, which is not the sort's work, and whose page faults
    depend on the allocator's state: 10^5 f64 took 465 us in place and 505-740 us through
    np.sort): one warm-up, then repeat runs."""
    times = []
    for i in range(repeat + 1):
        work = a.copy()
        t0 = time.perf_counter()
        work.sort()
        t = time.perf_counter() - t0
        if i:
            times.append(t)
        del work
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", required=True, help="N:TYPE:ORDER,...")
    ap.add_argument("--dir", required=True, help="where the arrays are (or are saved)")
    ap.add_argument("--save", action="store_true", help="save each array for hybridd")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    rows = []
    for n, tname, order in parse_cases(a.cases):
        arr = draw(n, tname, order)
        path = os.path.abspath(os.path.join(a.dir, "sweep-%d-%s-%s.npy" % (n, tname, order)))
        row = {"n": n, "dtype": tname, "dist": order, "path": path, "sha256": None}
        if a.save:
            np.save(path, arr)
            row["sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
        times = measure(arr, a.repeat)
        row.update({"median_s": statistics.median(times), "min_s": min(times),
                    "max_s": max(times), "times_s": times})
        rows.append(row)
        del arr
    doc = {"tool": "bench/lesson/sort_sweep.py", "numpy": np.__version__, "repeat": a.repeat,
           "rows": rows}
    if a.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for r in rows:
            print("%10d %-4s %-10s %10.3f ms" % (r["n"], r["dtype"], r["dist"],
                                                 r["median_s"] * 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
