#!/usr/bin/env python3
"""numpy.sort and hybridd's serial sort of the same small f64 arrays, each timed as one sort
after the core has been idle runs: a pause, one untimed sort, the median of the next three.

  python3 bench/after-idle.py --python build/lesson-venv/bin/python \\
      [--build build] [--sizes 256,512,1000,2048] [--trials 15] [--rounds 3] [--idle-ms 30]

Why: this CPU's 512-bit floating-point units go to sleep when idle, and the first hundreds of
microseconds of floating-point work after that run slower (docs/engine.md, where comparing
doubles in hybridd's network was tried and taken out for this reason). numpy's AVX-512 sort of
floats compares floats; hybridd's sort compares integer keys. make bench times both sides
back to back (numpy's sort sweep keeps its units awake from case to case), so this script
shows the other case, a user's one sort of a small array. --python is an interpreter with
the numpy to compare (scripts/lesson-venv.sh makes one). hybridd's side runs on a hybridd of
its own through `hybridctl compare sort --input FILE --backends serial --repeat 3` (the
daemon's warm-up run, then the median of three job times), after the same pause. The rounds
take the sizes in turns, numpy then hybridd; each figure is the median over the trials of
all rounds, with the quartiles. A benchmark, not a test.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchlib import Daemon, quartiles

NUMPY = r'''
import numpy as np, sys, time
path, trials, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
a = np.load(path)
for _ in range(trials):
    time.sleep(idle)
    b = a.copy(); b.sort()
    ts = []
    for _ in range(3):
        b = a.copy(); t = time.perf_counter_ns(); b.sort(); ts.append(time.perf_counter_ns() - t)
    print(sorted(ts)[1])
'''

DRAW = r'''
import numpy as np, sys
n, path = int(sys.argv[1]), sys.argv[2]
np.save(path, np.random.default_rng([20261206, n]).random(n))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True, help="an interpreter with numpy")
    ap.add_argument("--build", default="build")
    ap.add_argument("--sizes", default="256,512,1000,2048")
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle-ms", type=float, default=30)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    if a.trials < 1 or a.rounds < 1 or a.idle_ms < 0 or min(sizes) < 2:
        sys.exit("after-idle: --trials and --rounds must be positive, --idle-ms not negative, "
                 "sizes at least 2")
    idle = a.idle_ms / 1e3
    with tempfile.TemporaryDirectory(prefix="hybridd-after-idle.") as tmp:
        files = {}
        for n in sizes:
            files[n] = os.path.join(tmp, "a-%d.npy" % n)
            subprocess.run([a.python, "-c", DRAW, str(n), files[n]], check=True)
        d = Daemon(os.path.join(a.build, "daemon", "hybridd"),
                   os.path.join(a.build, "client", "hybridctl"), tmp)
        try:
            np_ns = {n: [] for n in sizes}
            hy_ns = {n: [] for n in sizes}
            for r in range(a.rounds):
                for n in sizes:
                    out = subprocess.run([a.python, "-c", NUMPY, files[n], str(a.trials),
                                          str(idle)], capture_output=True, text=True,
                                         check=True).stdout
                    np_ns[n] += [int(x) for x in out.split()]
                    for _ in range(a.trials):
                        time.sleep(idle)
                        doc = d.json("compare", "sort", "--input", files[n], "--backends",
                                     "serial", "--repeat", 3)
                        hy_ns[n].append(doc["rows"][0]["median_ns"])
                print("after-idle: round %d of %d done" % (r + 1, a.rounds), file=sys.stderr)
        finally:
            d.stop()
    print("f64 uniform, %g ms idle before each trial, %d trials x %d rounds; median (quartiles) "
          "of each trial's median of 3 sorts after an untimed one" % (a.idle_ms, a.trials,
                                                                       a.rounds))
    print("%8s %26s %26s %10s" % ("n", "numpy.sort in place, us", "hybridd serial, us",
                                   "numpy/hy"))
    for n in sizes:
        q = [x / 1e3 for x in quartiles(np_ns[n])]
        h = [x / 1e3 for x in quartiles(hy_ns[n])]
        print("%8d %10.2f (%5.2f-%5.2f) %10.2f (%5.2f-%5.2f) %9.2fx" % (n, q[1], q[0], q[2],
                                                                    h[1], h[0], h[2],
                                                                    q[1] / h[1]))


if __name__ == "__main__":
    main()
