#!/usr/bin/env python3
"""Tests of compare.py on made-up make bench output (standard library only).

  python3 bench/lesson/test_compare.py

The JSON written here has the shape lesson.py, `hybridctl --json compare`, vqsort-ref and
scripts/bench.sh write, with times chosen so that a wrong aggregation gives a different
figure: the median of per-round ratios differs from the ratio of the medians.
"""

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

N = 1000


def lesson_doc(rnd, sort_1t, sort_2t, pure_1t=None, pure_2t=None, numpy="2.4.6",
               exe="/venv/bin/python", label=None):
    """One lesson.py --json document: a sort f64 pair and, optionally, a pure-Python pi pair."""
    variants = []
    if pure_1t is not None:
        for thr, t in ((1, pure_1t), (2, pure_2t)):
            variants.append({"name": "pi-python", "job": "pi", "threads": thr, "n": N,
                             "copies": thr, "median_s": t, "throughput": N * thr / t})
    if sort_1t is not None:
        for thr, t in ((1, sort_1t), (2, sort_2t)):
            variants.append({"name": "sort-numpy-f64", "job": "sort", "threads": thr, "n": N,
                             "copies": thr, "median_s": t, "throughput": N * thr / t})
    return {"tool": "bench/lesson/lesson.py", "date": "2026-12-04T10:0%d:00Z" % rnd,
            "machine": {"cpu_model": "Test CPU", "nproc": 2, "affinity": 2,
                        "simd": ["avx2"], "loadavg_before": ["0.5", "0.5", "0.5"]},
            "versions": {"python": "3.11.2", "python_impl": "CPython", "numpy": numpy,
                         "numba": None},
            "python_executable": exe, "python_base": exe, "switch_interval_s": 0.005,
            "label": label,
            "params": {"pi_n": N, "pure_n": N, "sort_n": N, "dtype": "f64"},
            "sort_input": None, "variants": variants}


def hybridd_doc(job, rows):
    """One hybridctl --json compare document: rows of (backend, threads, seconds, extra)."""
    out = []
    for backend, thr, t, extra in rows:
        r = {"backend": backend, "threads": thr, "n": N, "median_ns": t * 1e9,
             "throughput": N / t}
        r.update(extra)
        out.append(r)
    d = {"job": "compare " + job, "n": N, "rows": out}
    if job == "sort":
        d["dtype"] = "f64"
        d["dist"] = "uniform"
    return d


def write(dirname, name, doc):
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, name), "w") as f:
        json.dump(doc, f)


# Per round: numpy.sort 1T and hybridd serial. The ratio of the medians is 1.0/1.0 = 1.0; the
# per-round ratios (serial's throughput over numpy's) are 1.0/0.5 = 2, 2.0/1.0 = 2 and
# 1.0/2.0 = 0.5, whose median is 2.
SORT_1T = (1.0, 2.0, 1.0)
SERIAL = (0.5, 1.0, 2.0)


def make_rounds(root):
    for k, (s1, ser) in enumerate(zip(SORT_1T, SERIAL), 1):
        rd = os.path.join(root, "round-%02d" % k)
        # numpy.sort on two threads is made slow (4x per array), so the 1T row is the best.
        write(rd, "lesson.json", lesson_doc(k, s1, 4 * s1, pure_1t=1.0,
                                            pure_2t=2.0 * (1 + k / 10)))
        # Debian's interpreter: labelled, and its numpy (an older one) is not a reference.
        write(rd, "system.json", lesson_doc(k, None, None, pure_1t=1.0, pure_2t=2.0,
                                            numpy="1.24.2", exe="/usr/bin/python3",
                                            label="Debian's /usr/bin/python3"))
        write(rd, "hybridd-sort.json", hybridd_doc("sort", [
            ("serial", 1, ser, {}),
            ("locked", 1, 1.0, {"nogil": True}), ("locked", 2, 0.5, {"nogil": True})]))
        write(rd, "hybridd-pi.json", hybridd_doc("pi", [
            ("locked", 1, 1.0, {"nogil": False}), ("locked", 2, 1.0, {"nogil": False})]))
        write(rd, "vqsort.json", {"tool": "bench/vqsort-ref", "reference": "Highway vqsort",
                                  "version": "1.0.3", "input": "", "dtype": "f64", "n": N,
                                  "rows": [{"threads": 1, "copies": 1, "median_ns": 0.25e9,
                                            "throughput": N / 0.25}]})
    write(root, "bench-notes.json", {"tool": "scripts/bench.sh", "skipped": ["x: y"],
                                     "rounds": 3, "repeat": 3, "repeat_slow": 1,
                                     "numpy_path": {"installed_ms": 58.7, "avx2_ms": 8.8,
                                                    "chosen": "avx2"}})


