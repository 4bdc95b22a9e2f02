#!/usr/bin/env python3
"""How well backend auto chooses, and how well the history predicts (issue 18's targets).

  python3 bench/auto-grid.py --hybridctl PATH --hybridd PATH [--quick] [--rounds R]

Starts its own hybridd (built-in defaults, a history file in a temporary directory), then:

1. Learning: for every cell of the grid (pi 10^6..10^9; sort 10^4..10^7 of f64, i32 and u64:
   10^8 sorts would take this 2-core machine's whole budget), one `compare` with --repeat 10
   (process rows on both transports), so every configuration auto considers has 10 runs.
2. Choosing: per cell, R rounds (default 5) of `--backend auto`, each followed by the
   comparison's fastest configuration named explicitly, so the two are timed interleaved;
   each a job of REPEAT runs, its median taken (see 3. for why).
   The cell passes when auto chose the fastest configuration itself (the times of one
   configuration then differ by noise only, which the table still shows) or the median of
   auto's times is within 10% of the fastest's.
3. Predicting: between each two sizes measured, one size in each history cell (floor of
   log2 n) that lies between theirs (2x, 4x and, where it fits, 8x the lower one), one job
   of `--backend auto` of REPEAT runs each: its row's predicted_ns (an interpolation
   between the trusted neighbours, made before the job ran, of one run's median time)
   against its median_ns. The history predicts a median, so it is held against a median:
   one run of a 0.1-1 ms job here moves by a third from the next (thread placement and
   vCPU wake-ups, docs/engine.md), which a single run would count as the prediction's
   error. One job per size: its runs make that cell measured (HY_HISTORY_TRUST), so a
   second job there would no longer test a prediction.

Prints a table and one JSON line; exit 1 on an error (not on a missed target). Standard
library only. The machine's load matters: run it on a quiet machine and say what else ran.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

from benchlib import Daemon, median


def job_args(cell, n):
    job, dtype = cell
    return [job, "-n", n] + (["--dtype", dtype] if dtype else [])


def named(row):
    """The options that run a compare row's configuration as a single job."""
    args = ["--backend", row["backend"]]
    if row["backend"] != "opencl":
        args += ["--threads", row["threads"]]
    if row.get("transport"):
        args += ["--transport", row["transport"]]
    return args


def learn(d, cell, n):
    transport = ["--transport", "pipe,shm"] if cell[0] == "sort" else []
    c = d.json("compare", *job_args(cell, n), "--repeat", 10, *transport)
    return min(c["rows"], key=lambda r: r["median_ns"])


# Runs in each job the grid times (its median is the job's time).
REPEAT = 5


def choose(d, cell, n, best, rounds):
    auto, fast, chosen = [], [], []
    for _ in range(rounds):
        a = d.json(*job_args(cell, n), "--backend", "auto", "--repeat", REPEAT)
        auto.append(a["median_ns"])
        chosen.append("%s/%s%s" % (a["backend"], a["threads"],
                                   "/" + a["transport"] if a.get("transport") else ""))
        fast.append(d.json(*job_args(cell, n), *named(best), "--repeat", REPEAT)["median_ns"])
    return median(auto), median(fast), max(set(chosen), key=chosen.count)


def between(lo, hi):
    """Sizes strictly between lo and hi, one in each history cell (floor log2 n) between
    theirs: 2 lo, 4 lo, ... while below hi's cell."""
    out, n = [], 2 * lo
    while n.bit_length() < hi.bit_length():
        if n.bit_length() > lo.bit_length():
            out.append(n)
        n *= 2
    return out


def predict(d, cell, n):
    """The error of the history's prediction for one job of REPEAT runs at n (None: auto
    made none)."""
    a = d.json(*job_args(cell, n), "--backend", "auto", "--repeat", REPEAT)
    if not a.get("predicted_ns"):
        return None
    return abs(a["predicted_ns"] - a["median_ns"]) / a["median_ns"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hybridctl", required=True)
    ap.add_argument("--hybridd", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a small grid, to try the script")
    o = ap.parse_args()
    pis = [10 ** 6, 10 ** 7] if o.quick else [10 ** 6, 10 ** 7, 10 ** 8, 10 ** 9]
    sorts = [10 ** 4, 10 ** 5] if o.quick else [10 ** 4, 10 ** 5, 10 ** 6, 10 ** 7]
    dtypes = ["f64"] if o.quick else ["f64", "i32", "u64"]
    cells = [(("pi", None), pis)] + [(("sort", t), sorts) for t in dtypes]
    tmp = tempfile.mkdtemp(prefix="hybridd-auto-grid.")
    d = Daemon(o.hybridd, o.hybridctl, tmp,
               conf='state = { history = "%s"; };\n' % os.path.join(tmp, "history"))
    out = {"cells": [], "predictions": []}
    try:
        for cell, sizes in cells:
            for n in sizes:
                best = learn(d, cell, n)
                a, f, chosen = choose(d, cell, n, best, o.rounds)
                same = chosen == "%s/%s%s" % (best["backend"], best["threads"],
                                               "/" + best["transport"]
                                               if best.get("transport") else "")
                out["cells"].append({"job": cell[0], "dtype": cell[1], "n": n,
                                     "best": named(best), "auto_chose": chosen,
                                     "same": same, "auto_ms": a / 1e6, "best_ms": f / 1e6,
                                     "ratio": a / f})
                print("%-4s %-4s n %-11d auto %-16s %9.3f ms  fastest %-28s %9.3f ms  %.2fx%s"
                      % (cell[0], cell[1] or "", n, chosen, a / 1e6,
                         " ".join(map(str, named(best))), f / 1e6, a / f,
                         "  (the same configuration)" if same else ""), flush=True)
            for lo, hi in zip(sizes, sizes[1:]):
                for n in between(lo, hi):
                    e = predict(d, cell, n)
                    out["predictions"].append({"job": cell[0], "dtype": cell[1], "n": n,
                                               "errors": [] if e is None else [e]})
                    print("%-4s %-4s n %-11d prediction error %s" % (
                        cell[0], cell[1] or "", n,
                        "%.1f%%" % (100 * e) if e is not None else "(none predicted)"),
                        flush=True)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    within = [c for c in out["cells"] if c["same"] or c["ratio"] <= 1.10]
    same = [c for c in out["cells"] if c["same"]]
    errs = [e for p in out["predictions"] for e in p["errors"]]
    out["summary"] = {"cells": len(out["cells"]), "within_10pct": len(within),
                      "chose_the_fastest": len(same),
                      "median_prediction_error": median(errs) if errs else None,
                      "load_average": os.getloadavg()[0]}
    print("auto chose the fastest configuration in %d of %d cells, and was within 10%% of "
          "it in %d; median prediction error on sizes not measured %s; load average %.2f" % (
              len(same), len(out["cells"]), len(within),
              "%.1f%%" % (100 * median(errs)) if errs else "n/a", os.getloadavg()[0]))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
