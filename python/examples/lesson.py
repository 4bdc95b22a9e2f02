#!/usr/bin/env python3
"""The lesson's experiments from Python, next to hybridd's backends, in one table.

    python3 python/examples/lesson.py [--socket PATH] [--pi-n N] [--sort-n N] [--threads 1,2]

pi: a Monte Carlo estimate in pure Python threads (the GIL lets one run at a time), in numba
nogil threads when numba is installed, then on each of hybridd's backends.  sort: numpy.sort
of one array per thread (numpy releases the GIL while it sorts), then hybridd's sort of the
same data on each backend.  Every row gives the median of --repeat runs and its throughput.
"""
import argparse
import random
import statistics
import sys
import threading
import time

import numpy as np

import hybridd


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def in_threads(work, threads):
    """Runs work(i) in `threads` threads at once and waits for them."""
    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def pi_python(n, seed):
    rng = random.Random(seed)
    hits = 0
    for _ in range(n):
        x, y = rng.random(), rng.random()
        hits += x * x + y * y <= 1.0
    return hits


def numba_pi():
    """numba's nogil pi kernel, or None without numba."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(nogil=True, cache=False)
    def pi_numba(n, seed):
        np.random.seed(seed)
        hits = 0
        for _ in range(n):
            x, y = np.random.random(), np.random.random()
            if x * x + y * y <= 1.0:
                hits += 1
        return hits
    pi_numba(10, 1)                     # compile outside the timing
    return pi_numba


def lesson_rows(args):
    rows = []
    kernels = [("pure Python threads", pi_python), ("numba nogil threads", numba_pi())]
    for name, kernel in kernels:
        if kernel is None:
            continue
        for t in args.threads:
            s = timed(lambda: in_threads(lambda i: kernel(args.pi_n // t, i + 1), t),
                      args.repeat)
            rows.append(("pi", name, "-", t, args.pi_n, s))
    data = np.random.default_rng(1).random(args.sort_n)
    for t in args.threads:
        arrays = [data.copy() for _ in range(t)]
        s = timed(lambda: in_threads(lambda i: np.sort(arrays[i]), t), args.repeat)
        rows.append(("sort", "numpy.sort, one array per thread", "-", t, args.sort_n * t,
                     s))
    return rows, data


def hybridd_rows(c, args, data):
    rows = []
    for job, kw in (("pi", {"n": args.pi_n}), ("sort", {"a": data})):
        cmp = c.compare(job, threads=args.threads, repeat=args.repeat, **kw)
        for r in cmp:
            backend = r.backend + ("/" + r.transport if r.transport else "")
            rows.append((job, "hybridd", backend, r.threads, r.n * r.copies, r.seconds))
    return rows


def print_table(rows):
    head = ("job", "who", "backend", "threads", "n", "median ms", "M/s")
    lines = [head] + [(j, w, b, str(t), str(n), "%.3f" % (s * 1e3), "%.1f" % (n / s / 1e6))
                      for j, w, b, t, n, s in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", help="hybridd's socket (default: as hybridctl finds it)")
    p.add_argument("--pi-n", type=int, default=10 ** 6, help="pi samples (default 10^6)")
    p.add_argument("--sort-n", type=int, default=10 ** 6,
                   help="float64 elements to sort (default 10^6)")
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--repeat", type=int, default=3, help="runs per row (default 3)")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    rows, data = lesson_rows(args)
    with hybridd.connect(args.socket) as c:
        rows += hybridd_rows(c, args, data)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
