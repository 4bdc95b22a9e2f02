#!/usr/bin/env python3
"""Backend hybrid against each participant alone, in turns (issue 18's co-execution targets).

  python3 bench/hybrid-cores.py separate|shared pi|sort --hybridctl PATH --hybridd PATH
                                [--rounds R]

separate: the native pool on CPU 1 alone (cpu.native_threads 1, cpu.cpus [1]) and PoCL's CPU
device on CPU 0 alone (POCL_MAX_PTHREAD_COUNT=1 POCL_AFFINITY=1, opencl.hybrid_cpu_devices),
so the two stop sharing cores (docs/scheduling.md, "A test arrangement"); rows native,
opencl, hybrid. shared: the default daemon (a pool on every CPU; hybrid leaves CPU devices
out); rows native and hybrid. pi is 10^9 samples separate and 10^8 shared; sort 10^7 f64.

Each round runs every row once (`--repeat 1`, a fresh job each), after two warm-up rounds;
it prints each row's median (min..max) over the rounds, hybrid / native per round, and for
separate the efficiency: the time the job would take if the alone rates added up
(1 / (1/native + 1/opencl)) over hybrid's, per round. Needs two CPUs or more. Standard
library only.
"""

import argparse
import os
import shutil
import sys
import tempfile

from benchlib import Daemon, median

SEPARATE = ("cpu = { native_threads = 1; cpus = [ 1 ]; };\n"
            "opencl = { hybrid_cpu_devices = true; };\n")
SEPARATE_ENV = {"POCL_MAX_PTHREAD_COUNT": "1", "POCL_AFFINITY": "1"}


def spread(xs):
    return "%.3f (%.3f..%.3f)" % (median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arrangement", choices=["separate", "shared"])
    ap.add_argument("job", choices=["pi", "sort"])
    ap.add_argument("--hybridctl", required=True)
    ap.add_argument("--hybridd", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    o = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("hybrid-cores: needs two CPUs or more")
    sep = o.arrangement == "separate"
    job = (["pi", "-n", "1e9" if sep else "1e8"] if o.job == "pi"
           else ["sort", "-n", "1e7", "--dtype", "f64"])
    backends = ["native", "opencl", "hybrid"] if sep else ["native", "hybrid"]
    tmp = tempfile.mkdtemp(prefix="hybridd-cores.")
    d = Daemon(o.hybridd, o.hybridctl, tmp, conf=SEPARATE if sep else "",
               env=SEPARATE_ENV if sep else None)
    times = {b: [] for b in backends}
    try:
        for r in range(o.rounds + 2):
            for b in backends:
                row = d.json(*job, "--backend", b, "--repeat", 1)
                if r >= 2:
                    times[b].append(row["median_ns"] / 1e6)
                    if b == "hybrid":
                        print("round %d: hybrid %.1f ms, pool's share %.1f%%, balance %s" % (
                            r - 1, row["median_ns"] / 1e6, 100 * row["cpu_items"] / row["n"],
                            row["balance"]), flush=True)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s cores, %s, %d rounds, ms:" % (o.arrangement, " ".join(job), o.rounds))
    for b in backends:
        print("  %-7s %s" % (b, spread(times[b])))
    print("  hybrid / native per round: %s" % spread(
        [h / n for h, n in zip(times["hybrid"], times["native"])]))
    if sep:
        eff = [1 / (1 / n + 1 / c) / h
               for n, c, h in zip(times["native"], times["opencl"], times["hybrid"])]
        print("  efficiency against the alone rates added, per round: %s" % spread(eff))
    return 0


if __name__ == "__main__":
    sys.exit(main())
