#!/usr/bin/env python3
"""End-to-end tests of hybridctl against a real hybridd (standard library only).

One daemon serves the whole module: 2 native and 2 locked threads, 3 worker processes for
the process backend, sort_elements capped at 20M, OpenCL left on (tests that need a usable
device skip without one). Every hybridctl run
is a real process; .npy files are written and read here with struct, never with numpy.

    python3 test_hybridctl.py --hybridd PATH --hybridctl PATH [unittest options]
"""
import argparse
import ast
import csv
import io
import json
import math
import os
import random
import re
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET

HYBRIDD = None
HYBRIDCTL = None
POCL_CACHE = None
TMP = None          # tempfile.TemporaryDirectory for the module
SOCK = None
DAEMON = None       # subprocess.Popen of hybridd
DAEMON_LOG = None
DEVICES = None      # `hybridctl --json devices`, parsed
OPENCL = None       # index of the first usable OpenCL device, or None

PROCESS_WORKERS = 3
CONF = ("cpu = { native_threads = 2; locked_threads = 2; process_workers = %d; };\n"
        % PROCESS_WORKERS +
        "limits = { sort_elements = 20000000L; };\n")

SVG_NS = "{http://www.w3.org/2000/svg}"

# dtype name -> (.npy descr, struct code, is_float)
DTYPES = {
    "i32": ("<i4", "i", False),
    "u32": ("<u4", "I", False),
    "i64": ("<i8", "q", False),
    "u64": ("<u8", "Q", False),
    "f32": ("<f4", "f", True),
    "f64": ("<f8", "d", True),
}
DESCR_TO_DTYPE = {v[0]: k for k, v in DTYPES.items()}
DISTS = ["uniform", "normal", "sorted", "reversed", "few-unique"]


# ---------------------------------------------------------------- .npy, by hand

def npy_bytes(descr, payload, shape, version=(1, 0), fortran=False, header_text=None,
              magic=b"\x93NUMPY"):
    """A .npy file's bytes: magic, version, header length, the header dict, the payload."""
    if header_text is None:
        shape_txt = "(" + "".join("%d," % d for d in shape) + ")" if len(shape) == 1 else \
            "(" + ", ".join(str(d) for d in shape) + ")"
        header_text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            descr, "True" if fortran else "False", shape_txt)
    h = header_text.encode("latin1")
    lenbytes = 2 if version[0] == 1 else 4
    pre = len(magic) + 2 + lenbytes
    total = pre + len(h) + 1
    pad = (64 - total % 64) % 64
    h = h + b" " * pad + b"\n"
    hl = struct.pack("<H", len(h)) if lenbytes == 2 else struct.pack("<I", len(h))
    return magic + bytes(version) + hl + h + payload


def write_npy(path, dtype, values, version=(1, 0)):
    descr, code, _ = DTYPES[dtype]
    payload = struct.pack("<%d%s" % (len(values), code), *values)
    with open(path, "wb") as f:
        f.write(npy_bytes(descr, payload, (len(values),), version=version))
    return payload


def read_npy(path):
    """(dtype name, shape, payload bytes) of a .npy file, checked strictly."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError("%s: bad magic %r" % (path, data[:6]))
    major, minor = data[6], data[7]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise ValueError("%s: version %d.%d" % (path, major, minor))
    header = data[start:start + hlen].decode("latin1")
    if (start + hlen) % 16 != 0:  # numpy aligns the data (to 64 since 1.x writers; 16 at least)
        raise ValueError("%s: data at offset %d is not aligned" % (path, start + hlen))
    if not header.endswith("\n"):
        raise ValueError("%s: header does not end in a newline" % path)
    d = ast.literal_eval(header)
    if set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError("%s: header keys %r" % (path, sorted(d)))
    if d["fortran_order"] is not False:
        raise ValueError("%s: fortran_order %r" % (path, d["fortran_order"]))
    dtype = DESCR_TO_DTYPE[d["descr"]]
    n = 1
    for s in d["shape"]:
        n *= s
    payload = data[start + hlen:]
    size = struct.calcsize(DTYPES[dtype][1])
    if len(payload) != n * size:
        raise ValueError("%s: %d payload bytes for shape %r" % (path, len(payload), d["shape"]))
    return dtype, tuple(d["shape"]), payload


def unpack(dtype, payload):
    code = DTYPES[dtype][1]
    n = len(payload) // struct.calcsize(code)
    return list(struct.unpack("<%d%s" % (n, code), payload))


def elements(dtype, payload):
    """The payload split into per-element byte strings."""
    size = struct.calcsize(DTYPES[dtype][1])
    return [payload[i:i + size] for i in range(0, len(payload), size)]


def order_key(dtype):
    """hybridd's order: ascending; floats with -0.0 before +0.0 and every NaN last."""
    code = DTYPES[dtype][1]
    if not DTYPES[dtype][2]:
        return lambda b: struct.unpack("<" + code, b)[0]

    def key(b):
        x = struct.unpack("<" + code, b)[0]
        if math.isnan(x):
            return (1, 0.0, 0)
        return (0, x, 0 if math.copysign(1.0, x) < 0 else 1)
    return key


def expected_sort(dtype, payload):
    """The sorted payload, NaNs (in any order) at the end as a sorted multiset."""
    elems = elements(dtype, payload)
    return sorted(elems, key=order_key(dtype))


def is_nan_elem(dtype, b):
    return DTYPES[dtype][2] and math.isnan(struct.unpack("<" + DTYPES[dtype][1], b)[0])


def first_out_of_order(dtype, payload):
    """Index i with a[i] > a[i+1] in hybridd's order (NaN last), or None."""
    key = order_key(dtype)
    prev = None
    for i, b in enumerate(elements(dtype, payload)):
        k = key(b)
        if prev is not None and k < prev:
            return i - 1
        prev = k
    return None


# ---------------------------------------------------------------- running things

def ctl_argv(*args, sock=True):
    argv = [HYBRIDCTL]
    if sock:
        argv += ["-s", SOCK]
    return argv + [str(a) for a in args]


def ctl(*args, sock=True, env=None, timeout=120, stdin=subprocess.DEVNULL):
    return subprocess.run(ctl_argv(*args, sock=sock), stdin=stdin, capture_output=True,
                          text=True, env=env, timeout=timeout)


def path(name):
    return os.path.join(TMP.name, name)


def start_daemon():
    global DAEMON, DAEMON_LOG, SOCK
    conf = path("hybridd.conf")
    with open(conf, "w") as f:
        f.write(CONF)
    SOCK = path("s.sock")
    DAEMON_LOG = open(path("hybridd.log"), "w+")
    DAEMON = subprocess.Popen([HYBRIDD, "--foreground", "-c", conf, "--socket", SOCK],
                              stdin=subprocess.DEVNULL, stdout=DAEMON_LOG, stderr=DAEMON_LOG)
    deadline = time.monotonic() + 60
    while True:
        if DAEMON.poll() is not None:
            raise RuntimeError("hybridd exited with %d before answering:\n%s"
                               % (DAEMON.returncode, daemon_log()))
        r = ctl("ping", timeout=30)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("hybridd did not answer ping within 60 s: %s\n%s"
                               % (r.stderr, daemon_log()))
        time.sleep(0.2)


def daemon_log():
    if DAEMON_LOG is None:
        return ""
    DAEMON_LOG.flush()
    with open(DAEMON_LOG.name) as f:
        return f.read()


def setUpModule():
    global TMP, DEVICES, OPENCL
    TMP = tempfile.TemporaryDirectory(prefix="hybridctl-e2e.")
    if not os.environ.get("POCL_CACHE_DIR"):
        os.environ["POCL_CACHE_DIR"] = POCL_CACHE or path("pocl-cache")
    start_daemon()
    r = ctl("--json", "devices")
    if r.returncode != 0:
        raise RuntimeError("hybridctl --json devices failed: %s" % r.stderr)
    DEVICES = json.loads(r.stdout)
    for d in DEVICES["devices"]:
        if d["usable"]:
            OPENCL = d["index"]
            break


def tearDownModule():
    global DAEMON
    if DAEMON is None:
        return
    try:
        if DAEMON.poll() is None:
            DAEMON.send_signal(signal.SIGTERM)
            try:
                rc = DAEMON.wait(timeout=40)
            except subprocess.TimeoutExpired:
                DAEMON.kill()
                DAEMON.wait()
                raise AssertionError("hybridd did not stop within 40 s of SIGTERM:\n"
                                     + daemon_log())
        else:
            rc = DAEMON.returncode
        if rc != 0:
            raise AssertionError("hybridd exited %d after SIGTERM (want 0):\n%s"
                                 % (rc, daemon_log()))
        if os.path.exists(SOCK):
            raise AssertionError("hybridd left its socket file %s behind" % SOCK)
    finally:
        DAEMON = None
        DAEMON_LOG.close()
        TMP.cleanup()


