#!/usr/bin/env python3
"""Reference side of hybridd's benchmarks: the lesson's own experiment, in Python.

The lesson (threading and multiprocessing) estimates pi by Monte Carlo in pure
Python, numpy and numba, runs two copies at once in two threads, and shows that
only code that releases the GIL (numba with nogil=True, numpy.sort) gets faster.
This script repeats that experiment with timings that hybridd's own benchmark
can be put next to.

  python lesson.py --pi-n 10000000 --sort-n 10000000 --dtype f64 --repeat 5 --json

Every variant runs once untimed (warm-up; numba compiles there, and the compile
time is reported separately), then --repeat timed runs.  A "threads: 2" variant
starts two copies of the same job in two threading.Thread objects and times
from the first start to the last join, as the lesson does; "threads: 1" calls
the job directly.  Throughput counts the items of all copies.

Notes on faithfulness to the lesson:
  * pure Python uses random.random() (one Random instance per copy, seeded),
    and at most --pure-n samples, because it runs at a few M samples/s;
  * the numpy pi draws its points in chunks of --chunk samples (the lesson
    draws all n at once, which needs 16 bytes per sample) from one
    numpy.random.Generator per copy, so two threads do not share a lock;
  * numba's random.random() has per-thread state; each call seeds it;
  * --dtype applies to the sort arrays (uniform [0, 1) values); each run sorts
    fresh copies in place (ndarray.sort, the copies made before the clock
    starts), so that the time is numpy's sort alone, as hybridd's is its own:
    np.sort(a) would add allocating and copying its result;
  * --e2e-input IN.npy --e2e-output OUT.npy times the path a numpy user
    takes from file to file, np.save(OUT, np.sort(np.load(IN))), each run
    in an interpreter of its own and timed inside it (its start and imports
    excluded): the row `hybridctl sort --input --output` is set against
    (variant "e2e-numpy", job "e2e");
  * --save-sort-input FILE.npy saves the array that the one-thread sort times
    (the first of the --threads arrays) with numpy.save, so that hybridd can
    sort the same bytes (`hybridctl compare sort --input FILE.npy`); the JSON
    names the file and the SHA-256 of the array's data either way.

Runs on numpy 1.17 and later (default_rng, Generator.random(dtype=)), numba
optional: `make bench` also runs the sort part under numpy 1.24.  numpy is
optional too: without it only the pure-Python pi runs (the sort and the numpy
and numba pi are skipped, and the JSON says so), which is how `make bench` times
CPython's threads under the distribution's own interpreter (Debian's
/usr/bin/python3 has no numpy unless python3-numpy is installed).
"""

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time

try:
    import numpy as np
except ImportError:  # still useful without numpy: only pure-Python pi runs
    np = None

try:
    import numba
except ImportError:  # still useful without numba: the numba rows are skipped
    numba = None

SEED = 20261125


# ----------------------------------------------------------------- pi jobs

def calc_pi(n, seed):
    """Pure Python: the lesson's loop, with random.random() in [0, 1)."""
    rnd = random.Random(seed).random
    m = 0
    for _ in range(n):
        x = rnd()
        y = rnd()
        if x * x + y * y < 1.0:
            m += 1
    return 4.0 * m / n


def calc_pi_numpy(n, seed, chunk=1 << 20):
    """numpy: draw points in blocks, count those inside the quarter circle."""
    rng = np.random.default_rng(seed)
    m = 0
    left = n
    while left > 0:
        k = min(chunk, left)
        pts = rng.random((2, k))
        m += int(np.count_nonzero((pts * pts).sum(axis=0) < 1.0))
        left -= k
    return 4.0 * m / n


def _pi_loop(n, seed):
    random.seed(seed)
    m = 0
    for _ in range(n):
        x = random.random()
        y = random.random()
        if x * x + y * y < 1.0:
            m += 1
    return 4.0 * m / n


if numba is not None:
    calc_pi_numba = numba.njit(_pi_loop)
    calc_pi_nogil = numba.njit(nogil=True)(_pi_loop)
