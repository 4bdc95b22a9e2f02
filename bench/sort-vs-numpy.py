#!/usr/bin/env python3
"""hybridd's serial sort against numpy.sort on one core, with numpy's SIMD path as it chose it
and with AVX-512 disabled (its AVX2 path): the two can differ by 6x on one CPU (AMD Zen 4's
compress-stores), so a comparison with "numpy 2" has to say which numpy ran.

  python3 bench/sort-vs-numpy.py --hybrid-bench build/bench/hybrid-bench \\
      --python build/lesson-venv/bin/python [-n 1e7] [--rounds 5] [--dtypes f64,f32,...]

--python is an interpreter with the numpy to compare against (scripts/lesson-venv.sh makes one
with the newest numpy). Each round runs, per dtype and in turns, hybrid-bench (serial, one
thread, median of 3 runs) and np.sort of the same kind of uniform array (median of 3 after a
warm-up) as installed and with NPY_DISABLE_CPU_FEATURES="AVX512_ICL X86_V4". Prints, per
dtype, the medians over rounds with [min-max] and the ratios. A benchmark, not a test.
"""
import argparse
import json
import os
import statistics as st
import subprocess

NP = r'''
import numpy as np, sys, time
n = int(sys.argv[1]); dt = sys.argv[2]
t = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "i32": np.int32,
     "u64": np.uint64, "u32": np.uint32}[dt]
rng = np.random.default_rng(7)
if dt[0] == "f":
    a = rng.random(n).astype(t)
else:
    info = np.iinfo(t)
    a = rng.integers(info.min, info.max, n, dtype=t, endpoint=True)
ts = []
for _ in range(4):
    b = a.copy(); s = time.perf_counter_ns(); b.sort(); ts.append(time.perf_counter_ns() - s)
print(sorted(ts[1:])[1])
'''
AVX2 = "AVX512_ICL X86_V4"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hybrid-bench", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("-n", default="1e7")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dtypes", default="f64,f32,i64,i32,u64,u32")
    a = ap.parse_args()
    n = int(float(a.n))
    dtypes = a.dtypes.split(",")
    res = {}
    for _ in range(a.rounds):
        for dt in dtypes:
            out = subprocess.check_output([a.hybrid_bench, "sort", "-n", str(n), "--dtype", dt,
                                           "--backends", "serial", "--threads", "1",
                                           "--repeat", "3", "--json"])
            res.setdefault((dt, 0), []).append(json.loads(out)["rows"][0]["median_ns"])
            for k, env in ((1, os.environ), (2, dict(os.environ, NPY_DISABLE_CPU_FEATURES=AVX2))):
                out = subprocess.check_output([a.python, "-c", NP, str(n), dt], env=env)
                res.setdefault((dt, k), []).append(int(out))
    def ms(v):  # ns in, the unit that keeps three figures (10^3 keys sort in microseconds)
        scale, unit = (1e6, "ms") if st.median(v) >= 1e6 else (1e3, "us")
        return (f"{st.median(v) / scale:.1f} {unit} "
                f"[{min(v) / scale:.1f}-{max(v) / scale:.1f}]")
    for dt in dtypes:
        h, d, v2 = res[(dt, 0)], res[(dt, 1)], res[(dt, 2)]
        rd = [x / y for x, y in zip(d, h)]
        r2 = [x / y for x, y in zip(v2, h)]
        print(f"{dt} n={n}: hybridd serial {ms(h)}; numpy as installed {ms(d)}; "
              f"numpy AVX2 {ms(v2)}; installed/hybridd {st.median(rd):.2f}x "
              f"[{min(rd):.2f}-{max(rd):.2f}]; AVX2/hybridd {st.median(r2):.2f}x "
              f"[{min(r2):.2f}-{max(r2):.2f}]")


if __name__ == "__main__":
    main()