class Case(unittest.TestCase):
    maxDiff = 4000

    def run_ok(self, *args, empty_stderr=True, **kw):
        r = ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, "hybridctl %s: exit %d\nstdout: %s\nstderr: %s"
                         % (" ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        if empty_stderr:
            self.assertEqual(r.stderr, "", "hybridctl %s wrote to stderr" % " ".join(map(str, args)))
        return r

    def run_json(self, *args, **kw):
        r = self.run_ok("--json", *args, **kw)
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            self.fail("hybridctl --json %s: not JSON (%s):\n%s" % (" ".join(map(str, args)), e,
                                                                  r.stdout))

    def run_fail(self, code, *args, **kw):
        r = ctl(*args, **kw)
        self.assertEqual(r.returncode, code, "hybridctl %s: exit %d, want %d\nstdout: %s\nstderr: %s"
                         % (" ".join(map(str, args)), r.returncode, code, r.stdout, r.stderr))
        self.assertTrue(r.stderr.strip(), "hybridctl %s failed without a message" % " ".join(map(str, args)))
        self.assertNotIn("Segmentation", r.stderr)
        return r

    def assert_never_gpu(self, text):
        """PoCL's CPU device is never called a GPU: "GPU" only in "not a GPU"."""
        self.assertNotIn("GPU", text.replace("not a GPU", ""),
                         "a PoCL CPU device is called a GPU:\n" + text)

    def need_opencl(self):
        if OPENCL is None:
            self.skipTest("no usable OpenCL device")


# ---------------------------------------------------------------- ping, status, devices

class TestInfo(Case):
    def test_ping_text_and_json(self):
        r = self.run_ok("ping")
        self.assertIn("PONG", r.stdout)
        self.assertIn(SOCK, r.stdout)
        d = self.run_json("ping")
        self.assertEqual(d["socket"], SOCK)
        self.assertTrue(d["server"])
        self.assertGreater(d["rtt_ns"], 0)

    def test_socket_from_environment(self):
        env = dict(os.environ, HYBRIDD_SOCKET=SOCK)
        r = ctl("--json", "ping", sock=False, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["socket"], SOCK)
        r = ctl("--json", "pi", "-n", "1e5", sock=False, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        # -s wins over the environment
        env = dict(os.environ, HYBRIDD_SOCKET="/nonexistent-hybridd-dir/s.sock")
        r = ctl("ping", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_status(self):
        before = self.run_json("status")
        self.assertIsInstance(before["version"], str)
        self.assertRegex(before["version"], r"\d+\.\d+\.\d+")
        self.assertGreater(before["uptime_ns"], 0)
        for k in ("queued", "running", "done", "failed", "cancelled"):
            self.assertGreaterEqual(before["jobs"][k], 0)
        self.assertGreaterEqual(before["clients"], 1)  # this very connection
        # Every backend hybridctl knows (its table, through --list), each once.
        known = subprocess.run([HYBRIDCTL, "--list", "backends"], capture_output=True,
                               text=True, check=True).stdout.split()
        self.assertIn("process", known)
        self.assertEqual(set(before["backends"]), set(known))
        for b in before["backends"].values():
            self.assertGreaterEqual(b["jobs"], 0)
            self.assertGreaterEqual(b["busy_ns"], 0)
        self.assertEqual(before["devices"], len(DEVICES["devices"]))
        self.assertEqual(before["devices_usable"],
                         sum(1 for d in DEVICES["devices"] if d["usable"]))
        self.run_json("pi", "-n", "1e5", "--backend", "serial")
        after = self.run_json("status")
        self.assertEqual(after["jobs"]["done"], before["jobs"]["done"] + 1)
        self.assertEqual(after["backends"]["serial"]["jobs"],
                         before["backends"]["serial"]["jobs"] + 1)
        self.assertGreater(after["backends"]["serial"]["busy_ns"],
                           before["backends"]["serial"]["busy_ns"])
        self.assertGreater(after["uptime_ns"], before["uptime_ns"])
        r = self.run_ok("status")
        self.assertIn(after["version"], r.stdout)
        self.assertNotIn("hybridd hybridd", r.stdout)  # the version string names it already
        self.assertRegex(r.stdout, r"\d+ done")
        for b in ("serial", "native", "locked", "opencl", "process", "hybrid"):
            self.assertRegex(r.stdout, r"(?m)^  %s +\d+ runs? +busy " % b)

    def test_devices(self):
        text = self.run_ok("devices").stdout
        d = self.run_json("devices")
        cpu = d["cpu"]
        self.assertEqual(cpu["native_threads"], 2)
        self.assertEqual(cpu["locked_threads"], 2)
        self.assertGreaterEqual(cpu["online"], 1)
        self.assertEqual(cpu["switch_interval_us"], 5000)
        self.assertEqual(cpu["process_workers"], PROCESS_WORKERS)
        self.assertIn("process pool: %d single-threaded worker processes" % PROCESS_WORKERS,
                      text)
        self.assertRegex(text, r"native pool 2 threads")
        self.assertRegex(text, r"locked runtime 2 threads")
        self.assertIsInstance(d["devices"], list)
        for dev in d["devices"]:
            for k in ("index", "name", "platform", "vendor", "type", "label", "usable",
                      "pocl_cpu", "compute_units", "global_mem", "problem"):
                self.assertIn(k, dev)
            self.assertIn(dev["name"], text)
            # The platform travels in the record (protocol.md) and shows in the table.
            self.assertTrue(dev["platform"], dev)
            self.assertIn(dev["platform"], text)
            self.assertIn(dev["type"], ("gpu", "cpu", "accelerator", "other"))
            self.assertIsInstance(dev["usable"], bool)
            self.assertIsInstance(dev["pocl_cpu"], bool)
            self.assertEqual(dev["pocl_cpu"], dev["label"] == "PoCL CPU", dev)
            self.assertIn(dev["label"], ("GPU", "PoCL CPU", "CPU", "accelerator",
                                         "OpenCL device"))
            self.assertEqual(dev["usable"], dev["problem"] is None, dev)
            if "pthread" in dev["name"] or "pocl" in dev["driver"].lower():
                self.assertEqual(dev["label"], "PoCL CPU", dev)
        if d["devices"] and all(dev["label"] == "PoCL CPU" for dev in d["devices"]):
            self.assertIn("PoCL CPU", text)
            self.assert_never_gpu(text)


# ---------------------------------------------------------------- pi

PI_N = 1000000


class TestPi(Case):
    def test_count_forms(self):
        for form, n in (("1e6", 10 ** 6), ("10M", 10 ** 7), ("2^20", 2 ** 20),
                        ("1000000", 10 ** 6), ("1Mi", 2 ** 20)):
            with self.subTest(form=form):
                row = (self.run_json("pi", "-n", form))
                self.assertEqual(row["n"], n)

    def test_text(self):
        r = self.run_ok("pi", "-n", "1e6")
        self.assertIn("3.14", r.stdout)
        self.assertNotIn("warm-up", r.stdout)  # a single job warms up only when asked

    def test_warmup_and_spread(self):
        row = self.run_json("pi", "-n", "1e6", "--warmup", 2, "--repeat", 3)
        self.assertGreater(row["warmup_ns"], 0)
        self.assertEqual(row["repeat"], 3)
        self.assertTrue(row["min_ns"] <= row["q1_ns"] <= row["median_ns"] <= row["q3_ns"]
                        <= row["max_ns"], row)
        r = self.run_ok("pi", "-n", "1e6", "--warmup", 1, "--repeat", 3)
        self.assertIn("first run (warm-up, not counted)", r.stdout)
        self.assertRegex(r.stdout, r"mean \d+\.\d{3} \u00b1 \d+\.\d{3}")
        for bad in ("0", "101", "x"):
            self.assertIn("--warmup", self.run_fail(2, "pi", "-n", "1e6", "--warmup", bad).stderr)

    def test_quiet(self):
        r = self.run_ok("--quiet", "pi", "-n", "1e6", "--backend", "serial")
        self.assertIn("3.14", r.stdout)
        self.run_ok("-q", "--json", "pi", "-n", "1e6")

    def test_backends_agree(self):
        runs = [("serial",), ("native", "--threads", 1), ("native", "--threads", 2),
                ("locked", "--threads", 2, "--nogil"), ("locked", "--threads", 2, "--hold-lock"),
                ("locked", "--threads", 1)]
        if OPENCL is not None:
            runs.append(("opencl",))
        hits = {}
        for run in runs:
            with self.subTest(run=run):
                args = ["pi", "-n", PI_N, "--seed", 42, "--backend", run[0]] + list(run[1:])
                row = (self.run_json(*args))
                self.assertEqual(row["n"], PI_N)
                self.assertEqual(row["backend"], run[0])
                if run[0] == "serial":
                    self.assertEqual(row["threads"], 1)
                elif run[0] != "opencl":
                    self.assertEqual(row["threads"], run[2])
                self.assertLess(abs(row["estimate"] - math.pi), 0.01, row)
                self.assertAlmostEqual(row["estimate"], 4.0 * row["hits"] / PI_N, places=9)
                if run[0] == "locked":
                    # pi holds the lock unless --nogil says otherwise
                    self.assertEqual(row["nogil"], "--nogil" in run, row)
                hits[run] = row["hits"]
        self.assertEqual(len(set(hits.values())), 1, "hits differ across backends: %r" % hits)

    def test_seed(self):
        a = (self.run_json("pi", "-n", PI_N, "--seed", 7))
        b = (self.run_json("pi", "-n", PI_N, "--seed", 7, "--backend", "serial"))
        c = (self.run_json("pi", "-n", PI_N, "--seed", 8))
        self.assertEqual(a["hits"], b["hits"])
        self.assertNotEqual(a["hits"], c["hits"])
        self.assertEqual(a["seed"], 7)
        self.assertEqual(c["seed"], 8)

    def test_replicate(self):
        row = (self.run_json("pi", "-n", PI_N, "--threads", 2, "--replicate"))
        self.assertEqual(row["threads"], 2)
        self.assertEqual(row["copies"], 2)
        self.assertEqual(row["mode"], "replicate")
        self.assertEqual(row["n"], PI_N)
        self.assertLess(abs(row["estimate"] - math.pi), 0.01, row)

    def test_hybrid_pi_text_and_json(self):
        # The daemon of these tests leaves PoCL's CPU device out of hybrid jobs (its
        # default): the pool runs the job alone, the row and the text say why.
        native = self.run_json("pi", "-n", PI_N, "--backend", "native")
        row = self.run_json("pi", "-n", PI_N, "--backend", "hybrid")
        self.assertEqual(row["backend"], "hybrid")
        self.assertEqual(row["hits"], native["hits"])
        self.assertEqual(row["threads"], 2)
        self.assertEqual(row["cpu_items"], PI_N)
        self.assertEqual(row["devices_used"], 0)
        self.assertIsNone(row["balance"])
        r = self.run_ok("pi", "-n", PI_N, "--backend", "hybrid")
        self.assertIn("ran on hybrid, 2 threads", r.stdout)
        self.assertIn("hybrid: the native pool ran it alone", r.stdout)
        if OPENCL is not None and row["shared_cores"]:
            self.assertIn("opencl.hybrid_cpu_devices", r.stdout)

    def test_opencl_text_label(self):
        self.need_opencl()
        r = self.run_ok("pi", "-n", PI_N, "--backend", "opencl")
        self.assertIn("3.14", r.stdout)
        dev = next(d for d in DEVICES["devices"] if d["index"] == OPENCL)
        self.assertIn(dev["label"], r.stdout)
        self.assertIn(dev["name"], r.stdout)
        self.assertIn("copied", r.stdout)       # the partial sums read back
        if dev["label"] == "PoCL CPU":
            self.assert_never_gpu(r.stdout)
        row = self.run_json("pi", "-n", PI_N, "--backend", "opencl")
        self.assertEqual(row["device"], dev["label"])
        self.assertEqual(row["device_name"], dev["name"])
        self.assertEqual(row["device_index"], OPENCL)
        self.assertGreaterEqual(row["launches"], 1)
        self.assertGreater(row["bytes_moved"], 0)
        self.assertEqual(row["passes"], 0)          # pi makes no passes over keys


# ---------------------------------------------------------------- sort

def fifo_reader(name):
    """A FIFO in the test directory and a thread reading it to its end: (path, the list its one
    read lands in, the thread). A daemon thread: a reader left blocked (the FIFO replaced under
    it) must not hold up the exit."""
    fifo = path(name)
    os.mkfifo(fifo)
    got = []
    def reader():
        with open(fifo, "rb") as f:
            got.append(f.read())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return fifo, got, t


def random_values(dtype, n, rng):
    """Values for dtype with its extremes, negatives, duplicates and (floats) -0.0, +0.0,
    +-inf and NaNs."""
    _, code, is_float = DTYPES[dtype]
    if is_float:
        special = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), -float("nan"),
                   1.0, -1.0, 0.0, -0.0, float("nan")]
        big = 3.0e38 if dtype == "f32" else 1.0e300
        vals = special + [rng.choice((rng.uniform(-1e6, 1e6), rng.gauss(0, 1),
                                      rng.uniform(-big, big), float(rng.randint(-5, 5))))
                          for _ in range(n - len(special))]
        if dtype == "f32":  # round to float32 so the Python copy is exact
            vals = list(struct.unpack("<%df" % len(vals), struct.pack("<%df" % len(vals), *vals)))
        return vals
    bits = 32 if dtype in ("i32", "u32") else 64
    if dtype.startswith("i"):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    special = [lo, hi, 0, 1, lo + 1, hi - 1, 0, -1 if lo < 0 else 2]
    return special + [rng.choice((rng.randint(lo, hi), rng.randint(-100, 100) if lo < 0
                                  else rng.randint(0, 100)))
                      for _ in range(n - len(special))]


class TestSort(Case):
    def check_sorted_file(self, out, dtype, n, in_payload=None):
        got_dtype, shape, payload = read_npy(out)
        self.assertEqual(got_dtype, dtype)
        self.assertEqual(shape, (n,))
        bad = first_out_of_order(dtype, payload)
        self.assertIsNone(bad, "%s out of order at index %s" % (out, bad))
        if in_payload is not None:
            self.assert_sorted_permutation(dtype, in_payload, payload)
        return payload

    def assert_sorted_permutation(self, dtype, in_payload, payload):
        want = expected_sort(dtype, in_payload)
        got = elements(dtype, payload)
        self.assertEqual(len(got), len(want))
        nans = sum(1 for b in want if is_nan_elem(dtype, b))
        k = len(want) - nans
        # Everything but the NaNs byte for byte (so -0.0 before +0.0 too); the NaNs all last.
        if got[:k] != want[:k]:
            i = next(i for i in range(k) if got[i] != want[i])
            self.fail("element %d: got %r, want %r (%s)" % (
                i, unpack(dtype, got[i])[0], unpack(dtype, want[i])[0], dtype))
        self.assertTrue(all(is_nan_elem(dtype, b) for b in got[k:]), "NaNs are not last")
        self.assertEqual(sorted(got[k:]), sorted(want[k:]), "the NaNs changed")

    def test_generated_every_dtype_and_dist(self):
        for dtype in DTYPES:
            for dist in DISTS:
                with self.subTest(dtype=dtype, dist=dist):
                    out = path("gen-%s-%s.npy" % (dtype, dist))
                    r = self.run_ok("sort", "-n", 100000, "--dtype", dtype, "--dist", dist,
                                    "--check", "--output", out)
                    self.assertTrue(r.stdout.strip())
                    payload = self.check_sorted_file(out, dtype, 100000)
                    if dist == "few-unique":
                        self.assertLess(len(set(elements(dtype, payload))), 1000)
                    os.unlink(out)

    def test_generated_json_and_same_seed_same_bytes(self):
        outs = []
        for backend in ("serial", "native", "locked"):
            out = path("seed-%s.npy" % backend)
            d = self.run_json("sort", "-n", 50000, "--dtype", "f64", "--dist", "normal",
                              "--seed", 99, "--check", "--output", out, "--backend", backend)
            row = d
            self.assertEqual(row["n"], 50000)
            self.assertEqual(row["backend"], backend)
            self.assertEqual(row["dtype"], "f64")
            self.assertIs(row["checked"], True)
            self.assertEqual(row["output"], out)
            if backend == "locked":
                self.assertIs(row["nogil"], True)  # sort releases the lock, like numpy.sort
            outs.append(read_npy(out)[2])
        self.assertEqual(outs[0], outs[1])
        self.assertEqual(outs[0], outs[2])
        other = path("seed-other.npy")
        self.run_ok("sort", "-n", 50000, "--dtype", "f64", "--dist", "normal", "--seed", 100,
                    "--output", other)
        self.assertNotEqual(read_npy(other)[2], outs[0])

    def test_input_every_dtype(self):
        rng = random.Random(12345)
        for dtype in DTYPES:
            with self.subTest(dtype=dtype):
                vals = random_values(dtype, 20000, rng)
                inp = path("in-%s.npy" % dtype)
                payload = write_npy(inp, dtype, vals)
                out = path("out-%s.npy" % dtype)
                r = self.run_ok("sort", "--input", inp, "--output", out, "--check")
                self.assertTrue(r.stdout.strip())
                self.check_sorted_file(out, dtype, len(vals), payload)
                # the input file is never touched
                with open(inp, "rb") as f:
                    self.assertEqual(f.read()[-len(payload):], payload)

    def test_file_to_file_through_the_files_own_fds(self):
        """A sort from a file to a file hands the daemon the input's fd and the temporary
        output's (array fds): the file replaced keeps its mode, a link is followed, a FIFO is
        still written through, and no temporary file is left, also when the job is refused
        after the temporary file was made."""
        rng = random.Random(31)
        inp = path("fd-in.npy")
        payload = write_npy(inp, "f64", random_values("f64", 30000, rng))
        out = path("fd-out.npy")
        with open(out, "wb") as f:
            f.write(b"old")
        os.chmod(out, 0o640)
        self.run_ok("sort", "--input", inp, "--output", out, "--check")
        self.assertEqual(os.stat(out).st_mode & 0o7777, 0o640)
        self.check_sorted_file(out, "f64", 30000, payload)
        link = path("fd-link.npy")
        os.symlink(os.path.basename(out), link)
        raw = path("fd-in.u16be")  # any name: --dtype makes it raw values
        vals = random_values("u32", 5000, rng)
        rawload = struct.pack("<%dI" % len(vals), *vals)
        with open(raw, "wb") as f:
            f.write(rawload)
        self.run_ok("sort", "--input", raw, "--dtype", "u32", "--output", link, "--check")
        self.assertTrue(stat_is(os.lstat(link), "lnk"), "the link was replaced by a file")
        self.check_sorted_file(out, "u32", 5000, rawload)
        self.assertEqual(os.stat(out).st_mode & 0o7777, 0o640)
        fifo, got, t = fifo_reader("fd-out.fifo")
        self.run_ok("sort", "--input", inp, "--output", fifo)
        t.join(10)
        self.assertEqual(len(got), 1)
        self.assertEqual(len(got[0]), 128 + len(payload))
        self.assert_sorted_permutation("f64", payload, got[0][128:])
        never = path("fd-never.npy")
        r = self.run_fail(1, "sort", "--input", inp, "--output", never, "--threads", "200")
        self.assertIn("200", r.stderr)
        self.assertFalse(os.path.exists(never), "a refused job created its output")
        left = [f for f in os.listdir(TMP.name) if f.startswith(".fd-")]
        self.assertEqual(left, [], "temporary output files left behind")

    def test_input_every_backend_same_bytes(self):
        rng = random.Random(777)
        backends = [("serial",), ("native", "--threads", 2), ("locked", "--threads", 2),
                    ("locked", "--threads", 2, "--hold-lock")]
        if OPENCL is not None:
            backends.append(("opencl",))
        for dtype, n in (("i32", 200001), ("u64", 30001), ("f32", 30001), ("f64", 200001)):
            vals = random_values(dtype, n, rng)
            inp = path("be-%s.npy" % dtype)
            payload = write_npy(inp, dtype, vals)
            first = None
            for b in backends:
                with self.subTest(dtype=dtype, backend=b):
                    out = path("be-%s-%s.npy" % (dtype, b[0]))
                    self.run_ok("sort", "--input", inp, "--output", out, "--check",
                                "--backend", *b)
                    got = self.check_sorted_file(out, dtype, len(vals), payload)
                    if first is None:
                        first = got
                    else:
                        self.assertEqual(got, first, "%s differs from serial" % (b,))

    def test_nans_last(self):
        vals = [float("nan"), 3.0, -float("nan"), -1.5, float("inf"), float("nan"), -0.0,
                0.0, float("-inf"), 2.0, float("nan"), -0.0]
        for dtype in ("f32", "f64"):
            with self.subTest(dtype=dtype):
                inp = path("nan-%s.npy" % dtype)
                payload = write_npy(inp, dtype, vals)
                out = path("nan-%s-out.npy" % dtype)
                self.run_ok("sort", "--input", inp, "--output", out, "--check")
                got = unpack(dtype, self.check_sorted_file(out, dtype, len(vals), payload))
                self.assertEqual(got[:8], [float("-inf"), -1.5, -0.0, -0.0, 0.0, 2.0, 3.0,
                                           float("inf")])
                self.assertEqual([math.copysign(1, x) for x in got[2:5]], [-1, -1, 1])
                self.assertTrue(all(math.isnan(x) for x in got[8:]))

    def test_npy_version_2_and_shapes(self):
        vals = [5, -3, 9, 0, -3, 2 ** 31 - 1, -2 ** 31, 7]
        inp = path("v2.npy")
        payload = struct.pack("<8i", *vals)
        with open(inp, "wb") as f:
            f.write(npy_bytes("<i4", payload, (8,), version=(2, 0)))
        out = path("v2-out.npy")
        self.run_ok("sort", "--input", inp, "--output", out, "--check")
        self.check_sorted_file(out, "i32", 8, payload)
        # A 2-D array is refused (read flat, it came back with shape (8,)), nothing written.
        inp2 = path("2d.npy")
        with open(inp2, "wb") as f:
            f.write(npy_bytes("<i4", payload, (2, 4)))
        out2 = path("2d-out.npy")
        r = self.run_fail(4, "sort", "--input", inp2, "--output", out2)
        self.assertIn(inp2, r.stderr)
        self.assertIn("(2, 4)", r.stderr)
        self.assertIn("reshape(-1)", r.stderr)
        self.assertFalse(os.path.exists(out2))
        # version 3.0 (a UTF-8 header) with the keys in another order
        inp3 = path("v3.npy")
        with open(inp3, "wb") as f:
            f.write(npy_bytes("<i4", payload, (8,), version=(3, 0), header_text=
                              "{'shape': (8,), 'fortran_order': False, 'descr': '<i4'}"))
        out3 = path("v3-out.npy")
        self.run_ok("sort", "--input", inp3, "--output", out3)
        self.check_sorted_file(out3, "i32", 8, payload)

    def test_empty_and_single(self):
        for vals in ([], [42.5]):
            with self.subTest(n=len(vals)):
                inp = path("small-%d.npy" % len(vals))
                payload = write_npy(inp, "f64", vals)
                out = path("small-%d-out.npy" % len(vals))
                self.run_ok("sort", "--input", inp, "--output", out, "--check")
                self.check_sorted_file(out, "f64", len(vals), payload)

    def test_raw_input_and_output(self):
        rng = random.Random(5)
        vals = random_values("i64", 5000, rng)
        raw = path("in.i64")
        payload = struct.pack("<%dq" % len(vals), *vals)
        with open(raw, "wb") as f:
            f.write(payload)
        out = path("out.raw")
        self.run_ok("sort", "--input", raw, "--dtype", "i64", "--output", out, "--raw",
                    "--check")
        with open(out, "rb") as f:
            got = f.read()
        self.assertEqual(len(got), len(payload))
        self.assert_sorted_permutation("i64", payload, got)
        # .npy input, raw output
        inp = path("in-raw-out.npy")
        p2 = write_npy(inp, "u32", random_values("u32", 3000, rng))
        out2 = path("out2.raw")
        self.run_ok("sort", "--input", inp, "--output", out2, "--raw")
        with open(out2, "rb") as f:
            self.assert_sorted_permutation("u32", p2, f.read())
        # a raw file whose size is not a multiple of the element size is a bad input
        odd = path("odd.i32")
        with open(odd, "wb") as f:
            f.write(b"\x01\x02\x03\x04\x05")
        r = self.run_fail(4, "sort", "--input", odd, "--dtype", "i32")
        self.assertIn(odd, r.stderr)

    def test_json_and_text(self):
        inp = path("jt.npy")
        write_npy(inp, "i32", list(range(1000, 0, -1)))
        out = path("jt-out.npy")
        d = self.run_json("sort", "--input", inp, "--output", out, "--check")
        text = json.dumps(d)
        self.assertIn("1000", text)
        self.assertEqual(d["n"], 1000)
        r = self.run_ok("sort", "--input", inp, "--check")
        self.assertIn("1000", r.stdout)

    def test_opencl_sort(self):
        self.need_opencl()
        rng = random.Random(9)
        for dtype in ("f32", "u32"):
            with self.subTest(dtype=dtype):
                inp = path("cl-%s.npy" % dtype)
                payload = write_npy(inp, dtype, random_values(dtype, 10000, rng))
                out = path("cl-%s-out.npy" % dtype)
                self.run_ok("sort", "--input", inp, "--output", out, "--check",
                            "--backend", "opencl")
                self.check_sorted_file(out, dtype, 10000, payload)
        out = path("cl-gen.npy")
        self.run_ok("sort", "-n", 100000, "--dtype", "i64", "--dist", "reversed", "--check",
                    "--backend", "opencl", "--output", out)
        self.check_sorted_file(out, "i64", 100000)


# ---------------------------------------------------------------- compare

THREADS = [1, 2]


def compare_backends():
    return "serial,native,locked" + (",opencl" if OPENCL is not None else "")


def expected_rows():
    return 1 + 2 * len(THREADS) + (1 if OPENCL is not None else 0)


def expected_configs():
    """(backend, threads) per row, in the daemon's order."""
    rows = [("serial", 1)]
    rows += [("native", t) for t in THREADS]
    rows += [("locked", t) for t in THREADS]
    if OPENCL is not None:
        rows.append(("opencl", 0))
    return rows


class TestCompare(Case):
    def compare(self, job, *extra, fmt=()):
        if job == "pi":
            job_args = ["-n", "2e6", "--seed", 3]
        else:
            job_args = ["-n", 200000, "--dtype", "f64"]
        return self.run_ok(*fmt, "compare", job, *job_args, "--backends", compare_backends(),
                           "--threads", ",".join(map(str, THREADS)), "--repeat", 2, *extra)

    def check_json(self, job):
        d = json.loads(self.compare(job, fmt=("--json",)).stdout)
        rows = d["rows"]
        self.assertEqual(len(rows), expected_rows())
        self.assertEqual([(r["backend"], r["threads"]) for r in rows], expected_configs())
        self.assertEqual(rows[0]["backend"], "serial")
        self.assertEqual(rows[0]["speedup"], 1.0)
        for r in rows:
            self.assertGreater(r["speedup"], 0)
            for k in ("median_ns", "min_ns", "max_ns"):
                self.assertIn(k, r)
            self.assertLessEqual(r["min_ns"], r["median_ns"])
            self.assertLessEqual(r["median_ns"], r["max_ns"])
            self.assertEqual(r["repeat"], 2)
        if job == "pi":
            self.assertEqual(len({r["hits"] for r in rows}), 1, rows)
            self.assertLess(abs(rows[0]["estimate"] - math.pi), 0.01)
        return d

    def test_compare_pi_json(self):
        self.check_json("pi")

    def test_compare_sort_json(self):
        self.check_json("sort")

    def check_text_and_plot(self, job):
        svg = path("compare-%s.svg" % job)
        out = self.compare(job, "--plot", svg).stdout
        lines = out.splitlines()
        # a header line, then one line per configuration, serial first, up to a blank line
        head = next(i for i, l in enumerate(lines) if l.split()[:1] == ["backend"])
        rows = []
        for l in lines[head + 1:]:
            if not l.strip():
                break
            m = re.match(r"(\w+)\s+(.+?)\s+(\d+|-)\s+(split|replicate)\s", l)
            self.assertTrue(m, "not a table row: %r" % l)
            rows.append((m.group(1), m.group(3)))
        self.assertEqual(rows, [(b, str(t) if t else "-") for b, t in expected_configs()], out)
        self.assertRegex(out, r"(?m)^serial .* 1\.00x ")
        if OPENCL is not None and DEVICES["devices"][OPENCL]["label"] == "PoCL CPU":
            self.assert_never_gpu(out)
        self.check_svg(svg)

    def check_svg(self, svg):
        root = ET.parse(svg).getroot()
        self.assertEqual(root.tag, SVG_NS + "svg")
        lines = root.findall(".//" + SVG_NS + "polyline") + root.findall(".//" + SVG_NS + "path")
        self.assertTrue(lines, "no polyline/path in " + svg)
        texts = " ".join("".join(t.itertext()) for t in root.iter(SVG_NS + "text"))
        for b in ("serial", "native", "locked"):
            self.assertIn(b, texts)
        if OPENCL is not None:
            self.assertIn("opencl", texts)
            if DEVICES["devices"][OPENCL]["label"] == "PoCL CPU":
                self.assert_never_gpu(texts)
        self.assertIn("threads", texts)  # the x axis

    def test_compare_pi_text_plot(self):
        self.check_text_and_plot("pi")

    def test_compare_sort_text_plot(self):
        self.check_text_and_plot("sort")

    def check_csv(self, job):
        out = self.compare(job, "--csv").stdout
        rows = list(csv.reader(io.StringIO(out)))
        rows = [r for r in rows if r]
        self.assertEqual(len(rows), 1 + expected_rows(), out)
        header = rows[0]
        self.assertIn("backend", header)
        self.assertTrue(all(len(r) == len(header) for r in rows), out)
        bi = header.index("backend")
        self.assertEqual([r[bi] for r in rows[1:]], [b for b, _ in expected_configs()])
        if job == "pi" and "hits" in header:
            hi = header.index("hits")
            self.assertEqual(len({r[hi] for r in rows[1:]}), 1)

    def test_compare_pi_csv(self):
        self.check_csv("pi")

    def test_compare_sort_csv(self):
        self.check_csv("sort")

    def test_compare_sort_input(self):
        inp = path("cmp-in.npy")
        vals = random_values("i64", 50000, random.Random(3))
        write_npy(inp, "i64", vals)
        with open(inp, "rb") as f:
            before = f.read()
        d = json.loads(self.run_ok("--json", "compare", "sort", "--input", inp, "--backends",
                                   "native,locked", "--threads", "2", "--repeat", 1).stdout)
        self.assertEqual([(r["backend"], r["threads"]) for r in d["rows"]],
                         [("serial", 1), ("native", 2), ("locked", 2)])
        self.assertEqual(d["n"], len(vals))
        for r in d["rows"]:
            self.assertEqual(r["n"], len(vals))
        with open(inp, "rb") as f:
            self.assertEqual(f.read(), before, "compare sort changed its input file")

    def test_compare_replicate(self):
        d = json.loads(self.run_ok("--json", "compare", "pi", "-n", "1e6", "--backends",
                                   "native", "--threads", "2", "--replicate", "--repeat", 1
                                   ).stdout)
        rows = d["rows"]
        self.assertEqual([r["backend"] for r in rows], ["serial", "native"])
        self.assertEqual(rows[1]["threads"], 2)


# ---------------------------------------------------------------- warnings from a noisy run

def daemon_cpu_s():
    """The daemon's CPU time so far (user + system), in seconds, at the clock tick's grain."""
    with open("/proc/%d/stat" % DAEMON.pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is the state, field 3 of stat(5)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DaemonPauser:
    """Freezes the daemon with SIGSTOP and thaws it with SIGCONT from a thread, while a
    hybridctl run in the test's own thread waits: every run the daemon is timing when it
    freezes lasts that much longer on its wall clock, as if another program took the CPU.
    On leaving, the thread is stopped and the daemon always continued: a daemon left stopped
    would hang every later test."""

    def __init__(self, schedule):
        self.schedule = schedule  # schedule(stop_event, pause) in the thread; pause(seconds)
        self.stop = threading.Event()
        self.pauses = 0
        self.error = None

    def pause(self, seconds):
        os.kill(DAEMON.pid, signal.SIGSTOP)
        try:
            self.pauses += 1
            time.sleep(seconds)
        finally:
            os.kill(DAEMON.pid, signal.SIGCONT)

    def run(self):
        try:
            self.schedule(self.stop, self.pause)
        except Exception as e:  # noqa: BLE001 - handed to the test, which fails with it
            self.error = e

    def __enter__(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        try:
            self.thread.join(timeout=60)
        finally:
            os.kill(DAEMON.pid, signal.SIGCONT)
        if self.error is not None and exc[0] is None:
            raise self.error
        return False


class TestNoisyWarnings(Case):
    """compare's warnings under the table (and in --json) from a deliberately noisy run: the
    daemon is frozen with SIGSTOP while it times its runs. When to pause is counted in the
    daemon's own CPU time, and how long in multiples of one run's CPU time measured first on
    this daemon, so that the test means the same on a loaded machine and under a sanitizer's
    slower daemon; nothing asserts on elapsed time."""
    # A run's CPU time (seconds) in each test: long against the clock tick (10 ms) and the
    # pauser's reaction, short enough to keep each test to seconds.
    RUN_S = {"noisy": 0.05, "warmup": 0.15}
    pi_rate = None  # serial pi samples per CPU second in the daemon, measured once

    def pi_n(self, run_s):
        """pi's n for serial runs of about run_s seconds of the daemon's CPU."""
        cls = type(self)
        n = 20000000
        while cls.pi_rate is None:
            before = daemon_cpu_s()
            self.run_ok("pi", "-n", n, "--backend", "serial", "-q")
            cpu = daemon_cpu_s() - before
            if cpu >= 0.15:  # 15 clock ticks or more: good to a few percent
                cls.pi_rate = n / cpu
            else:
                n = int(n * min(100, 0.3 / max(cpu, 0.01)))
        return max(1000000, int(cls.pi_rate * run_s))

    def warnings_text(self, out):
        """The notes under a compare table, without their "note: " prefix."""
        return [l[len("note: "):] for l in out.splitlines() if l.startswith("note: ")]

    def named(self, warnings, prefix, suffix):
        """The rows that the one warning starting with prefix names, in order ("serial 1T,
        native 1T" -> ["serial 1T", "native 1T"]); fails when there is no such warning."""
        hits = [w for w in warnings if w.startswith(prefix)]
        self.assertEqual(len(hits), 1, "want one %r warning, got %r" % (prefix, warnings))
        at = hits[0].find(suffix)
        self.assertGreater(at, 0, "warning %r lacks %r" % (hits[0], suffix))
        return hits[0][len(prefix):at].split(", ")

    def random_pauses(self, run_s, seed):
        """Pauses of 3 runs' time, each after the daemon has computed for 1.5 to 3.5 runs'
        time since the last (seeded: the same gaps every time): 9 timed runs in a row are
        always hit at least twice, and none is hit twice, so their standard deviation is far
        above 10% of their mean unless every one of them is hit, which needs 8 gaps in a row
        that end in the very next run (about 1 in 4 each)."""
        rng = random.Random(seed)

        def schedule(stop, pause):
            due = daemon_cpu_s() + rng.uniform(1.5, 3.5) * run_s
            while not stop.wait(0.005):
                if daemon_cpu_s() >= due:
                    pause(3 * run_s)
                    due = daemon_cpu_s() + rng.uniform(1.5, 3.5) * run_s
        return schedule

    def noisy_compare(self, fmt, seed):
        run_s = self.RUN_S["noisy"]
        n = self.pi_n(run_s)
        with DaemonPauser(self.random_pauses(run_s, seed)) as p:
            r = self.run_ok(*fmt, "compare", "pi", "-n", n, "--backends", "serial,native",
                            "--threads", 1, "--repeat", 9, "-q")
        self.assertGreater(p.pauses, 0, "the daemon was never paused")
        return r.stdout

    def test_noisy_rows_named_in_text_and_json(self):
        suffix = " (standard deviation above 10% of the mean)"
        out = self.noisy_compare((), seed=21)
        noisy = self.named(self.warnings_text(out), "noisy: ", suffix)
        self.assertLessEqual(set(noisy), {"serial 1T", "native 1T"}, out)
        for name in noisy:  # the table's sd column agrees: above 10% on a named row
            backend = name.split()[0]
            m = re.search(r"(?m)^%s\s.*\s(\d+\.\d)%%\s" % backend, out)
            self.assertTrue(m, "no sd for %s in\n%s" % (backend, out))
            self.assertGreater(float(m.group(1)), 10.0, out)

        d = json.loads(self.noisy_compare(("--json",), seed=2026))
        noisy = self.named(d["warnings"], "noisy: ", suffix)
        # named: exactly the rows whose runs spread above 10% of their mean
        spread = ["%s %dT" % (r["backend"], r["threads"]) for r in d["rows"]
                  if r["stddev_ns"] > 0.10 * r["mean_ns"]]
        self.assertEqual(noisy, spread, d)
        for r in d["rows"]:
            self.assertEqual(r["repeat"], 9)
            self.assertLessEqual(r["min_ns"], r["q1_ns"])
            self.assertLessEqual(r["q1_ns"], r["median_ns"])
            self.assertLessEqual(r["median_ns"], r["q3_ns"])
            self.assertLessEqual(r["q3_ns"], r["max_ns"])

    def pause_in_first_run(self, run_s):
        """One pause of 6 runs' time once the daemon has computed for a quarter of a run
        since the compare began: inside its first run, the warm-up, which then takes several
        times the median of the timed runs even where a loaded machine stretches them."""
        def schedule(stop, pause):
            start = daemon_cpu_s()
            while not stop.wait(0.005):
                if daemon_cpu_s() - start >= run_s / 4:
                    pause(6 * run_s)
                    return
        return schedule

    def test_slow_first_run_text_and_json(self):
        run_s = self.RUN_S["warmup"]
        n = self.pi_n(run_s)
        suffix = " (the warm-up took over 2x the median"
        for fmt in ((), ("--json",)):
            with DaemonPauser(self.pause_in_first_run(run_s)) as p:
                out = self.run_ok(*fmt, "compare", "pi", "-n", n, "--backends", "serial",
                                  "--repeat", 3, "-q").stdout
            self.assertEqual(p.pauses, 1, "the daemon was not paused in its warm-up")
            if fmt:
                d = json.loads(out)
                self.assertEqual(self.named(d["warnings"], "slow first run: ", suffix),
                                 ["serial 1T"], d)
                row = d["rows"][0]
                self.assertGreater(row["warmup_ns"], 2 * row["median_ns"], row)
            else:
                self.assertEqual(self.named(self.warnings_text(out), "slow first run: ",
                                            suffix), ["serial 1T"], out)


# ---------------------------------------------------------------- the process backend

def daemon_children():
    """Pids of the daemon's child processes (the process backend's workers)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == DAEMON.pid:
            kids.append(int(name))
    return kids


class TestProcess(Case):
    def test_pi_same_hits_as_native(self):
        native = self.run_json("pi", "-n", PI_N, "--seed", 11, "--backend", "native")
        self.assertEqual(native["transport"], None)
        runs = [(t, x) for t in range(1, PROCESS_WORKERS + 1) for x in ("pipe", "shm")]
        for t, x in runs:
            with self.subTest(threads=t, transport=x):
                row = self.run_json("pi", "-n", PI_N, "--seed", 11, "--backend", "process",
                                    "--threads", t, "--transport", x)
                self.assertEqual(row["backend"], "process")
                self.assertEqual(row["device"], "CPU")
                self.assertEqual(row["threads"], t)
                self.assertEqual(row["mode"], "split")
                self.assertEqual(row["transport"], x)
                self.assertEqual(row["n"], PI_N)
                self.assertEqual(row["hits"], native["hits"], row)
                self.assertEqual(row["estimate"], native["estimate"])
                for k in ("bytes_moved", "startup_ns", "merge_ns", "workers_started"):
                    self.assertGreaterEqual(row[k], 0, k)
        # no --threads: the whole pool, as DEVICES reports it; no --transport: pipe
        row = self.run_json("pi", "-n", PI_N, "--seed", 11, "--backend", "process")
        self.assertEqual(row["threads"], DEVICES["cpu"]["process_workers"])
        self.assertEqual(row["transport"], "pipe")
        self.assertEqual(row["hits"], native["hits"])
        text = self.run_ok("pi", "-n", PI_N, "--backend", "process", "--threads", 2,
                           "--transport", "shm").stdout
        self.assertIn("process, 2 worker processes, shm transport, CPU", text)
        self.assertIn("sending parts", text)

    def test_sort_pipe_and_shm_same_file_as_native(self):
        for dtype, n in (("f64", 300001), ("i32", 250000)):
            native = path("proc-native-%s.npy" % dtype)
            self.run_ok("sort", "-n", n, "--dtype", dtype, "--dist", "normal", "--seed", 5,
                        "--backend", "native", "--output", native, "--check")
            with open(native, "rb") as f:
                want = f.read()
            self.check_sorted(dtype, n, native)
            for x in ("pipe", "shm"):
                with self.subTest(dtype=dtype, transport=x):
                    out = path("proc-%s-%s.npy" % (x, dtype))
                    row = self.run_json("sort", "-n", n, "--dtype", dtype, "--dist", "normal",
                                        "--seed", 5, "--backend", "process", "--transport", x,
                                        "--output", out, "--check")
                    self.assertEqual(row["backend"], "process")
                    self.assertEqual(row["transport"], x)
                    self.assertEqual(row["threads"], PROCESS_WORKERS)
                    self.assertIs(row["checked"], True)
                    with open(out, "rb") as f:
                        self.assertEqual(f.read(), want, "%s differs from native" % out)
                    size = n * struct.calcsize(DTYPES[dtype][1])
                    if x == "pipe":  # every part goes out and comes back
                        self.assertGreaterEqual(row["bytes_moved"], 2 * size, row)
                    else:  # only offsets travel
                        self.assertLess(row["bytes_moved"], size // 10, row)

    def check_sorted(self, dtype, n, out):
        got, shape, payload = read_npy(out)
        self.assertEqual((got, shape), (dtype, (n,)))
        self.assertIsNone(first_out_of_order(dtype, payload))

    def test_compare_pi_both_transports(self):
        args = ("compare", "pi", "-n", "2e6", "--seed", 4, "--backends", "serial,native,process",
                "--transport", "pipe,shm", "--threads", "1,2", "--repeat", 2)
        d = self.run_json(*args)
        rows = d["rows"]
        self.assertEqual([(r["backend"], r["threads"], r["transport"]) for r in rows],
                         [("serial", 1, None), ("native", 1, None), ("native", 2, None),
                          ("process", 1, "pipe"), ("process", 2, "pipe"),
                          ("process", 1, "shm"), ("process", 2, "shm")])
        self.assertEqual(len({r["hits"] for r in rows}), 1, rows)
        for r in rows:
            if r["backend"] == "process":
                self.assertEqual(r["device"], "CPU")
                self.assertEqual(r["mode"], "split")
                self.assertIsNotNone(r["transfer_share"], r)
                self.assertGreaterEqual(r["transfer_share"], 0)
                self.assertLessEqual(r["transfer_share"], 1)
                self.assertGreater(r["speedup"], 0)
                for k in ("bytes_moved", "startup_ns", "merge_ns", "workers_started"):
                    self.assertIn(k, r)
            else:
                self.assertIsNone(r["transfer_share"])
        # the table: a transport column, the split, the footnote
        out = self.run_ok(*args).stdout
        lines = out.splitlines()
        head = next(l for l in lines if l.startswith("backend "))
        self.assertIn("transport", head)
        self.assertIn("h2d/kernel/d2h ms", head)
        col = head.index("transport")
        procs = [l for l in lines if l.startswith("process ")]
        self.assertEqual([l[col:].split()[0] for l in procs], ["pipe", "pipe", "shm", "shm"],
                         out)
        for l in procs:
            self.assertRegex(l, r" \d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3} +\d+\.\d%$")
        self.assertIn("sending the parts to the worker processes", out)
        self.assertIn("shm moves only offsets", out)
        # CSV: the new columns at the end
        rows = list(csv.reader(io.StringIO(self.run_ok(*args, "--csv").stdout)))
        header = rows[0]
        self.assertEqual(header[-19:], ["transport", "bytes_moved", "startup_ns", "merge_ns",
                                        "workers_started", "mean_ns", "stddev_ns", "q1_ns",
                                        "q3_ns", "warmup_ns", "predicted_ns", "cpu_items",
                                        "cpu_busy_ns", "dev_busy_ns", "cpu_chunks",
                                        "dev_chunks", "devices_used", "balance", "overlap_ns"])
        # every compare row ran a warm-up and its timed runs: their spread comes with them
        for r in rows[1:]:
            q1, med, q3 = (int(r[header.index(k)]) for k in ("q1_ns", "median_ns", "q3_ns"))
            self.assertTrue(0 < q1 <= med <= q3, r)
            self.assertGreater(int(r[header.index("warmup_ns")]), 0, r)
        self.assertEqual(header[:4], ["backend", "device", "threads", "mode"])
        self.assertEqual([r[header.index("transport")] for r in rows[1:]],
                         ["", "", "", "pipe", "pipe", "shm", "shm"])

    def test_compare_sort_plot_labels_transports(self):
        svg = path("process.svg")
        self.run_ok("compare", "sort", "-n", 100000, "--dtype", "i32", "--backends", "process",
                    "--transport", "pipe,shm", "--threads", "1,2", "--repeat", 1, "--plot", svg)
        root = ET.parse(svg).getroot()
        texts = [("".join(t.itertext())) for t in root.iter(SVG_NS + "text")]
        self.assertIn("process/pipe", texts)
        self.assertIn("process/shm", texts)
        titles = [t.text for t in root.iter(SVG_NS + "title")]
        for x in ("pipe", "shm"):
            for t in (1, 2):
                self.assertTrue(any(s and s.startswith("process/%s T=%d: " % (x, t))
                                    for s in titles), titles)

    def test_compare_defaults(self):
        # process joins the default backends when the daemon has a pool (pipe only by default)
        d = self.run_json("compare", "pi", "-n", "1e5", "--threads", 2, "--repeat", 1)
        self.assertIn(("process", 2, "pipe"),
                      [(r["backend"], r["threads"], r["transport"]) for r in d["rows"]])
        self.assertEqual(sum(1 for r in d["rows"] if r["backend"] == "process"), 1)
        # ... but not a replicate comparison: process splits only
        d = self.run_json("compare", "pi", "-n", "1e5", "--threads", 2, "--repeat", 1,
                          "--replicate")
        self.assertNotIn("process", [r["backend"] for r in d["rows"]])

    def test_usage(self):
        r = self.run_fail(2, "pi", "-n", "1e6", "--backend", "native", "--transport", "shm")
        self.assertIn("--transport", r.stderr)
        r = self.run_fail(2, "compare", "pi", "-n", "1e6", "--backends", "process",
                          "--replicate")
        self.assertIn("split", r.stderr)
        self.run_fail(2, "pi", "-n", "1e6", "--backend", "process", "--replicate")
        self.run_fail(2, "pi", "-n", "1e6", "--backend", "process", "--transport", "tcp")
        self.run_fail(2, "compare", "pi", "-n", "1e6", "--backends", "native",
                      "--transport", "shm")
        # more workers than the pool: the daemon's sentence
        r = self.run_fail(1, "pi", "-n", "1e6", "--backend", "process", "--threads",
                          PROCESS_WORKERS + 1)
        self.assertIn("process_workers", r.stderr)

    def test_worker_killed_is_eworker(self):
        p = subprocess.Popen(ctl_argv("pi", "-n", "2e10", "--backend", "process"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            # The kill must land while the workers hold their parts: a worker killed before
            # the job reached it is restarted by the job, which then succeeds. "running" comes
            # before that; done > 0 only once the workers count, however slow the daemon.
            deadline = time.monotonic() + 20
            while not any(j["done"] > 0 for j in
                          json.loads(self.run_ok("--json", "jobs").stdout)["jobs"]):
                if p.poll() is not None:
                    self.fail("the job ended before it was seen running: %r" % (p.communicate(),))
                self.assertLess(time.monotonic(), deadline, "the job never started counting")
                time.sleep(0.05)
            kids = daemon_children()
            self.assertEqual(len(kids), PROCESS_WORKERS, kids)
            os.kill(kids[0], signal.SIGKILL)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 1, "stdout: %s\nstderr: %s" % (out, err))
        self.assertIn("(EWORKER)", err)
        self.assertRegex(err, r"[a-z]{3,} [a-z]{3,}")  # a sentence, not only the code
        self.assertEqual(out, "")
        # the dead worker was replaced: the pool runs whole jobs again
        row = self.run_json("pi", "-n", "1e5", "--backend", "process")
        self.assertEqual(row["threads"], PROCESS_WORKERS)
        self.assertEqual(len(daemon_children()), PROCESS_WORKERS)


# ---------------------------------------------------------------- cancel

class TestAuto(Case):
    # A size no other test runs, so that this class alone decides what the history knows of it.
    N = 3 * 2 ** 13

    def auto_line(self, *args):
        out = self.run_ok(*args).stdout
        lines = [l for l in out.splitlines() if l.startswith("auto ")]
        self.assertEqual(len(lines), 1, out)
        return lines[0]

    def test_auto_explores_then_chooses_and_says_so(self):
        base = {"native", "locked", "serial", "process"}
        if OPENCL is not None:
            base.add("opencl")
        explored, chose = [], None
        # A base configuration is trusted after 6 runs (the first after start is not kept),
        # so exploring takes at most 6 runs of each.
        for _ in range(6 * len(base) + 1):
            line = self.auto_line("pi", "-n", self.N, "--backend", "auto")
            m = re.match(r"auto explored (\w+), .*too few runs of it at this size; took "
                         r"\d+\.\d{3} ms\)$", line)
            if m:
                explored.append(m.group(1))
                continue
            m = re.match(r"auto chose (\w+), .*\(predicted fastest, \d+\.\d{3} ms; took "
                         r"\d+\.\d{3} ms\)$", line)
            self.assertIsNotNone(m, line)
            chose = m.group(1)
            break
        self.assertIsNotNone(chose, "auto never stopped exploring: %s" % explored)
        # native with its whole pool first: the default of a daemon that knows nothing
        self.assertEqual(explored[0], "native", explored)
        self.assertEqual(set(explored), base, explored)
        self.assertIn(chose, base)
        # Choosing is not final: a run that changes what the history knows can reopen a
        # candidate (serial seen faster than native on a job this small lifts native's bound
        # on locked; a slower median lifts the exploring cap), and under a sanitizer's timing
        # that happened. Each candidate still takes at most its 6 runs, so auto settles.
        for _ in range(6 * len(base) + 1):
            row = self.run_json("pi", "-n", self.N, "--backend", "auto")
            self.assertTrue(row["auto"], row)
            if not row["explore"]:
                break
        self.assertFalse(row["explore"], "auto kept exploring: %s" % row)
        self.assertGreater(row["predicted_ns"], 0)
        self.assertIn(row["backend"], base)
        # compare shows each row's prediction beside its median
        out = self.run_ok("compare", "pi", "-n", self.N, "--backends", "native").stdout
        head = [l for l in out.splitlines() if l.startswith("backend ")]
        self.assertEqual(len(head), 1, out)
        self.assertIn("median ms  predicted ms", head[0])
        cmp = self.run_json("compare", "pi", "-n", self.N, "--backends", "native")
        preds = {(r["backend"], r["threads"]): r["predicted_ns"] for r in cmp["rows"]}
        self.assertGreater(preds[("serial", 1)], 0, preds)
        self.assertGreater(preds[("native", 2)], 0, preds)
        for r in cmp["rows"]:
            self.assertFalse(r["auto"] or r["explore"], r)

    def test_auto_sort_is_every_backend_sort(self):
        out, ref = path("auto-sorted.npy"), path("serial-sorted.npy")
        for backend, to in (("auto", out), ("serial", ref)):
            self.run_ok("sort", "-n", 20000, "--dtype", "f64", "--seed", 5, "--backend",
                        backend, "--output", to)
        with open(out, "rb") as a, open(ref, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_auto_refuses_what_it_chooses_itself(self):
        for extra in (["--threads", 2], ["--device", 0], ["--transport", "shm"], ["--nogil"],
                      ["--replicate"], ["--switch-interval", 1000]):
            with self.subTest(extra=extra):
                r = self.run_fail(2, "pi", "-n", 1000, "--backend", "auto", *extra)
                self.assertIn("--backend auto chooses", r.stderr)
        r = self.run_fail(2, "compare", "pi", "-n", 1000, "--backends", "native,auto")
        self.assertIn("auto is for a single job", r.stderr)
        self.assertIn("or auto", self.run_fail(2, "pi", "-n", 1000, "--backend", "cuda").stderr)
        job = ctl("--list", "job-backends", sock=False).stdout.split()
        both = ctl("--list", "backends", sock=False).stdout.split()
        self.assertEqual(job, both + ["auto"])
        self.assertIn("auto", self.run_ok("pi", "--help").stdout)


class TestCancel(Case):
    def test_ctrl_c_cancels(self):
        before = json.loads(self.run_ok("--json", "status").stdout)
        p = subprocess.Popen(ctl_argv("--json", "pi", "-n", "2e10", "--backend", "serial"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            # Wait until the daemon runs it (so hybridctl has its job id), then Ctrl-C.
            deadline = time.monotonic() + 20
            while json.loads(self.run_ok("--json", "status").stdout)["jobs"]["running"] < 1:
                if p.poll() is not None:
                    self.fail("the job ended before it was seen running: %r"
                              % (p.communicate(),))
                self.assertLess(time.monotonic(), deadline, "the job never started running")
                time.sleep(0.05)
            time.sleep(0.5)
            self.assertIsNone(p.poll(), "a 2e10-sample pi finished at once?")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 1, "stdout: %s\nstderr: %s" % (out, err))
        self.assertIn("cancel", err.lower())
        # --json: the one document is the error's (TestJsonErrors checks its shape)
        self.assertEqual(json.loads(out)["error"]["name"], "ECANCELED")
        after = json.loads(self.run_ok("--json", "status").stdout)
        self.assertEqual(after["jobs"]["cancelled"], before["jobs"]["cancelled"] + 1)
        self.run_ok("pi", "-n", "1e5")  # the daemon goes on

    def test_killed_while_its_sort_waits_leaves_no_file(self):
        """A file-to-file sort's output file exists, unnamed, while the daemon has its fd: a
        hybridctl killed meanwhile (no chance to clean up) leaves nothing in the directory."""
        inp = path("kw-in.npy")
        write_npy(inp, "i32", [3, 1, 2] * 1000)
        out = path("kw-out.npy")
        hold = subprocess.Popen(ctl_argv("pi", "-n", "2e10", "--backend", "serial"),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        sorter = None
        def wait_jobs(key, count, what):
            deadline = time.monotonic() + 20
            while json.loads(self.run_ok("--json", "status").stdout)["jobs"][key] < count:
                self.assertLess(time.monotonic(), deadline, what)
                time.sleep(0.05)
        try:
            wait_jobs("running", 1, "the pi that holds the CPU never started")
            sorter = subprocess.Popen(ctl_argv("sort", "--input", inp, "--output", out),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            wait_jobs("queued", 1, "the sort was never queued behind the pi")
            sorter.kill()
            sorter.wait(timeout=30)
        finally:
            for p in (hold, sorter):
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGINT)
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
        self.assertFalse(os.path.exists(out), "a killed sort left its output")
        left = [f for f in os.listdir(TMP.name) if f.startswith(".kw-")]
        self.assertEqual(left, [], "a killed sort left a temporary file")
        self.run_ok("sort", "--input", inp, "--output", out)  # the daemon goes on
        self.assertEqual(read_npy(out)[1], (3000,))

    def test_cancel_unknown_job(self):
        r = self.run_fail(1, "cancel", "999999")
        self.assertGreaterEqual(len(r.stderr.split()), 5, r.stderr)  # a sentence, not a code
        self.assertIn("999999", r.stderr)


# ---------------------------------------------------------------- exit codes

class TestExitCodes(Case):
    NOWHERE = "/nonexistent-hybridd-dir/s.sock"

    def test_usage_errors(self):
        cases = [
            ["frobnicate"],
            ["--bogus", "ping"],
            ["pi", "-n", "1e6", "--bogus"],
            ["pi"],
            ["pi", "-n", "10X"],
            ["pi", "-n", "-5"],
            ["pi", "-n", "1e6", "--nogil"],
            ["pi", "-n", "1e6", "--backend", "native", "--hold-lock"],
            ["pi", "-n", "1e6", "--backend", "gpu"],
            ["pi", "-n", "1e6", "--transport", "shm"],
            ["pi", "-n", "1e6", "--backend", "native", "--transport", "pipe"],
            ["pi", "-n", "1e6", "--backend", "process", "--transport", "udp"],
            ["pi", "-n", "1e6", "--backend", "process", "--replicate"],
            ["compare", "pi", "-n", "1e6", "--backends", "process", "--replicate"],
            ["compare", "pi", "-n", "1e6", "--transport", "shm", "--replicate"],
            ["compare", "pi", "-n", "1e6", "--backends", "native", "--transport", "shm"],
            ["sort", "--input", "x.npy", "-n", "100"],
            ["sort", "-n", "100", "--dtype", "f16"],
            ["sort", "-n", "100", "--dtype", "f64", "--dist", "zipf"],
            ["sort", "-n", "100"],
            ["sort"],
            ["compare"],
            ["compare", "pi", "-n", "1e6", "--threads", "0"],
            ["ping", "extra"],
            ["cancel"],
            [],
        ]
        for args in cases:
            with self.subTest(args=args):
                # Usage is checked before connecting: exit 2 even with no daemon there.
                for sock in (SOCK, self.NOWHERE):
                    r = subprocess.run([HYBRIDCTL, "-s", sock] + args, capture_output=True,
                                       text=True, timeout=30, stdin=subprocess.DEVNULL)
                    self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
                    self.assertTrue(r.stderr.strip())
                    self.assertEqual(r.stdout, "")

    def test_help_and_version(self):
        r = subprocess.run([HYBRIDCTL, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        for cmd in ("ping", "status", "devices", "cancel", "pi", "sort", "compare"):
            self.assertIn(cmd, r.stdout)
        for word in ("process", "--transport", "pipe", "shm"):
            self.assertIn(word, r.stdout)
        r = subprocess.run([HYBRIDCTL, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertIn("hybridctl", r.stdout)

    def test_unreachable(self):
        for args in (["ping"], ["status"], ["pi", "-n", "1e6"]):
            with self.subTest(args=args):
                r = subprocess.run([HYBRIDCTL, "-s", self.NOWHERE] + args, capture_output=True,
                                   text=True, timeout=30, stdin=subprocess.DEVNULL)
                self.assertEqual(r.returncode, 3, r.stderr)
                self.assertIn(self.NOWHERE, r.stderr)
                self.assertIn("hybridd", r.stderr)
                self.assertIn("start", r.stderr)
        env = dict(os.environ, HYBRIDD_SOCKET=self.NOWHERE)
        r = ctl("ping", sock=False, env=env)
        self.assertEqual(r.returncode, 3)
        self.assertIn(self.NOWHERE, r.stderr)
        # a path that exists but is no socket
        notsock = path("not-a-socket")
        open(notsock, "w").close()
        r = subprocess.run([HYBRIDCTL, "-s", notsock, "ping"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 3, r.stderr)

    def bad_files(self):
        """(name, bytes) of .npy files hybridctl must refuse."""
        good = struct.pack("<4d", 1.0, 2.0, 3.0, 4.0)
        return [
            ("bigendian.npy", npy_bytes(">f8", struct.pack(">4d", 1, 2, 3, 4), (4,))),
            ("fortran.npy", npy_bytes("<f8", good, (2, 2), fortran=True)),
            ("complex.npy", npy_bytes("<c16", good, (2,))),
            ("half.npy", npy_bytes("<f2", good[:8], (4,))),
            ("bool.npy", npy_bytes("|b1", b"\x01\x00\x01\x00", (4,))),
            ("truncated.npy", npy_bytes("<f8", good, (4,))[:-5]),
            ("lying-shape.npy", npy_bytes("<f8", good, (400,))),
            ("bad-magic.npy", npy_bytes("<f8", good, (4,), magic=b"\x93NUMPZ")),
            ("text.npy", b"hello, this is not an array\n"),
            ("header-garbage.npy", npy_bytes("<f8", good, (4,),
                                             header_text="{'descr': '<f8', 'shape': (4,")),
            ("empty.npy", b""),
            ("version9.npy", npy_bytes("<f8", good, (4,), version=(9, 0))),
            ("too-long.npy", npy_bytes("<f8", good + b"\0" * 8, (4,))),
        ]

    def test_bad_input_files(self):
        for name, data in self.bad_files() + [("missing.npy", None)]:
            with self.subTest(file=name):
                inp = path(name)
                if data is not None:
                    with open(inp, "wb") as f:
                        f.write(data)
                out = path("bad-out-" + name)
                r = self.run_fail(4, "sort", "--input", inp, "--output", out)
                self.assertIn(inp, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1,
                                 "more than one line: " + r.stderr)
                self.assertFalse(os.path.exists(out), "%s was created" % out)
                self.assertEqual(r.stdout, "")
        left = [f for f in os.listdir(TMP.name) if "bad-out-" in f]
        self.assertEqual(left, [], "temporary output files left behind")
        # a .npy that holds another dtype than --dtype names
        inp = path("holds-i32.npy")
        write_npy(inp, "i32", [3, 1, 2])
        r = self.run_fail(4, "sort", "--input", inp, "--dtype", "i64")
        self.assertIn(inp, r.stderr)
        # a directory as input
        r = self.run_fail(4, "sort", "--input", TMP.name)
        self.assertIn(TMP.name, r.stderr)

    def test_bad_input_leaves_existing_output(self):
        inp = path("be-keep.npy")
        with open(inp, "wb") as f:
            f.write(npy_bytes(">i4", struct.pack(">3i", 3, 2, 1), (3,)))
        out = path("keep.npy")
        with open(out, "wb") as f:
            f.write(b"precious")
        self.run_fail(4, "sort", "--input", inp, "--output", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"precious")
        self.run_fail(4, "--json", "compare", "sort", "--input", inp, "--backends", "native",
                      "--threads", "1")
        # a job that fails (above limits.sort_elements) leaves it alone too
        self.run_fail(1, "sort", "-n", "30M", "--dtype", "f64", "--output", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"precious")
        # and a good sort replaces it whole
        good = path("good-keep.npy")
        payload = write_npy(good, "u32", [9, 8, 7])
        self.run_ok("sort", "--input", good, "--output", out)
        self.assertEqual(read_npy(out)[2], struct.pack("<3I", 7, 8, 9))

    def test_output_directory_missing(self):
        inp = path("od.npy")
        write_npy(inp, "i32", [3, 1, 2])
        out = path("no-such-dir/out.npy")
        r = self.run_fail(4, "sort", "--input", inp, "--output", out)
        self.assertIn(out, r.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(out)))
        svg = path("no-such-dir/plot.svg")
        r = self.run_fail(4, "compare", "pi", "-n", "1e5", "--backends", "native",
                          "--threads", "1", "--repeat", "1", "--plot", svg)
        self.assertIn(svg, r.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(svg)))

    def test_job_errors(self):
        # above limits.sort_elements (20M)
        r = self.run_fail(1, "sort", "-n", "30M", "--dtype", "i32")
        self.assertRegex(r.stderr, r"[a-z]{3,} [a-z]{3,}")
        self.assertIn("limit", r.stderr)
        self.assertIn("20000000", r.stderr)  # the configured limit, not the default
        # above limits.samples (2^40 by default): the daemon says ELIMIT
        r = self.run_fail(1, "pi", "-n", "2^41")
        self.assertIn("ELIMIT", r.stderr)
        # more threads than the pool has
        r = self.run_fail(1, "pi", "-n", "1e6", "--threads", "64")
        self.assertRegex(r.stderr, r"[a-z]{3,} [a-z]{3,}")
        # an OpenCL device that is not there
        r = self.run_fail(1, "pi", "-n", "1e6", "--backend", "opencl", "--device", "63")
        self.assertRegex(r.stderr, r"[a-z]{3,} [a-z]{3,}")
        self.run_ok("ping")  # and the daemon still serves


def parse_npy_bytes(data):
    """(dtype, shape, payload) of .npy bytes, as read_npy checks a file."""
    with tempfile.NamedTemporaryFile(dir=TMP.name, suffix=".npy", delete=False) as f:
        f.write(data)
    try:
        return read_npy(f.name)
    finally:
        os.unlink(f.name)


class TestPipes(Case):
    """--input - and --output -: arrays streamed through standard input and output, straight
    into the memfd and out of it; terminals refused; the daemon serves on after a refusal."""

    def pipe(self, args, data, stdin=None):
        """Runs hybridctl with `data` (bytes) on stdin, or the given stdin; (rc, out, err)."""
        r = subprocess.run(ctl_argv(*args), input=data if stdin is None else None,
                           stdin=stdin, capture_output=True, timeout=120)
        return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")

    def special_f64(self, n):
        rng = random.Random(5)
        vals = [rng.uniform(-1e6, 1e6) for _ in range(n)]
        vals[::97] = [float("nan")] * len(vals[::97])
        vals[1::89] = [-0.0] * len(vals[1::89])
        vals[2::83] = [0.0] * len(vals[2::83])
        return vals

    def test_npy_through_a_pipeline(self):
        vals = self.special_f64(20000)
        payload = struct.pack("<%dd" % len(vals), *vals)
        npy = npy_bytes("<f8", payload, (len(vals),))
        # Two hybridctl processes in one shell-like pipeline: generate | sort | sort.
        writer = subprocess.Popen([sys.executable, "-c",
                                   "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        sorter = subprocess.Popen(ctl_argv("sort", "--input", "-", "--output", "-", "--check"),
                                  stdin=writer.stdout, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        writer.stdout.close()
        writer.stdin.write(npy)
        writer.stdin.close()
        out, err = sorter.communicate(timeout=120)
        writer.wait(timeout=30)
        self.assertEqual(sorter.returncode, 0, err)
        dtype, shape, got = parse_npy_bytes(out)
        self.assertEqual((dtype, shape), ("f64", (20000,)))
        TestSort.assert_sorted_permutation(self, "f64", payload, got)
        err = err.decode()
        self.assertIn("from standard input", err)  # the report went to stderr
        self.assertIn("checked, ascending", err)

    def test_numpy_save_to_numpy_load(self):
        """The issue's own pipeline, where numpy is installed."""
        probe = subprocess.run([sys.executable, "-c", "import numpy"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("numpy is not installed for %s" % sys.executable)
        save = ("import sys, numpy as np; a = np.random.default_rng(3).standard_normal(100000);"
                "a[::50] = np.nan; a[1::70] = -0.0; np.save(sys.stdout.buffer, a)")
        load = ("import sys, io, numpy as np; b = np.load(io.BytesIO(sys.stdin.buffer.read()));"
                "a = np.random.default_rng(3).standard_normal(100000); a[::50] = np.nan;"
                "a[1::70] = -0.0; s = np.sort(a);"
                "sys.exit(0 if s.tobytes() == b.tobytes() else 1)")
        cmd = "%s -c '%s' | %s -s %s sort --input - --output - -q | %s -c '%s'" % (
            sys.executable, save, HYBRIDCTL, SOCK, sys.executable, load)
        r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_raw_and_redirected_file(self):
        rng = random.Random(9)
        vals = [rng.randrange(-2**31, 2**31) for _ in range(5000)]
        payload = struct.pack("<%di" % len(vals), *vals)
        rc, out, err = self.pipe(["sort", "--input", "-", "--dtype", "i32", "--output", "-",
                                  "--raw", "-q"], payload)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, struct.pack("<%di" % len(vals), *sorted(vals)))
        # stdin redirected from a regular file (sendfile, not a pipe)
        f = path("redirect.npy")
        write_npy(f, "i32", vals)
        with open(f, "rb") as stdin:
            rc, out, err = self.pipe(["sort", "--input", "-", "--output", "-", "-q"], None,
                                     stdin=stdin)
        self.assertEqual(rc, 0, err)
        self.assertEqual(parse_npy_bytes(out)[2], struct.pack("<%di" % len(vals), *sorted(vals)))
        # an empty raw stream is an empty array
        rc, out, err = self.pipe(["sort", "--input", "-", "--dtype", "f64", "--output", "-",
                                  "--raw", "-q"], b"")
        self.assertEqual((rc, out), (0, b""), err)

    def test_bad_streams_are_refused_and_the_daemon_serves_on(self):
        good = npy_bytes("<f8", struct.pack("<4d", 4, 3, 2, 1), (4,))
        cases = [
            (b"", [], "not a .npy file"),
            (good[:20], [], "truncated"),
            (good[:-8], [], "truncated"),
            (good + b"x", [], "longer than its header says"),
            (b"\x00" * 7, ["--dtype", "i64"], "not a whole number of 8-byte i64"),
            (good, ["--dtype", "f64"], "drop --dtype"),
        ]
        for data, extra, words in cases:
            with self.subTest(words=words, n=len(data)):
                rc, out, err = self.pipe(["sort", "--input", "-", "--output", "-"] + extra, data)
                self.assertEqual(rc, 4, err)
                self.assertIn("standard input", err)
                self.assertIn(words, err)
                self.assertEqual(out, b"", "nothing written for a refused input")
        rc, out, err = self.pipe(["sort", "--input", "-", "--output", "-", "-q"], good)
        self.assertEqual(rc, 0, err)
        self.assertEqual(parse_npy_bytes(out)[2], struct.pack("<4d", 1, 2, 3, 4))

    def test_terminals_and_contradictions(self):
        import pty
        master, slave = pty.openpty()
        try:
            with open(os.ttyname(slave), "rb") as tty_in:
                rc, out, err = self.pipe(["sort", "--input", "-"], None, stdin=tty_in)
            self.assertEqual(rc, 4, err)
            self.assertIn("standard input is a terminal", err)
            r = subprocess.run(ctl_argv("sort", "-n", 10, "--dtype", "f64", "--output", "-"),
                               stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                               timeout=60)
            self.assertEqual(r.returncode, 4)
            self.assertIn("not writing a binary array to a terminal", r.stderr.decode())
        finally:
            os.close(master)
            os.close(slave)
        r = self.run_fail(2, "--json", "sort", "-n", 10, "--dtype", "f64", "--output", "-")
        self.assertIn("both want standard output", r.stderr)
        r = self.run_fail(2, "compare", "sort", "-n", 10, "--dtype", "f64", "--plot", "-")
        self.assertIn("--plot takes a file name", r.stderr)


class TestOutputPaths(Case):
    """What is at --output and --plot decides how it is written; what cannot be written is
    refused with exit 4 before the job runs."""

    def job_counts(self):
        st = self.run_json("status")
        return (st["jobs"], {b: v["jobs"] for b, v in st["backends"].items()})

    def assert_refused_before_running(self, args, needle):
        before = self.job_counts()
        r = self.run_fail(4, *args)
        self.assertIn(needle, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(self.job_counts(), before, "the job ran before the path was checked")
        return r

    def test_device_or_fifo_written_through(self):
        if os.geteuid() == 0:
            # As root, the old writer renamed a regular file over /dev/null.
            self.run_ok("sort", "-n", "100", "--dtype", "f64", "--output", "/dev/null")
            self.assertTrue(stat_is(os.lstat("/dev/null"), "chr"), "/dev/null was replaced")
        fifo, got, t = fifo_reader("out.fifo")
        self.run_ok("sort", "-n", "100", "--dtype", "i32", "--output", fifo, "--check")
        t.join(10)
        self.assertTrue(stat_is(os.lstat(fifo), "fifo"), "the FIFO was replaced")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0][:6], b"\x93NUMPY")
        self.assertEqual(len(got[0]), 128 + 400)
        if os.path.exists("/dev/full"):
            r = self.run_fail(4, "sort", "-n", "100", "--dtype", "f64", "--output", "/dev/full")
            self.assertIn("/dev/full", r.stderr)
            self.assertIn(os.strerror(28), r.stderr)  # ENOSPC
            self.assertTrue(stat_is(os.lstat("/dev/full"), "chr"))

    def test_symlink_followed_and_mode_kept(self):
        target = path("kept-0600.npy")
        with open(target, "wb") as f:
            f.write(b"old")
        os.chmod(target, 0o600)
        link = path("kept-link.npy")
        os.symlink(os.path.basename(target), link)
        self.run_ok("sort", "-n", "50", "--dtype", "u64", "--output", link)
        self.assertTrue(stat_is(os.lstat(link), "lnk"), "the link was replaced by a file")
        self.assertEqual(os.stat(target).st_mode & 0o7777, 0o600)
        dtype, shape, payload = read_npy(target)
        self.assertEqual((dtype, shape, len(payload)), ("u64", (50,), 400))
        # the plot too
        svg = path("kept.svg")
        with open(svg, "w") as f:
            f.write("old")
        os.chmod(svg, 0o640)
        self.run_ok("--json", "compare", "pi", "-n", "1e5", "--backends", "native",
                    "--threads", "1", "--repeat", "1", "--plot", svg)
        self.assertEqual(os.stat(svg).st_mode & 0o7777, 0o640)
        ET.parse(svg)

    def test_unwritable_output_refused_before_the_job(self):
        inp = path("before.npy")
        write_npy(inp, "i32", [3, 1, 2])
        missing = path("no-such-dir-2/out.npy")
        r = self.assert_refused_before_running(
            ("sort", "--input", inp, "--output", missing), missing)
        self.assertIn("does not exist", r.stderr)
        # a generated job of the daemon's largest size: refused without running
        self.assert_refused_before_running(
            ("sort", "-n", "20M", "--dtype", "f64", "--output", TMP.name), "is a directory")
        sub = path("sub-dir")
        os.mkdir(sub)
        self.assert_refused_before_running(
            ("sort", "-n", "10", "--dtype", "f64", "--raw", "--output", sub), sub)
        self.assertEqual(os.listdir(sub), [])
        if os.geteuid() != 0:  # root may write anywhere
            ro = path("ro-dir")
            os.mkdir(ro, 0o555)
            self.assert_refused_before_running(
                ("sort", "--input", inp, "--output", os.path.join(ro, "x.npy")), ro)
        left = [f for f in os.listdir(TMP.name) if f.startswith(".")]
        self.assertEqual(left, [], "temporary files left behind")

    def test_plot_into_missing_directory_refused_before_the_compare(self):
        svg = path("no-such-dir-3/plot.svg")
        for job in (("pi", "-n", "1e5"), ("sort", "-n", "1000", "--dtype", "i32")):
            with self.subTest(job=job[0]):
                r = self.assert_refused_before_running(
                    ("compare",) + job + ("--backends", "native", "--threads", "1",
                                          "--repeat", "1", "--plot", svg), svg)
                self.assertIn("the plot", r.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(svg)))

    def reversed_f64_npy(self, n):
        """An f64 .npy of n descending values in a new file: (path, the sorted bytes)."""
        inp = path("descending-%d.npy" % n)
        write_npy(inp, "f64", [float(v) for v in range(n - 1, -1, -1)])
        return inp, struct.pack("<%dd" % n, *(float(v) for v in range(n)))

    def test_output_over_a_larger_file(self):
        """The sorted array goes from the memfd to the file inside the kernel, in steps; an
        existing larger file is left with exactly the new bytes, whether it is replaced or
        rewritten in place (a deleted file reached through /proc/self/fd), and a file open
        for appending gets them after what it held."""
        n = 1100000  # 8.8 MB: more than one of output.c's 8 MiB steps
        inp, want = self.reversed_f64_npy(n)
        junk = b"\xff" * (3 * n * 8 + 4097)
        out = path("over-larger.npy")
        with open(out, "wb") as f:
            f.write(junk)
        self.run_ok("sort", "--input", inp, "--output", out, "--check")
        self.assertEqual(os.path.getsize(out), 128 + n * 8)
        self.assertEqual(read_npy(out), ("f64", (n,), want))
        # in place: the same name cannot be replaced, so it is truncated and rewritten
        gone = path("over-larger-deleted.npy")
        with open(gone, "w+b") as f:
            f.write(junk)
            f.flush()
            os.unlink(gone)
            r = subprocess.run(ctl_argv("sort", "--input", inp, "--output",
                                        "/proc/self/fd/%d" % f.fileno()),
                               pass_fds=(f.fileno(),), capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.fstat(f.fileno()).st_size, 128 + n * 8)
            self.assertEqual(parse_npy_bytes(os.pread(f.fileno(), 128 + n * 8 + 1, 0)),
                             ("f64", (n,), want))
        # standard output open for appending refuses sendfile: written from the mapping
        app = path("over-appended.bin")
        with open(app, "wb") as f:
            f.write(b"head")
        with open(app, "ab") as f:
            r = subprocess.run(ctl_argv("sort", "--input", inp, "--output", "-"), stdout=f,
                               stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(app, "rb") as f:
            got = f.read()
        self.assertEqual(got[:4], b"head")
        self.assertEqual(parse_npy_bytes(got[4:]), ("f64", (n,), want))
        left = [f for f in os.listdir(TMP.name) if f.startswith(".over")]
        self.assertEqual(left, [], "temporary files left behind")

    def test_input_shorter_than_its_header(self):
        """A file whose header promises more than it holds is refused before any job, with
        the sizes in the sentence; nothing is written, and the daemon serves on."""
        inp, _ = self.reversed_f64_npy(5000)
        with open(inp, "rb") as f:
            whole = f.read()
        short = path("short-by-one.npy")
        with open(short, "wb") as f:
            f.write(whole[:-8])
        out = path("short-out.npy")
        before = self.job_counts()
        r = self.run_fail(4, "sort", "--input", short, "--output", out)
        self.assertIn(short, r.stderr)
        self.assertIn("truncated", r.stderr)
        self.assertIn("5000 f64 (40000 bytes)", r.stderr)
        self.assertIn("39992", r.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(self.job_counts(), before)
        self.run_ok("sort", "--input", inp, "--output", out, "--check")
        self.assertEqual(read_npy(out)[1], (5000,))

    def test_raw_input_that_is_npy(self):
        inp = path("really-npy.bin")
        write_npy(inp, "f64", [3.0, 1.0, 2.0])
        r = self.run_fail(4, "sort", "--input", inp, "--dtype", "f64")
        self.assertIn(inp, r.stderr)
        self.assertIn("drop --dtype", r.stderr)
        # read as .npy without --dtype, it sorts
        out = path("really-npy-out.npy")
        self.run_ok("sort", "--input", inp, "--output", out)
        self.assertEqual(read_npy(out)[2], struct.pack("<3d", 1.0, 2.0, 3.0))
        # and a file that is not .npy gets a hint naming raw input, not --raw
        txt = path("not-npy.npy")
        with open(txt, "wb") as f:
            f.write(b"hello, world\n")
        r = self.run_fail(4, "sort", "--input", txt)
        self.assertIn("--dtype", r.stderr)
        self.assertNotIn("--raw", r.stderr)


def stat_is(st, kind):
    return {"chr": stat.S_ISCHR, "fifo": stat.S_ISFIFO, "lnk": stat.S_ISLNK}[kind](st.st_mode)

# ---------------------------------------------------------------- the command line (issue 14)

ERROR_KEYS = {"code", "name", "message", "hint", "source", "job", "exit"}


class CommandLineCase(Case):
    def error_doc(self, r, code):
        """The one --json error document of a failed run, checked against its shape."""
        try:
            doc = json.loads(r.stdout)
        except ValueError as e:
            self.fail("--json failure: stdout is not one JSON document (%s): %r\nstderr: %s"
                      % (e, r.stdout, r.stderr))
        self.assertEqual(set(doc), {"error"}, doc)
        e = doc["error"]
        self.assertEqual(set(e), ERROR_KEYS, e)
        self.assertEqual(e["exit"], code)
        self.assertIn(e["source"], ("client", "daemon"))
        self.assertTrue(e["message"])
        self.assertIn(e["message"], r.stderr)  # the same sentence a person reads
        if e["code"] is not None:
            self.assertLess(e["code"], 0)
            self.assertRegex(e["name"], r"^E[A-Z]+$")
        return e

    def json_fail(self, code, *args, **kw):
        return self.error_doc(self.run_fail(code, *args, **kw), code)

    def refuse(self, args, *words):
        """Exit 2 before connecting, with a sentence naming every word; with --json too."""
        for sock in (SOCK, TestExitCodes.NOWHERE):
            r = subprocess.run([HYBRIDCTL, "-s", sock] + args, capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            if "--json" not in args:
                self.assertEqual(r.stdout, "")
            for w in words:
                self.assertIn(w, r.stderr, args)
        r = subprocess.run([HYBRIDCTL, "-s", SOCK] + args + ["--json"], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        e = self.error_doc(r, 2)
        self.assertEqual(e["name"], "EINVAL")
        for w in words:
            self.assertIn(w, e["message"])


class TestJsonErrors(CommandLineCase):
    """--json prints one error document on stdout in every failure (the sentence stays on
    stderr, the exit code as it was)."""

    def test_usage_error(self):
        for args in (["--json", "pi"], ["pi", "--json"], ["pi", "-n", "1e6", "--bogus", "--json"],
                     ["--json", "frobnicate"], ["--json"], ["--json", "-s"]):
            with self.subTest(args=args):
                e = self.json_fail(2, *args)
                self.assertEqual((e["code"], e["name"], e["source"]), (-1, "EINVAL", "client"))

    def test_unreachable(self):
        e = self.json_fail(3, "--json", "ping", sock=False,
                           env=dict(os.environ, HYBRIDD_SOCKET=TestExitCodes.NOWHERE))
        self.assertEqual((e["name"], e["source"], e["job"]), ("ESYS", "client", None))
        self.assertIn(TestExitCodes.NOWHERE, e["message"])
        self.assertIn("start", e["hint"])

    def test_daemon_errors(self):
        e = self.json_fail(1, "--json", "pi", "-n", "2^41")
        self.assertEqual((e["code"], e["name"], e["source"]), (-4, "ELIMIT", "daemon"))
        e = self.json_fail(1, "cancel", "999999", "--json")
        self.assertEqual(e["source"], "daemon")
        self.assertIn("999999", e["message"])
        e = self.json_fail(1, "--json", "pi", "-n", "1e6", "--threads", "64")
        self.assertEqual(e["name"], "ELIMIT")

    def test_bad_input_file(self):
        missing = path("json-missing.npy")
        e = self.json_fail(4, "--json", "sort", "--input", missing)
        self.assertIn(missing, e["message"])
        self.assertEqual(e["source"], "client")

    def test_cancelled(self):
        p = subprocess.Popen(ctl_argv("pi", "-n", "2e11", "--backend", "serial", "--json"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while json.loads(self.run_ok("--json", "status").stdout)["jobs"]["running"] < 1:
                self.assertIsNone(p.poll(), "the job ended before it was seen running")
                self.assertLess(time.monotonic(), deadline, "the job never started running")
                time.sleep(0.05)
            time.sleep(0.3)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        e = self.error_doc(subprocess.CompletedProcess(p.args, p.returncode, out, err), 1)
        self.assertEqual(p.returncode, 1)
        self.assertEqual((e["name"], e["source"]), ("ECANCELED", "daemon"))
        self.assertIsInstance(e["job"], int)


class TestOptionsAnywhere(CommandLineCase):
    def test_global_options_after_the_command(self):
        doc = self.run_json("compare", "pi", "-n", "1e5", "--backends", "native",
                            "--threads", "1", "--repeat", "1")
        r = self.run_ok("compare", "pi", "-n", "1e5", "--backends", "native", "--threads", "1",
                        "--repeat", "1", "--json")
        self.assertEqual(json.loads(r.stdout)["n"], doc["n"])
        r = self.run_ok("pi", "-n", "10", "-s", SOCK, sock=False)
        self.assertIn("hits", r.stdout)
        r = self.run_ok("pi", "--socket", SOCK, "-n", "1000", "--quiet", "--json", sock=False)
        self.assertEqual(json.loads(r.stdout)["n"], 1000)
        self.assertEqual(json.loads(self.run_ok("ping", "--json").stdout)["socket"], SOCK)

    def test_long_option_equals_value(self):
        r = self.run_ok("pi", "-n", "1e4", "--backend=serial", "--seed=7", "--repeat=2",
                        "--json")
        d = json.loads(r.stdout)
        self.assertEqual((d["backend"], d["seed"], d["repeat"]), ("serial", 7, 2))
        r = self.run_ok("--socket=" + SOCK, "sort", "-n", "100", "--dtype=u64",
                        "--dist=reversed", "--backend=locked", "--threads=1", "--json",
                        sock=False)
        d = json.loads(r.stdout)
        self.assertEqual((d["backend"], d["n"]), ("locked", 100))
        r = self.run_ok("compare", "pi", "-n", "1e4", "--backends=native,locked",
                        "--threads=1", "--repeat=1", "--json")
        self.assertEqual({row["backend"] for row in json.loads(r.stdout)["rows"]},
                         {"serial", "native", "locked"})
        self.refuse(["pi", "-n", "1e4", "--backend=locked", "--nogil=yes"], "--nogil",
                    "no value")
        self.refuse(["pi", "-n", "1e4", "--backend=gpu"], "gpu")

    def test_command_help(self):
        for cmd, yes, no in ((["ping"], [], ["--backend B"]), (["status"], [], ["-n N"]),
                             (["devices"], [], ["-n N"]), (["cancel"], ["JOB"], ["-n N"]),
                             (["pi"], ["--backend B", "--seed", "--threads"], ["--output"]),
                             (["sort"], ["--input", "--output", "--dtype"], ["--backends"]),
                             (["compare"], ["--backends", "--plot", "--csv"], ["--output"]),
                             (["compare", "sort"], ["--backends"], ["--check"])):
            for flag in ("--help", "-h"):
                with self.subTest(cmd=cmd, flag=flag):
                    # no daemon needed, and a flag anywhere on the line
                    r = subprocess.run([HYBRIDCTL, "-s", TestExitCodes.NOWHERE] + cmd + [flag],
                                       capture_output=True, text=True, timeout=30)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stderr, "")
                    self.assertTrue(r.stdout.startswith("usage: hybridctl " + cmd[0]), r.stdout)
                    for w in yes + ["--json", "--socket"]:
                        self.assertIn(w, r.stdout)
                    for w in no:
                        self.assertNotIn(w, r.stdout)
        r = self.run_ok("pi", "-n", "10", "--help")  # help wins over running
        self.assertNotIn("hits", r.stdout)

    def test_refused_combinations(self):
        cases = [
            (["pi", "-n", "1e4", "--threads", "2", "--backend", "serial"], "--threads",
             "serial"),
            (["sort", "-n", "100", "--dtype", "i32", "--backend", "serial", "--threads", "2"],
             "--threads", "serial"),
            (["pi", "-n", "1e4", "--backend", "opencl", "--threads", "2"], "--threads",
             "opencl"),
            (["pi", "-n", "1e4", "--device", "0"], "--device", "opencl"),
            (["pi", "-n", "1e4", "--switch-interval", "100"], "--switch-interval", "locked"),
            (["pi", "-n", "1e4", "--backend", "serial", "--replicate"], "--replicate",
             "serial"),
            (["pi", "-n", "1e4", "--backend", "opencl", "--replicate"], "--replicate",
             "opencl"),
            (["pi", "-n", "1e4", "--backend", "locked", "--nogil", "--hold-lock"], "--nogil",
             "--hold-lock"),
            (["compare", "pi", "-n", "1e4", "--nogil", "--hold-lock"], "--nogil",
             "--hold-lock"),
            (["compare", "pi", "-n", "1e4", "--backends", "native", "--csv", "--json"], "--csv",
             "--json"),
            (["--json", "compare", "sort", "-n", "10", "--dtype", "i32", "--csv"], "--csv",
             "--json"),
            (["--quiet", "pi", "-n", "1e4", "--verbose"], "--quiet", "--verbose"),
            (["compare", "pi", "-n", "1e4", "--backends", "native", "--nogil"], "--nogil",
             "locked"),
            (["compare", "pi", "-n", "1e4", "--backends", "native", "--switch-interval", "9"],
             "--switch-interval", "locked"),
            (["compare", "pi", "-n", "1e4", "--backends", "serial", "--threads", "1,2"],
             "--threads", "--backends"),
            (["compare", "pi", "-n", "1e4", "--backends", "native", "--device", "0"],
             "--device", "opencl"),
            (["sort", "--input", "x.npy", "--seed", "3"], "--seed", "--input"),
            (["sort", "--input", "x.npy", "--dist", "sorted"], "--dist", "--input"),
            (["compare", "sort", "--input", "x.npy", "--seed", "3"], "--seed", "--input"),
            (["compare", "pi", "-n", "1e4", "--backend", "native"], "--backends"),
            (["pi", "-n", "1e4", "--output", "x.npy"], "--output", "sort"),
            (["-n", "5", "pi"], "-n", "after the command"),
        ]
        for case in cases:
            with self.subTest(args=case[0]):
                self.refuse(*case)

    def test_seed_takes_every_u64(self):
        top = 2 ** 64 - 1
        a = self.run_json("pi", "-n", "1e5", "--seed", str(top))
        self.assertEqual(a["seed"], top)
        b = self.run_json("pi", "-n", "1e5", "--seed", "0xffffffffffffffff")
        self.assertEqual((b["seed"], b["hits"]), (top, a["hits"]))
        self.assertEqual(self.run_json("pi", "-n", "1e5", "--seed", "0x10")["seed"], 16)
        self.assertEqual(self.run_json("pi", "-n", "1e5", "--seed", "0")["seed"], 0)
        s = self.run_json("sort", "-n", "100", "--dtype", "u64", "--seed", str(top))
        self.assertEqual(s["n"], 100)
        for bad in (str(top + 1), "0x10000000000000000", "99999999999999999999999"):
            with self.subTest(seed=bad):
                self.refuse(["pi", "-n", "1e5", "--seed", bad], bad, "above the largest seed")
        for bad in ("-1", "0x", "0xfg", "seven", "1.5"):
            with self.subTest(seed=bad):
                self.refuse(["pi", "-n", "1e5", "--seed", bad], bad)


class TestNotices(CommandLineCase):
    def start_long_job(self):
        p = subprocess.Popen(ctl_argv("pi", "-n", "1e12", "--backend", "serial"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while json.loads(self.run_ok("--json", "status").stdout)["jobs"]["running"] < 1:
            self.assertIsNone(p.poll(), "the long job ended before it ran")
            self.assertLess(time.monotonic(), deadline, "the long job never started running")
            time.sleep(0.05)
        return p

    def test_queued_notice_only_for_a_person_or_verbose(self):
        long_job = self.start_long_job()
        try:
            quiet = subprocess.Popen(ctl_argv("pi", "-n", "1e5"), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            verbose = subprocess.Popen(ctl_argv("pi", "-n", "1e5", "--verbose"),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 20
            while json.loads(self.run_ok("--json", "status").stdout)["jobs"]["queued"] < 2:
                self.assertLess(time.monotonic(), deadline, "the two jobs were never queued")
                time.sleep(0.05)
        finally:
            long_job.send_signal(signal.SIGINT)
            long_job.communicate(timeout=30)
        out, err = quiet.communicate(timeout=60)
        self.assertEqual(quiet.returncode, 0, err)
        self.assertEqual(err, "", "a notice on a stderr that is no terminal")
        out, err = verbose.communicate(timeout=60)
        self.assertEqual(verbose.returncode, 0, err)
        self.assertRegex(err, r"job \d+ queued behind \d job")

    def test_one_bar_over_every_run(self):
        import pty
        master, slave = pty.openpty()
        # Four runs of about a second each: the bar shows from the first second on.
        p = subprocess.Popen(ctl_argv("pi", "-n", "4e9", "--backend", "serial", "--repeat", "4"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        os.close(master)
        p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0)
        bars = [int(x) for x in re.findall(r"\] +(\d+)%", b"".join(chunks).decode(errors="replace"))]
        if len(bars) < 5:
            self.skipTest("the job was too quick for the bar to show (%r)" % bars)
        self.assertEqual(bars, sorted(bars), "the bar went back")
        self.assertGreater(bars[-1], 25, bars)


class SharedDaemonCase(CommandLineCase):
    """A second hybridd of the class's own (CONF), on a socket in a directory every user may
    enter, with a hybridctl every user may run: for tests that run hybridctl as nobody."""
    CONF = ""
    NAME = "shared"

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root, to run hybridctl as another user")
        import shutil
        cls.dir = tempfile.mkdtemp(prefix="hybridctl-%s." % cls.NAME)
        os.chmod(cls.dir, 0o755)
        conf = os.path.join(cls.dir, "hybridd.conf")
        with open(conf, "w") as f:
            f.write(cls.CONF)
        cls.sock = os.path.join(cls.dir, "s.sock")
        # nobody must be able to run hybridctl: a build tree under /root is closed to it.
        cls.ctl = os.path.join(cls.dir, "hybridctl")
        shutil.copy(HYBRIDCTL, cls.ctl)
        os.chmod(cls.ctl, 0o755)
        cls.log = open(os.path.join(cls.dir, "hybridd.log"), "w+")
        cls.daemon = subprocess.Popen([HYBRIDD, "--foreground", "-c", conf, "--socket",
                                       cls.sock], stdin=subprocess.DEVNULL, stdout=cls.log,
                                      stderr=cls.log)
        deadline = time.monotonic() + 30
        while subprocess.run([HYBRIDCTL, "-s", cls.sock, "ping"], capture_output=True,
                             timeout=30).returncode != 0:
            if cls.daemon.poll() is not None or time.monotonic() > deadline:
                cls.tearDownClass()
                raise RuntimeError("the %s daemon did not start" % cls.NAME)
            time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        if cls.daemon.poll() is None:
            cls.daemon.terminate()
            cls.daemon.wait(timeout=40)
        cls.log.close()
        subprocess.run(["rm", "-rf", cls.dir])


class TestJobs(SharedDaemonCase):
    """hybridctl jobs on a second daemon every user may reach (socket mode 0666): root's and
    nobody's jobs side by side. A user sees their own jobs and counts of the rest; root sees
    all with --all and may cancel any; nobody may not cancel root's."""
    NAME = "jobs"
    CONF = ('socket = { mode = "0666"; };\n'
            "cpu = { native_threads = 1; locked_threads = 1; process_workers = 0; };\n"
            "opencl = { enabled = false; };\n"
            "limits = { samples = 1000000000000000L; job_timeout_s = 0L; };\n")

    def ctl_as(self, uid, *args, **kw):
        user = {} if uid == 0 else {"user": uid, "group": uid, "extra_groups": []}
        return subprocess.run([self.ctl, "-s", self.sock] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, **user, **kw)

    def jobs_as(self, uid, *args):
        r = self.ctl_as(uid, "--json", "jobs", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def start_long(self, uid):
        """A pi job that runs until cancelled; its hybridctl process."""
        user = {} if uid == 0 else {"user": uid, "group": uid, "extra_groups": []}
        return subprocess.Popen([self.ctl, "-s", self.sock, "-q", "pi", "-n", "1e15",
                                 "--backend", "serial"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **user)

    def wait_for(self, pred, what):
        deadline = time.monotonic() + 30
        while True:
            d = self.jobs_as(0, "--all")
            if pred(d):
                return d
            if time.monotonic() > deadline:
                self.fail("%s: %r" % (what, d))
            time.sleep(0.1)

    def test_own_jobs_others_counted_and_cancels(self):
        self.assertEqual(self.jobs_as(0)["jobs"], [])
        mine = self.start_long(0)
        theirs = None
        try:
            self.wait_for(lambda d: any(j["state"] == "running" for j in d["jobs"]),
                          "root's job never ran")
            theirs = self.start_long(65534)
            d = self.wait_for(lambda d: len(d["jobs"]) == 2, "nobody's job never queued")
            self.assertIs(d["all_users"], True)
            run = [j for j in d["jobs"] if j["state"] == "running"]
            queued = [j for j in d["jobs"] if j["state"] == "queued"]
            self.assertEqual((len(run), len(queued)), (1, 1), d)
            self.assertEqual((run[0]["uid"], run[0]["user"]), (0, "root"))
            self.assertEqual((run[0]["job"], run[0]["backend"], run[0]["threads"]),
                             ("pi", "serial", 1))
            self.assertEqual(run[0]["n"], 10**15)
            self.assertGreater(run[0]["running_ns"], 0)
            self.assertEqual(queued[0]["uid"], 65534)
            self.assertEqual(queued[0]["running_ns"], 0)
            # nobody: its own job only, root's counted; --all changes nothing for it
            for args in ((), ("--all",)):
                n = self.jobs_as(65534, *args)
                self.assertEqual([j["id"] for j in n["jobs"]], [queued[0]["id"]])
                self.assertIs(n["all_users"], False)
                self.assertEqual(n["others"], {"queued": 0, "running": 1})
            # root without --all: its own, nobody's counted
            r = self.jobs_as(0)
            self.assertEqual([j["id"] for j in r["jobs"]], [run[0]["id"]])
            self.assertEqual(r["others"], {"queued": 1, "running": 0})
            text = self.ctl_as(65534, "jobs").stdout
            self.assertIn("queued", text)
            self.assertIn("other users: 0 queued, 1 running", text)
            self.assertNotIn(" root ", text)  # no record of root's job, only the count
            # nobody cannot cancel root's job; root cancels nobody's
            c = self.ctl_as(65534, "cancel", run[0]["id"])
            self.assertEqual(c.returncode, 1, c.stderr)
            self.assertIn("no job %d of yours" % run[0]["id"], c.stderr)
            c = self.ctl_as(0, "cancel", queued[0]["id"])
            self.assertEqual(c.returncode, 0, c.stderr)
            _, err = theirs.communicate(timeout=30)
            self.assertEqual(theirs.returncode, 1, err)
            self.assertIn("cancel", err)
            self.assertEqual(self.ctl_as(0, "cancel", run[0]["id"]).returncode, 0)
            mine.communicate(timeout=30)
            self.wait_for(lambda d: d["jobs"] == [], "the cancelled jobs are still listed")
        finally:
            for p in (mine, theirs):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()

    def test_estimates_from_the_history(self):
        """Once a configuration has been measured (5 runs kept after the first), jobs
        predicts a running job's time left and a queued one's wait; unmeasured: none."""
        n = 2 ** 24
        r = self.ctl_as(0, "pi", "-n", n, "--backend", "serial", "--repeat", 7)
        self.assertEqual(r.returncode, 0, r.stderr)
        long_run = subprocess.Popen([self.ctl, "-s", self.sock, "-q", "pi", "-n", str(n),
                                     "--backend", "serial", "--repeat", "1000"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        behind = unknown = None
        try:
            self.wait_for(lambda d: any(j["state"] == "running" for j in d["jobs"]),
                          "the long job never ran")
            behind = self.start_long(0)  # 10^15 samples: a size never measured
            # queued in this order: the last one behind the one no prediction covers
            self.wait_for(lambda d: len(d["jobs"]) == 2, "the unmeasured job never queued")
            unknown = subprocess.Popen([self.ctl, "-s", self.sock, "-q", "pi", "-n", str(n),
                                        "--backend", "serial"], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            d = self.wait_for(lambda d: len(d["jobs"]) == 3, "the queued jobs never showed")
            run = [j for j in d["jobs"] if j["state"] == "running"][0]
            self.assertGreater(run["predicted_ns"], 0, run)
            self.assertEqual(run["wait_ns"], 0)
            by_n = {j["n"]: j for j in d["jobs"] if j["state"] == "queued"}
            self.assertEqual(by_n[10 ** 15]["predicted_ns"], 0, "never measured: no guess")
            self.assertGreater(by_n[10 ** 15]["wait_ns"], 0, "but the job ahead is known")
            # the one queued last waits behind the unknown one: its wait is unknown
            self.assertGreater(by_n[n]["predicted_ns"], 0)
            self.assertEqual(by_n[n]["wait_ns"], 0)
            text = self.ctl_as(0, "jobs").stdout
            self.assertIn("left", text)
            self.assertIn("starts in about", text)
        finally:
            for p in (long_run, behind, unknown):
                if p and p.poll() is None:
                    p.send_signal(signal.SIGINT)  # hybridctl cancels its job
                    p.communicate(timeout=60)

    def test_model_lists_what_was_measured(self):
        r = self.ctl_as(0, "pi", "-n", 2 ** 15, "--backend", "serial", "--repeat", 6)
        self.assertEqual(r.returncode, 0, r.stderr)
        cells = json.loads(self.ctl_as(0, "--json", "model").stdout)
        mine = [c for c in cells["cells"] if c["job"] == "pi" and c["backend"] == "serial"
                and c["log2n"] == 15]
        self.assertEqual(len(mine), 1, cells)
        self.assertEqual(mine[0]["samples"], 5)  # 6 timed runs, the cell's first dropped
        self.assertIs(mine[0]["trusted"], True)
        self.assertGreater(mine[0]["median_ns"], 0)
        self.assertEqual((cells["trust"], cells["ring"]), (5, 20))
        as_nobody = self.ctl_as(65534, "model")  # the history is no one's secret
        self.assertEqual(as_nobody.returncode, 0, as_nobody.stderr)
        self.assertIn("pi serial 1T", as_nobody.stdout)

    def test_watch_redraws_until_interrupted(self):
        p = subprocess.Popen([self.ctl, "-s", self.sock, "jobs", "--watch"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        # Ctrl-C once the second table is out (each is flushed as drawn), not after a fixed
        # time a slow hybridctl may not have drawn two in; a hang is killed, and then fails.
        empty = "no job of yours is queued or running"
        killer = threading.Timer(60, p.kill)
        killer.start()
        try:
            seen = []
            while sum(empty in line for line in seen) < 2:
                line = p.stdout.readline()
                if not line:
                    break
                seen.append(line)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            killer.cancel()
        out = "".join(seen) + out
        self.assertEqual(p.returncode, 0, err)
        self.assertGreaterEqual(out.count(empty), 2, out)

    def test_usage(self):
        for args, words in ((("jobs", "--bogus"), "jobs takes --all and --watch"),
                            (("pi", "-n", "5", "--all"), "an option of jobs"),
                            (("jobs", "7"), "jobs takes --all and --watch")):
            r = self.ctl_as(0, *args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(words, r.stderr)


class TestAccess(SharedDaemonCase):
    """A second daemon that lets in root only (access.uids = [0]) on a socket every user may
    open (mode 0666), for hybridctl run as nobody; and a one-second job timeout."""
    NAME = "access"
    CONF = ('socket = { mode = "0666"; };\naccess = { uids = [ 0 ]; };\n'
            "cpu = { native_threads = 1; locked_threads = 1; process_workers = 0; };\n"
            "opencl = { enabled = false; };\nlimits = { job_timeout_s = 1L; };\n")

    def as_nobody(self, *args):
        return subprocess.run([self.ctl, "-s", self.sock] + list(args), capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL, user=65534,
                              group=65534, extra_groups=[])

    def test_refusal_always_arrives(self):
        # The daemon answers HELLO's connection with ERROR EPERM and closes: a HELLO sent
        # after that close fails with EPIPE, and the sentence must still be what is shown.
        for i in range(20):
            r = self.as_nobody("--json", "ping")
            self.assertEqual(r.returncode, 3, "try %d: %s" % (i, r.stderr))
            self.assertIn("not allowed", r.stderr, "try %d" % i)
            self.assertNotIn("Broken pipe", r.stderr)
            self.assertNotIn("start it", r.stderr)
            e = self.error_doc(r, 3)
            self.assertEqual((e["name"], e["source"]), ("EPERM", "daemon"))

    def test_permission_names_owner_group_and_mode(self):
        try:
            for mode, words in ((0o660, ["group root", "0660", "add you to group root"]),
                                (0o600, ["0600", "only root may connect"])):
                os.chmod(self.sock, mode)
                r = self.as_nobody("ping")
                self.assertEqual(r.returncode, 3, r.stderr)
                for w in ["Permission denied", self.sock] + words:
                    self.assertIn(w, r.stderr)
                self.assertNotIn("start it", r.stderr)
                e = self.error_doc(self.as_nobody("ping", "--json"), 3)
                self.assertEqual((e["name"], e["source"]), ("EPERM", "client"))
                self.assertIn(words[-1], e["hint"])
        finally:
            os.chmod(self.sock, 0o666)

    def test_timeout_json(self):
        r = subprocess.run([HYBRIDCTL, "-s", self.sock, "--json", "pi", "-n", "1e12",
                            "--backend", "serial"], capture_output=True, text=True, timeout=60)
        e = self.error_doc(r, 1)
        self.assertEqual((e["name"], e["source"]), ("ECANCELED", "daemon"))
        self.assertIn("timeout", e["message"])
        self.assertIsInstance(e["job"], int)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hybridd", required=True)
    ap.add_argument("--hybridctl", required=True)
    ap.add_argument("--pocl-cache", help="POCL_CACHE_DIR when the environment has none")
    opts, rest = ap.parse_known_args()
    HYBRIDD = os.path.abspath(opts.hybridd)
    HYBRIDCTL = os.path.abspath(opts.hybridctl)
    POCL_CACHE = opts.pocl_cache
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