else:
    calc_pi_numba = calc_pi_nogil = None


# ---------------------------------------------------------------- running

def run_copies(fn, args_per_copy):
    """Run fn once per argument tuple; one copy runs inline, more in threads.

    Returns (seconds, results)."""
    results = [None] * len(args_per_copy)
    if len(args_per_copy) == 1:
        t0 = time.perf_counter()
        results[0] = fn(*args_per_copy[0])
        return time.perf_counter() - t0, results

    def target(i, a):
        results[i] = fn(*a)

    ts = [threading.Thread(target=target, args=(i, a))
          for i, a in enumerate(args_per_copy)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, results


def make_row(name, job, threads, n, copies, times, warm_total, note=None):
    """One variant's JSON row from its timed runs."""
    med = statistics.median(times)
    row = {
        "name": name,
        "job": job,
        "threads": threads,
        "n": n,
        "copies": copies,
        "repeat": len(times),
        "median_s": med,
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        "warmup_s": warm_total,
        "throughput": n * copies / med,
    }
    if note:
        row["note"] = note
    return row


def sort_in_place(a):
    a.sort()


def fresh_copies(args_per_copy):
    return [(arr.copy(),) for (arr,) in args_per_copy]


# numpy's sort is timed in place on a fresh copy made before the clock starts: the sort
# itself, as hybridd's sort time is its own. np.sort(a) also allocates its result and copies
# a into it, and a fresh 80 MB result faults in every page: 10^7 f64 took 101-103 ms that way
# against 82-85 in place (numpy 2.4.6, Intel Xeon guest), which would flatter hybridd.
SORT_NOTE = "ndarray.sort() in place on a fresh copy (the copy untimed)"


def measure(name, job, threads, n, fn, args_per_copy, repeat, note=None, setup=None):
    """setup, when given, makes each run's arguments (untimed) from args_per_copy."""
    def run():
        return run_copies(fn, setup(args_per_copy) if setup else args_per_copy)

    t0 = time.perf_counter()
    warm_s, res = run()   # warm-up (numba compiles here)
    warm_total = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        s, res = run()
        times.append(s)
    row = make_row(name, job, threads, n, len(args_per_copy), times, warm_total, note)
    if job == "pi":
        row["result"] = [float(r) for r in res]
    return row


DTYPES = {"float64": "f64", "float32": "f32", "int64": "i64", "int32": "i32",
          "uint64": "u64", "uint32": "u32"}


# The path a numpy user takes from file to file, as the script a user runs: load the .npy,
# sort it, save the result. Each run is an interpreter of its own, timed inside it from
# before the load to after the save (its start and imports are not timed), because that is
# how hybridctl runs too: in one long-lived process the same three steps reuse the pages
# the last run freed, and on this VM a fresh process's first writes to new pages can take
# several times as long (docs/benchmarks.md, "File to file"), for numpy as for hybridctl.
FILE_TO_FILE = """
import sys, time
import numpy as np
t0 = time.perf_counter()
np.save(sys.argv[2], np.sort(np.load(sys.argv[1])))
print(time.perf_counter() - t0)
"""


def file_to_file(inp, out):
    """One run of FILE_TO_FILE in a fresh interpreter (this one, with this environment, so
    the same numpy and the same NPY_DISABLE_CPU_FEATURES): its time in seconds."""
    p = subprocess.run([sys.executable, "-c", FILE_TO_FILE, inp, out], capture_output=True,
                       text=True, check=False)
    if p.returncode != 0:
        raise SystemExit("lesson: the file-to-file script failed: " + p.stderr.strip())
    return float(p.stdout)


def measure_e2e(inp, out, repeat):
    """One row: file_to_file after a warm-up run (which reads the file into the page cache)."""
    head = np.load(inp, mmap_mode="r")      # only its length and type
    n, dtype = head.shape[0], DTYPES.get(head.dtype.name, head.dtype.name)
    del head
    warm = file_to_file(inp, out)
    row = make_row("e2e-numpy", "e2e", 1, n, 1, [file_to_file(inp, out) for _ in range(repeat)],
                   warm, "np.save(out, np.sort(np.load(in))), each run a fresh interpreter")
    row["dtype"] = dtype
    row["input"] = os.path.abspath(inp)
    return row


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def simd_flags():
    """The vector extensions /proc/cpuinfo lists that the sorts dispatch on."""
    want = ("sse4_2", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vbmi2")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in want if w in have]
    except OSError:
        pass
    return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pi-n", type=int, default=10**7,
                    help="samples per copy for numpy/numba pi (default 1e7)")
    ap.add_argument("--pure-n", type=int, default=10**6,
                    help="samples per copy for pure-Python pi (default 1e6)")
    ap.add_argument("--sort-n", type=int, default=10**7,
                    help="elements per array for numpy.sort (default 1e7)")
    ap.add_argument("--dtype", choices=("f64", "f32"), default="f64",
                    help="element type of the sort arrays")
    ap.add_argument("--repeat", type=int, default=5,
                    help="timed runs per variant, after one warm-up (default 5)")
    ap.add_argument("--threads", type=int, default=2,
                    help="copies run at once in the threaded variants (default 2)")
    ap.add_argument("--chunk", type=int, default=1 << 20,
                    help="samples per block in the numpy pi (default 2^20)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-pi", action="store_true", help="skip the pi jobs")
    ap.add_argument("--no-sort", action="store_true", help="skip the sort jobs")
    ap.add_argument("--no-pure", action="store_true",
                    help="skip pure-Python pi (slow)")
    ap.add_argument("--pure-only", action="store_true",
                    help="run pure-Python pi only (what runs anyway without numpy)")
    ap.add_argument("--label", help="names this run's interpreter in the JSON (e.g. "
                    "\"Debian's /usr/bin/python3\"): compare.py labels its rows so")
    ap.add_argument("--save-sort-input", metavar="FILE.npy",
                    help="save the array sorted alone (the first one) with numpy.save")
    ap.add_argument("--e2e-input", metavar="IN.npy",
                    help="time np.save(OUT, np.sort(np.load(IN))) (needs --e2e-output)")
    ap.add_argument("--e2e-output", metavar="OUT.npy",
                    help="where --e2e-input's sorted array is saved (overwritten)")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON document instead of a table")
    a = ap.parse_args(argv)
    if a.repeat < 1 or a.threads < 2:
        ap.error("--repeat must be >= 1 and --threads >= 2")
    if bool(a.e2e_input) != bool(a.e2e_output) or \
            (a.e2e_output and not a.e2e_output.endswith(".npy")):
        ap.error("--e2e-input and --e2e-output go together; the output ends in .npy")
    skipped = []
    if a.pure_only:
        if a.no_pi or a.no_pure or a.save_sort_input or a.e2e_input:
            ap.error("--pure-only runs pure-Python pi alone")
        a.no_sort = True
        skipped.append("sort, pi-numpy, pi-numba, pi-numba-nogil: --pure-only")
    if np is None:
        if a.e2e_input:
            ap.error("--e2e-input needs numpy, which this Python lacks")
        if a.save_sort_input:
            ap.error("--save-sort-input needs numpy, which this Python lacks")
        if a.no_pure or a.no_pi:
            ap.error("without numpy only pure-Python pi can run; drop --no-pi/--no-pure")
        if not a.pure_only:
            skipped.append("sort, pi-numpy, pi-numba, pi-numba-nogil: no numpy in this Python")
        a.no_sort = a.pure_only = True

    k = a.threads
    seeds = [a.seed + i for i in range(k)]
    started = time.time()
    load_before = loadavg()
    rows = []
    sort_input = None

    def log(msg):
        if not a.json:
            print(msg, file=sys.stderr, flush=True)

    if not a.no_pi:
        pi_jobs = []
        if not a.no_pure:
            pi_jobs.append(("pi-python", calc_pi, a.pure_n,
                            "pure Python at --pure-n samples"))
        chunk = a.chunk
        if not a.pure_only:
            pi_jobs.append(("pi-numpy",
                            lambda n, s: calc_pi_numpy(n, s, chunk), a.pi_n, None))
        if numba is not None and not a.pure_only:
            pi_jobs.append(("pi-numba", calc_pi_numba, a.pi_n, None))
            pi_jobs.append(("pi-numba-nogil", calc_pi_nogil, a.pi_n, None))
        for name, fn, n, note in pi_jobs:
            for threads in (1, k):
                log("running %s threads=%d n=%d" % (name, threads, n))
                args = [(n, seeds[i]) for i in range(threads)]
                rows.append(measure(name, "pi", threads, n, fn, args,
                                    a.repeat, note))

    if not a.no_sort:
        dt = np.float64 if a.dtype == "f64" else np.float32
        rng = np.random.default_rng(a.seed)
        arrays = [rng.random(a.sort_n, dtype=dt) for _ in range(k)]
        sort_input = {
            "n": a.sort_n,
            "dtype": a.dtype,
            "dist": "Generator.random, [0, 1)",
            "sha256": hashlib.sha256(arrays[0].tobytes()).hexdigest(),
            "path": None,
        }
        if a.save_sort_input:
            path = a.save_sort_input
            if not path.endswith(".npy"):
                path += ".npy"      # what numpy.save does
            np.save(path, arrays[0])
            sort_input["path"] = os.path.abspath(path)
        name = "sort-numpy-" + a.dtype
        for threads in (1, k):
            log("running %s threads=%d n=%d" % (name, threads, a.sort_n))
            args = [(arrays[i],) for i in range(threads)]
            rows.append(measure(name, "sort", threads, a.sort_n, sort_in_place,
                                args, a.repeat, SORT_NOTE, fresh_copies))
        del arrays

    if a.e2e_input:
        log("running e2e-numpy on %s" % a.e2e_input)
        rows.append(measure_e2e(a.e2e_input, a.e2e_output, a.repeat))

    ratios = []
    by = {(r["name"], r["threads"]): r for r in rows}
    for r in rows:
        if r["threads"] == 1 and (r["name"], k) in by:
            r2 = by[(r["name"], k)]
            ratios.append({
                "name": r["name"],
                "threads": k,
                "throughput_ratio": r2["throughput"] / r["throughput"],
            })

    doc = {
        "tool": "bench/lesson/lesson.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "machine": {
            "cpu_model": cpu_model(),
            "nproc": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0))
                        if hasattr(os, "sched_getaffinity") else None,
            "simd": simd_flags(),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "python_impl": platform.python_implementation(),
            "numpy": np.__version__ if np is not None else None,
            "numba": numba.__version__ if numba is not None else None,
        },
        # Which interpreter: a venv's python is a link to the one it was made from.
        "python_executable": sys.executable,
        "python_base": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        "skipped": skipped,
        "label": a.label,
        "switch_interval_s": sys.getswitchinterval(),
        "seed": a.seed,
        "params": {"pi_n": a.pi_n, "pure_n": a.pure_n, "sort_n": a.sort_n,
                   "dtype": a.dtype, "repeat": a.repeat, "threads": k,
                   "numpy_pi_chunk": a.chunk},
        "sort_input": sort_input,
        "variants": rows,
        "ratios": ratios,
        "elapsed_s": time.time() - started,
    }

    if a.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0

    print("%s, %s CPUs; Python %s, numpy %s, numba %s" % (
        doc["machine"]["cpu_model"], doc["machine"]["nproc"],
        doc["versions"]["python"], doc["versions"]["numpy"],
        doc["versions"]["numba"]))
    print("%-18s %3s %11s %10s %10s %10s %14s" % (
        "variant", "thr", "n", "median s", "min s", "max s", "items/s"))
    for r in rows:
        print("%-18s %3d %11d %10.4f %10.4f %10.4f %14.4g" % (
            r["name"], r["threads"], r["n"], r["median_s"], r["min_s"],
            r["max_s"], r["throughput"]))
    for q in ratios:
        print("%-18s %d-thread/1-thread throughput: %.2f" % (
            q["name"], q["threads"], q["throughput_ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