def row(groups, key, label, threads):
    return next(r for r in groups[key] if r["label"] == label and r["threads"] == threads)


class Rounds(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        make_rounds(self.tmp.name)
        self.docs = compare.load(self.tmp.name)
        self.groups = compare.build_rows(self.docs)

    def tearDown(self):
        self.tmp.cleanup()

    def test_row_is_the_median_over_rounds_with_min_max(self):
        r = row(self.groups, ("sort", N, "f64"), "hybridd serial", 1)
        self.assertEqual(self.docs["rounds"], [1, 2, 3])
        self.assertEqual(r["time_s"], 1.0)
        self.assertEqual((r["time_lo"], r["time_hi"]), (0.5, 2.0))
        self.assertAlmostEqual(r["spread"], 1.5)

    def test_ratio_is_the_median_of_per_round_ratios(self):
        r = row(self.groups, ("sort", N, "f64"), "hybridd serial", 1)
        self.assertAlmostEqual(r["ratio"], 2.0)     # ratio of the medians would be 1.0
        self.assertAlmostEqual(r["ratio_q"]["lo"], 0.5)
        self.assertAlmostEqual(r["ratio_q"]["hi"], 2.0)
        best = [x for x in self.groups[("sort", N, "f64")] if x["best"]]
        self.assertEqual([x["label"] for x in best], ["lesson sort-numpy-f64"])

    def test_reference_rows_are_labelled_and_never_the_best(self):
        r = row(self.groups, ("sort", N, "f64"), "reference: Highway vqsort 1.0.3", 1)
        self.assertEqual(r["source"], "reference")
        self.assertFalse(r["best"])
        self.assertIn("not hybridd", r["note"])

    def test_fidelity_against_both_interpreters(self):
        fid, _ = compare.fidelity(self.groups, self.docs)
        pi = next(x for x in fid if x["job"].startswith("pi"))
        who = [sd["who"] for sd in pi["sides"]]
        self.assertEqual(len(who), 2)
        self.assertIn("Debian's /usr/bin/python3, Python 3.11.2", who)
        self.assertEqual(self.docs["numpy_other"], [])
        self.assertEqual(self.docs["numpy_ref"], "2.4.6")
        venv, debian = pi["sides"][0], pi["sides"][1]
        # venv: 2T/1T = 1/(1+k/10) -> median 1/1.2; locked 1.0 -> diff median +20%: MISS.
        self.assertAlmostEqual(venv["cpython"]["med"], 1 / 1.2)
        self.assertAlmostEqual(venv["diff"]["med"], 0.2)
        self.assertFalse(venv["ok"])
        # Debian: 2T/1T = 1.0 in every round, locked 1.0: PASS with no spread.
        self.assertAlmostEqual(debian["diff"]["med"], 0.0)
        self.assertTrue(debian["ok"])
        self.assertEqual((debian["within"], debian["rounds"]), (3, 3))

    def test_report_states_rounds_machine_and_noise(self):
        md = os.path.join(self.tmp.name, "bench.md")
        with open(md, "w") as f:
            f.write("# B\n\nintro\n\n## Later\n\nhand-written\n")
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(compare.main([self.tmp.name, "--md", md]), 0)
        with open(md) as f:
            text = f.read()
        self.assertIn("median over 3 interleaved rounds", text)
        self.assertIn("Test CPU, 2 CPUs", text)
        self.assertIn("- Noise: the most stable row", text)
        self.assertIn("- Skipped: x: y.", text)
        # The reference's numpy path, as bench.sh's probe chose it, with the probe's figures.
        self.assertIn("- numpy's sort path: numpy chose its AVX-512 sort", text)
        self.assertIn("58.7 ms as installed, 8.8 ms with AVX-512 disabled", text)
        self.assertTrue(text.endswith("## Later\n\nhand-written\n"))
        self.assertIn("the serial baseline, hybridd serial on sort, 1e3 f64, took 500.0 ms–2.000 s",
                      text)


class EndToEnd(unittest.TestCase):
    def test_e2e_targets_per_round(self):
        with tempfile.TemporaryDirectory() as d:
            for k, (npy, hc, inner, floor) in enumerate(((1.0, 0.5, 0.2, 0.2),
                                                         (2.0, 0.5, 0.2, 0.3),
                                                         (3.0, 0.5, 0.3, 0.3)), 1):
                rd = os.path.join(d, "round-%d" % k)
                doc = lesson_doc(k, None, None)
                doc["variants"] = [{"name": "e2e-numpy", "job": "e2e", "threads": 1, "n": N,
                                    "copies": 1, "median_s": npy, "throughput": N / npy,
                                    "dtype": "f64"}]
                write(rd, "lesson-e2e.json", doc)
                write(rd, "e2e.json", {"tool": "bench/e2e-time.py", "n": N, "dtype": "f64",
                                       "rows": [{"name": "hybridctl", "median_ns": hc * 1e9,
                                                 "throughput": N / hc, "backend": "native",
                                                 "threads": 2, "sort_median_ns": inner * 1e9,
                                                 "first_job_ns": (0.5 + k / 10) * 1e9},
                                                {"name": "read-write", "median_ns": floor * 1e9,
                                                 "throughput": N / floor}]})
            docs = compare.load(d)
            groups = compare.build_rows(docs)
            tg = compare.targets(groups, docs)
            speed = next(t for t in tg if "hybridctl sort --input --output >=" in t["target"])
            self.assertAlmostEqual(speed["measured"], 4.0)     # median of 2, 4, 6
            self.assertTrue(speed["ok"])
            over = next(t for t in tg if "hybridctl <= 1.3x" in t["target"])
            # 0.5 / (0.2 + 0.2) = 1.25, 0.5 / 0.5 = 1.0, 0.5 / 0.6 = 0.83: median 1.0, at most 1.3.
            self.assertAlmostEqual(over["measured"], 1.0)
            self.assertTrue(over["ok"])
            self.assertEqual(compare.target_result(over), "PASS")
            # The first job: 0.6, 0.7, 0.8 against 0.5 warm: median 1.4 > 1.2, over.
            cold = next(t for t in tg if "first job after hybridd starts" in t["target"])
            self.assertAlmostEqual(cold["measured"], 1.4)
            self.assertEqual(compare.target_result(cold), "MISS (over by 1.2x)")
            hc = row(groups, ("e2e", N, "f64"), "hybridd: hybridctl sort --input --output", 2)
            self.assertAlmostEqual(hc["sort_s"], 0.2)

    def test_first_job_against_the_warm_job_after_the_same_idle(self):
        with tempfile.TemporaryDirectory() as d:
            # First jobs 0.6, 0.7, 0.8; warm back to back 0.5; warm after the same idle 0.6,
            # 0.6, 0.7: per round 1.0, 1.17, 1.14, median 1.14 <= 1.2.
            for k, idle in enumerate((0.6, 0.6, 0.7), 1):
                write(os.path.join(d, "round-%d" % k), "e2e.json", {
                    "tool": "bench/e2e-time.py", "n": N, "dtype": "f64",
                    "rows": [{"name": "hybridctl", "median_ns": 0.5e9, "throughput": N / 0.5,
                              "backend": "native", "threads": 2, "sort_median_ns": 0.2e9,
                              "first_job_ns": (0.5 + k / 10) * 1e9, "idle_s": 5,
                              "idle_job_ns": idle * 1e9, "idle_job_sort_ns": 0.2e9},
                             {"name": "read-write", "median_ns": 0.2e9,
                              "throughput": N / 0.2}]})
            docs = compare.load(d)
            groups = compare.build_rows(docs)
            tg = compare.targets(groups, docs)
            cold = next(t for t in tg if "first job after hybridd starts" in t["target"])
            self.assertIn("after the same idle", cold["target"])
            self.assertAlmostEqual(cold["measured"], 0.8 / 0.7)
            self.assertEqual(compare.target_result(cold), "PASS")
            idle = row(groups, ("e2e", N, "f64"), "hybridd: the same, warm, after the same idle", 2)
            self.assertAlmostEqual(idle["time_s"], 0.6)
            self.assertIn("after 5 s idle", idle["note"])


def write_npy(path, data):
    """A version 1.0 .npy of raw '<f8' bytes; returns the SHA-256 of the data."""
    head = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }" % (len(data) // 8)
    head += " " * (63 - (10 + len(head)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode() + data)
    return hashlib.sha256(data).hexdigest()


class Sweep(unittest.TestCase):
    def test_sweep_goals_ratios_and_identity(self):
        with tempfile.TemporaryDirectory() as d:
            big, small = os.path.join(d, "big.npy"), os.path.join(d, "small.npy")
            sha_big = write_npy(big, bytes(range(64)))
            write_npy(small, bytes(16))
            for k, (nb, sb) in enumerate(((1.0, 0.5), (1.0, 1.0), (2.0, 0.5)), 1):
                sd = os.path.join(d, "round-%d" % k, "sweep")
                write(sd, "numpy.json", {"tool": "bench/lesson/sort_sweep.py", "numpy": "2.4.6",
                                         "rows": [{"n": 8, "dtype": "i64", "dist": "uniform",
                                                   "path": big, "sha256": sha_big,
                                                   "median_s": nb},
                                                  {"n": 2, "dtype": "f64", "dist": "uniform",
                                                   "path": small, "sha256": "0" * 64,
                                                   "median_s": 1.0}]})
                for path, t in ((big, sb), (small, 0.5)):
                    doc = hybridd_doc("sort", [("serial", 1, t, {})])
                    doc["dist"] = path
                    write(sd, "hybridd-%s.json" % os.path.basename(path), doc)
            docs = compare.load(d)
            sw = compare.sweep(docs)
            self.assertEqual([x["case"] for x in sw], ["8 i64 uniform", "2 f64 uniform"])
            big_row, small_row = sw
            # numpy/serial per round: 2, 1, 4 -> median 2 >= 1.5 at the largest size.
            self.assertEqual((big_row["q"]["med"], big_row["goal"]), (2.0, 1.5))
            self.assertTrue(big_row["ok"] and big_row["identical"])
            # Smaller sizes need only >= 1x; a file whose SHA-256 differs is flagged.
            self.assertEqual((small_row["q"]["med"], small_row["goal"]), (2.0, 1.0))
            self.assertFalse(small_row["identical"])
            self.assertIn("not verified identical", compare.sweep_lines(sw)[1][5])
            # The sweep's hybridd documents stay out of the main jobs' rows.
            self.assertEqual(compare.build_rows(docs), {})


class Interpreters(unittest.TestCase):
    def test_a_python_without_numpy_is_named_by_its_path(self):
        d = lesson_doc(1, None, None, pure_1t=1.0, pure_2t=2.0, numpy=None, exe="/opt/py")
        self.assertEqual(compare.python_label(d), "/opt/py, Python 3.11.2")
        self.assertEqual(compare.python_label(lesson_doc(1, 1.0, 1.0)), "")


class FlatDirectory(unittest.TestCase):
    def test_documents_without_rounds_are_one_round(self):
        with tempfile.TemporaryDirectory() as d:
            write(d, "lesson.json", lesson_doc(1, 1.0, 4.0))
            write(d, "hybridd.json", hybridd_doc("sort", [("serial", 1, 0.5, {})]))
            docs = compare.load(d)
            groups = compare.build_rows(docs)
            r = row(groups, ("sort", N, "f64"), "hybridd serial", 1)
            self.assertEqual(docs["rounds"], [0])
            self.assertEqual(r["ratio"], 2.0)
            self.assertEqual(compare.noise(groups, docs)[0][:15], "one round only:")


if __name__ == "__main__":
    unittest.main()
