#!/usr/bin/env python3
"""hybridd --mpi under mpirun, end to end through hybridctl (standard library only).

Each test class starts one MPI job of N ranks (`mpirun -np N hybridd --mpi --socket
DIR/rank-%r.sock`) with small pools and OpenCL off, talks to its ranks' sockets with
hybridctl, and stops it again. Timeouts here only keep a hang from blocking CI; nothing is
asserted on time.

    python3 test_mpi.py --mpirun PATH --hybridd PATH --hybridctl PATH [unittest options]
"""
import argparse
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

MPIRUN = HYBRIDD = HYBRIDCTL = None
# A job that waits on a peer forever would end at the timeout with ECANCELED, not hang CI.
CONF = ("cpu = { native_threads = 2; locked_threads = 1; process_workers = 1; };\n"
        "opencl = { enabled = false; };\nlimits = { job_timeout_s = 60L; };\n")


def mpi_env():
    """What Open MPI needs to start ranks here: CI runs as root in a container."""
    env = dict(os.environ)
    env.update({
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        # one machine: shared memory and self only, no probing of network interfaces
        "OMPI_MCA_btl": "self,vader", "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
    })
    return env


class World:
    """One `mpirun -np N hybridd --mpi` in a temporary directory; `confs`, one text per rank,
    gives ranks configurations of their own (mpirun's `-np 1 A : -np 1 B` form),
    `prefix`, one argv list per rank with `confs`, a command each rank's hybridd runs under,
    and `env`, variables every rank gets."""

    def __init__(self, n, confs=None, prefix=None, env=None):
        self.n = n
        self.tmp = tempfile.TemporaryDirectory(prefix="hybridd-mpi-")
        cmd = [MPIRUN, "--oversubscribe"]
        for r, text in enumerate(confs or [CONF]):
            conf = os.path.join(self.tmp.name, "hybridd-%d.conf" % r)
            with open(conf, "w") as f:
                f.write(text)
            cmd += ([":"] if r else []) + [
                "-np", "1" if confs else str(n)] + (prefix[r] if prefix else []) + [
                HYBRIDD, "--mpi", "-c", conf,
                "--socket", os.path.join(self.tmp.name, "rank-%r.sock")]
        self.log_path = os.path.join(self.tmp.name, "log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(mpi_env(), **(env or {})),
            start_new_session=True)
        deadline = time.monotonic() + 60
        while not all(os.path.exists(self.sock(r)) for r in range(n)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the MPI job did not start:\n" + self.text())
            time.sleep(0.05)

    def sock(self, rank):
        return os.path.join(self.tmp.name, "rank-%d.sock" % rank)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def logged(self, pattern, after=0):
        """The match of `pattern` past the first `after` ones in the ranks' log, once there.
        mpirun forwards what the ranks write on its own time: a line a rank wrote before its
        socket existed, or before its answer, may reach the log only after them."""
        deadline = time.monotonic() + 60
        while True:
            found = list(re.finditer(pattern, self.text()))
            if len(found) > after:
                return found[after]
            if time.monotonic() > deadline:
                raise AssertionError("%r not logged (%d times so far) within 60 s:\n%s"
                                     % (pattern, len(found), self.text()))
            time.sleep(0.05)

    def pid(self, rank):
        m = self.logged(r"hybridd\[(\d+)\] info: rank %d: MPI: rank" % rank)
        return int(m.group(1))

    def ctl(self, rank, *args, ok=True):
        p = subprocess.run([HYBRIDCTL, "--socket", self.sock(rank), "--json"] + list(args),
                           capture_output=True, text=True, timeout=120)
        if ok and p.returncode != 0:
            raise AssertionError("hybridctl %s: rc %d: %s" % (args, p.returncode, p.stderr))
        return p

    def stop(self, timeout=60):
        """Ends the job as a user would: SIGTERM to mpirun, which forwards it to every rank;
        then wait()."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout=60):
        """mpirun's exit status; every rank must have stopped by then."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the MPI job hung on stopping:\n" + self.text())

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def close(self):
        self.kill()
        self.log.close()
        self.tmp.cleanup()


class Lifecycle(unittest.TestCase):
    """Ranks serve on their own sockets, log their rank, and stop together."""

    def test_three_ranks_serve_and_stop_on_sigterm_to_mpirun(self):
        w = World(3)
        try:
            for r in range(3):
                st = json.loads(w.ctl(r, "ping").stdout)
                self.assertTrue(st, st)
            for r in range(3):
                w.logged(re.escape("rank %d: MPI: rank %d of 3" % (r, r)))
            # mpirun forwards SIGTERM to every rank and then exits 1 whatever they did
            # (Open MPI's rule for a job it was told to end), so the ranks' logs say how
            # they stopped: each drained and said so.
            w.stop()
            for r in range(3):
                self.assertIn("rank %d: stopped:" % r, w.text())
        finally:
            w.close()

    def test_one_rank_stopping_stops_the_job(self):
        w = World(2)
        try:
            os.kill(w.pid(1), signal.SIGTERM)
            self.assertEqual(w.wait(), 0, w.text())
            self.assertIn("rank 0: stopped:", w.text())
            self.assertIn("rank 1: stopped:", w.text())
        finally:
            w.close()


class Plain:
    """One hybridd not under MPI, the reference for hits and the refusal of ranks."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hybridd-plain-")
        conf = os.path.join(self.tmp.name, "hybridd.conf")
        with open(conf, "w") as f:
            f.write(CONF)
        self.sock = os.path.join(self.tmp.name, "plain.sock")
        self.log = open(os.path.join(self.tmp.name, "log"), "w")
        self.proc = subprocess.Popen([HYBRIDD, "--foreground", "-c", conf, "--socket", self.sock],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hybridd did not start")
            time.sleep(0.05)

    def ctl(self, *args):
        return subprocess.run([HYBRIDCTL, "--socket", self.sock, "--json"] + list(args),
                              capture_output=True, text=True, timeout=120)

    def close(self):
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()
        self.tmp.cleanup()


def error_of(p):
    """The error document hybridctl --json printed for a refused job."""
    return json.loads(p.stdout)["error"]


FIGURES = ("share", "compute_ns", "exchange_ns", "io_ns", "bytes_sent")


def running_span(test, w, rank, args):
    """`hybridctl ARGS` on `rank` (a span that will wait: on a stopped rank, or on a long
    part), once that rank's STATUS shows it running: its process."""
    p = subprocess.Popen([HYBRIDCTL, "--socket", w.sock(rank), "--json"] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not json.loads(w.ctl(rank, "status").stdout)["jobs"]["running"]:
        test.assertLess(time.monotonic(), deadline, w.text())
        if p.poll() is not None:  # (a message argument would wait for p)
            test.fail(p.communicate())
        time.sleep(0.05)
    return p


def check_per_rank(test, got, n, ranks):
    """A span's RESULT rank records, as hybridctl --json carries them: one per rank in rank
    order, shares adding up to n, every figure a non-negative integer, the whole their sum;
    returns them."""
    per = got["per_rank"]
    test.assertEqual([r["rank"] for r in per], sorted(ranks), per)
    test.assertEqual(sum(r["share"] for r in per), n, per)
    for r in per:
        for k in FIGURES:
            test.assertIsInstance(r[k], int, (k, r))
            test.assertGreaterEqual(r[k], 0, (k, r))
        if r["share"]:  # a rank that counted or sorted something spent time on it
            test.assertGreater(r["compute_ns"], 0, r)
    for k in FIGURES:
        test.assertEqual(got["per_rank_all"][k], sum(r[k] for r in per), k)
    return per


def ctl_text(sock, *args):
    """hybridctl without --json (text, or CSV with --csv): its standard output."""
    p = subprocess.run([HYBRIDCTL, "--socket", sock] + list(args), capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("hybridctl %s: rc %d: %s" % (args, p.returncode, p.stderr))
    return p.stdout


class PiAcross:
    """pi --ranks on rank 1 (not the lead rank): the hits of one daemon, for every split."""
    N = None
    NS = [1, 2, 3, 4, 7, 1000, 1000003, 10000019]

    @classmethod
    def setUpClass(cls):
        cls.plain = Plain()
        cls.world = World(cls.N)

    @classmethod
    def tearDownClass(cls):
        cls.world.stop()
        cls.world.close()
        cls.plain.close()

    def pi(self, rank, *args):
        return json.loads(self.world.ctl(rank, "pi", *args).stdout)

    def reference(self, n, seed, backend):
        p = self.plain.ctl("pi", "-n", str(n), "--seed", str(seed), "--backend", backend)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_hits_equal_one_daemons(self):
        for n in self.NS:
            for seed in (1, 0xdeadbeefcafe):
                with self.subTest(n=n, seed=seed):
                    ref = self.reference(n, seed, "native")
                    self.assertEqual(ref["ranks"], 1)
                    got = self.pi(1, "-n", str(n), "--seed", str(seed), "--backend", "native",
                                  "--ranks", "all")
                    self.assertEqual(got["ranks"], self.N)
                    self.assertEqual(got["n"], n)
                    self.assertEqual(got["hits"], ref["hits"])
                    self.assertEqual(got["estimate"], ref["estimate"])

    def test_auto_runs_the_parts_on_a_backend_that_spans(self):
        # auto across ranks chooses among the backends a rank's part runs on, for one part's
        # size; these ranks keep no history, so it runs the documented default and says so
        n, seed = 1000003, 9
        ref = self.reference(n, seed, "native")
        got = self.pi(1, "-n", str(n), "--seed", str(seed), "--backend", "auto", "--ranks",
                      "all")
        self.assertEqual((got["ranks"], got["hits"]), (self.N, ref["hits"]))
        self.assertEqual((got["backend"], got["auto"], got["explore"]), ("native", True, True))
        check_per_rank(self, got, n, range(self.N))
        text = ctl_text(self.world.sock(1), "pi", "-n", str(n), "--backend", "auto",
                        "--ranks", "all")
        self.assertIn("auto explored native", text)

    def test_every_rank_count_and_backend(self):
        n, seed = 999983, 42
        # process: each rank's workers count their windows of the stream (first + part)
        for backend in ("serial", "native", "locked", "process"):
            ref = self.reference(n, seed, backend)["hits"]
            for ranks in range(1, self.N + 1):
                with self.subTest(backend=backend, ranks=ranks):
                    got = self.pi(1, "-n", str(n), "--seed", str(seed), "--backend", backend,
                                  "--ranks", str(ranks))
                    self.assertEqual(got["ranks"], ranks)
                    self.assertEqual(got["hits"], ref)

    def test_spans_from_every_rank_at_once(self):
        # Each rank's executor holds its own span while it waits; the parts its peers send
        # meanwhile must still be counted (by the waiting span itself), or the spans wait on
        # each other until the job timeout.
        n, seed = 200000033, 9
        ref = self.reference(n, seed, "native")["hits"]
        for round_ in range(3):
            procs = [subprocess.Popen(
                [HYBRIDCTL, "--socket", self.world.sock(r), "--json", "pi", "-n", str(n),
                 "--seed", str(seed), "--backend", "native", "--ranks", "all"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for r in range(self.N)]
            for r, p in enumerate(procs):
                out, err = p.communicate(timeout=120)
                with self.subTest(round=round_, rank=r):
                    self.assertEqual(p.returncode, 0, err)
                    self.assertEqual(json.loads(out)["hits"], ref)

    def test_per_rank_figures(self):
        # Each rank's share is its part of hy_mpi_split's tiling: n / N, the first n % N
        # parts (from the asked rank on) one more.
        for n in (1000003, 2):
            with self.subTest(n=n):
                got = self.pi(1, "-n", str(n), "--backend", "native", "--ranks", "all")
                per = check_per_rank(self, got, n, range(self.N))
                want = [n // self.N + (k < n % self.N) for k in range(self.N)]
                by_rank = {r["rank"]: r["share"] for r in per}
                self.assertEqual([by_rank[(1 + k) % self.N] for k in range(self.N)], want)
                # every rank that took part sent a message: the parts out, the hits back
                for r in per:
                    if r["share"]:
                        self.assertGreater(r["bytes_sent"], 0, r)
        got = self.pi(1, "-n", "1000", "--ranks", "2")
        check_per_rank(self, got, 1000, [1, 2 % self.N])
        # text: a line per rank under the row, and the whole
        text = ctl_text(self.world.sock(1), "pi", "-n", "100000", "--ranks", "all")
        self.assertIn("per rank", text)
        for r in range(self.N):
            self.assertRegex(text, r"\n  %d +\d+ " % r)
        self.assertRegex(text, r"\n  all +100000 +100\.0%")
        # CSV: the same records, then the whole with the row's time
        csv = ctl_text(self.world.sock(1), "pi", "-n", "100000", "--ranks", "all", "--csv")
        lines = csv.splitlines()
        self.assertEqual(lines[0], "rank,share,compute_ns,exchange_ns,io_ns,bytes_sent,"
                                   "median_ns")
        self.assertEqual([ln.split(",")[0] for ln in lines[1:]],
                         [str(r) for r in range(self.N)] + ["all"])
        self.assertEqual(sum(int(ln.split(",")[1]) for ln in lines[1:-1]), 100000)
        self.assertEqual(int(lines[-1].split(",")[1]), 100000)
        self.assertGreater(int(lines[-1].split(",")[6]), 0)
        # one daemon's job has no records
        self.assertNotIn("per_rank", self.reference(1000, 1, "native"))
        self.assertNotIn("per_rank", self.pi(1, "-n", "1000", "--ranks", "1"))

    def test_refusals_then_a_good_job(self):
        p = self.world.ctl(1, "pi", "-n", "100", "--ranks", str(self.N + 1), ok=False)
        self.assertNotEqual(p.returncode, 0)
        e = error_of(p)
        self.assertEqual(e["name"], "ELIMIT")
        self.assertIn("above this MPI job's %d rank(s)" % self.N, e["message"])
        # hybrid holds every executor of a rank: it does not span ranks
        p = self.world.ctl(1, "pi", "-n", "100", "--ranks", "all", "--backend", "hybrid",
                           ok=False)
        e = error_of(p)
        self.assertEqual(e["name"], "EBACKEND", e)
        self.assertIn("spans ranks on serial, native, locked, process or opencl, not hybrid",
                      e["message"])
        got = self.pi(1, "-n", "1000", "--seed", "3", "--backend", "native", "--ranks", "all")
        self.assertEqual(got["hits"], self.reference(1000, 3, "native")["hits"])

    def test_a_daemon_not_under_mpi_refuses_ranks(self):
        p = self.plain.ctl("pi", "-n", "100", "--ranks", "2")
        e = error_of(p)
        self.assertEqual(e["name"], "EINVAL")
        self.assertIn("not running under MPI", e["message"])
        p = self.plain.ctl("pi", "-n", "100", "--seed", "5")
        self.assertEqual(p.returncode, 0, p.stderr)


class AutoAcrossFromHistory(unittest.TestCase):
    """auto across ranks with a history: chosen for one rank's part from what the asked
    rank measured at that size, and said so."""

    def test_auto_chooses_what_the_history_predicts_for_one_part(self):
        tmp = tempfile.TemporaryDirectory(prefix="hybridd-mpi-hist-")
        confs = [CONF + 'state = { history = "%s"; };\n' % os.path.join(tmp.name, "h%d" % r)
                 for r in range(2)]
        w = World(2, confs=confs)
        try:
            # every configuration of one rank, 10 runs each, at the part's size (native's
            # whole pool too: the plain comparison runs the thread counts all pools have)
            w.ctl(0, "compare", "pi", "-n", "500000", "--repeat", "10")
            w.ctl(0, "compare", "pi", "-n", "500000", "--repeat", "10", "--backends", "native",
                  "--threads", "2")
            got = json.loads(w.ctl(0, "pi", "-n", "1000000", "--backend", "auto", "--ranks",
                                   "all").stdout)
            self.assertEqual((got["ranks"], got["auto"], got["explore"]), (2, True, False))
            self.assertIn(got["backend"], ("serial", "native", "locked", "process"))
            self.assertGreater(got["predicted_ns"], 0)
            text = ctl_text(w.sock(0), "pi", "-n", "1000000", "--backend", "auto", "--ranks",
                            "all")
            self.assertIn("predicted fastest for each rank's part", text)
            w.stop()
        finally:
            w.close()
            tmp.cleanup()


class DeviceAcross(unittest.TestCase):
    """--backend opencl across ranks: each rank's part on its own OpenCL device (PoCL's CPU
    device here), the hits and bytes of one daemon's job."""

    @classmethod
    def setUpClass(cls):
        cls.plain = Plain()
        cls.world = World(3, confs=[CONF.replace("enabled = false", "enabled = true")] * 3)
        cls.tmp = tempfile.TemporaryDirectory(prefix="hybridd-mpi-dev-")

    @classmethod
    def tearDownClass(cls):
        cls.world.stop()
        cls.world.close()
        cls.plain.close()
        cls.tmp.cleanup()

    def test_pi_on_the_devices_counts_one_daemons_hits(self):
        n = 1000003
        ref = json.loads(self.plain.ctl("pi", "-n", str(n), "--seed", "5").stdout)
        got = json.loads(self.world.ctl(1, "pi", "-n", str(n), "--seed", "5", "--backend",
                                        "opencl", "--ranks", "all").stdout)
        self.assertEqual((got["ranks"], got["backend"], got["hits"]), (3, "opencl", ref["hits"]))
        check_per_rank(self, got, n, range(3))

    def test_sorts_on_the_devices_are_one_daemons_bytes(self):
        # the client's array (scattered from the asked rank), then .npy paths (each rank
        # reads its slice): both as one daemon sorts them
        def run(ctl, name, args):
            out = os.path.join(self.tmp.name, name)
            p = ctl(*(args + ["--output", out]))
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(out, "rb") as f:
                return json.loads(p.stdout), f.read()
        gen = ["sort", "-n", "30011", "--dtype", "f32", "--dist", "normal", "--raw"]
        src = write_npy(os.path.join(self.tmp.name, "dev-in.npy"), "f64",
                        special_array("f64", 20011, 7))
        for how, args in (("memfd", gen), ("files", ["sort", "--input", src])):
            with self.subTest(how=how):
                _, ref = run(self.plain.ctl, "dev-ref-" + how, args)
                got, data = run(lambda *a: self.world.ctl(1, *a), "dev-" + how,
                                args + ["--backend", "opencl", "--ranks", "all", "--check"])
                self.assertEqual((got["ranks"], got["backend"], got["checked"]),
                                 (3, "opencl", True))
                self.assertTrue(data == ref, "the span's bytes differ from one daemon's")

    def test_a_device_part_run_by_a_waiting_cpu_span(self):
        # rank 1's native span waits on rank 2 (stopped), holding the parts peers send it;
        # rank 0's device span over ranks 0 and 1 sends it a device part, which rank 1's
        # waiting span runs itself, on rank 1's device under that device's lock
        pid = self.world.pid(2)
        os.kill(pid, signal.SIGSTOP)
        try:
            p = running_span(self, self.world, 1, ["pi", "-n", "3000000", "--backend",
                                                   "native", "--ranks", "all"])
            before = json.loads(self.world.ctl(1, "status").stdout)["jobs"]["done"]
            n = 2000003
            ref = json.loads(self.plain.ctl("pi", "-n", str(n), "--seed", "9").stdout)
            got = json.loads(self.world.ctl(0, "pi", "-n", str(n), "--seed", "9", "--backend",
                                            "opencl", "--ranks", "2").stdout)
            self.assertEqual((got["backend"], got["hits"]), ("opencl", ref["hits"]))
            st = json.loads(self.world.ctl(1, "status").stdout)["jobs"]
            self.assertEqual((st["done"] - before, st["running"]), (1, 1), st)
        finally:
            os.kill(pid, signal.SIGCONT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(json.loads(out)["ranks"], 3)


class PiAcross2(PiAcross, unittest.TestCase):
    N = 2


class PiAcross3(PiAcross, unittest.TestCase):
    N = 3


DTYPES = {"i32": "<i", "u32": "<I", "i64": "<q", "u64": "<Q", "f32": "<f", "f64": "<d"}
# Floats the order must place by bits: NaNs of both signs and another payload (numpy's order
# puts every NaN last), both zeros, both infinities, the smallest subnormal.
SPECIAL_BITS = {
    "f32": [0x7FC00000, 0xFFC00000, 0x7F800001, 0x00000000, 0x80000000, 0x7F800000,
            0xFF800000, 0x00000001, 0x80000001],
    "f64": [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0, 1 << 63,
            0x7FF0000000000000, 0xFFF0000000000000, 1, (1 << 63) | 1],
}


def special_array(dtype, n, seed):
    """Raw bytes of n elements: random values, many repeats, and the dtype's edge values."""
    rnd = random.Random(seed)
    fmt = DTYPES[dtype]
    size = struct.calcsize(fmt)
    bits = 8 * size
    out = bytearray()
    for i in range(n):
        pick = rnd.random()
        if dtype in SPECIAL_BITS and pick < 0.2:
            out += rnd.choice(SPECIAL_BITS[dtype]).to_bytes(size, "little")
        elif pick < 0.4:  # few distinct values, so ties cross bucket edges
            out += struct.pack(fmt, rnd.choice((0, 1, 7, 100)))
        elif dtype in SPECIAL_BITS:
            out += struct.pack(fmt, rnd.gauss(0, 1e3))
        else:  # any bits: the extremes of signed and unsigned included
            out += rnd.getrandbits(bits).to_bytes(size, "little")
    return bytes(out)


NPY_DESCR = {"i32": "<i4", "u32": "<u4", "i64": "<i8", "u64": "<u8", "f32": "<f4",
             "f64": "<f8"}


def write_npy(path, dtype, raw):
    """A .npy 1.0 file of raw's elements, as numpy writes one (header padded to 64)."""
    n = len(raw) // struct.calcsize(DTYPES[dtype])
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (NPY_DESCR[dtype], n)
    h = d + " " * (63 - (10 + len(d)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + raw)
    return path


def submit_files(sock, src, dst, dtype, n, ranks=0xFFFF):
    """A raw SUBMIT of a sort of .npy paths (array files), as hybridctl sends it but with
    paths hybridctl would refuse to send (it reads the input's header first): the answers."""
    body = struct.pack("<IHHHHHHIIIIQQIIHHIHHH2x", 72, 2, 2, 0xFFFF, 1, 0,
                       list(DTYPES).index(dtype) + 1, 0, 1, 0, 3, n, 0, 0, 0, 0, 0, 0,
                       ranks, len(src), len(dst))
    # each item starts 8-aligned; the payload ends where the output path does
    src = src.encode() + b"\0" * (-len(src.encode()) % 8)
    return raw_exchange(sock, [(5, body + src + dst.encode())], final=(8, 9))[-1:]


class SortAcross:
    """sort --ranks on rank 1: the bytes of one daemon's sort, for every dtype and input."""
    N = None

    @classmethod
    def setUpClass(cls):
        cls.plain = Plain()
        cls.world = World(cls.N)
        cls.tmp = tempfile.TemporaryDirectory(prefix="hybridd-mpi-sort-")

    @classmethod
    def tearDownClass(cls):
        cls.world.stop()
        cls.world.close()
        cls.plain.close()
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def sorted_bytes(self, ctl, name, args):
        """Runs one sort through ctl, writing raw output; returns (result, bytes)."""
        out = self.path(name)
        p = ctl("sort", "--output", out, "--raw", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as f:
            return json.loads(p.stdout), f.read()

    def both(self, args, tag, rank=1, ranks="all"):
        """One daemon's sort and the span's of the same input: bytes must be identical."""
        _, ref = self.sorted_bytes(self.plain.ctl, tag + ".ref", args)
        got, data = self.sorted_bytes(
            lambda *a: self.world.ctl(rank, *a, ok=False), tag + ".got",
            args + ["--ranks", ranks, "--check"])
        self.assertEqual(got["ranks"], self.N if ranks == "all" else int(ranks))
        self.assertIs(got["checked"], True)
        self.assertEqual(len(data), len(ref))
        self.assertTrue(data == ref, "the span's bytes differ from one daemon's")
        return got

    def span_line(self, rank):
        return r"rank %d: sort across \d+ ranks: n \d+, shares ([\d,]+);" % rank

    def spans_logged(self, rank):
        """How many spans the rank's log shows so far (forwarded by mpirun, maybe late)."""
        return len(re.findall(self.span_line(rank), self.world.text()))

    def shares(self, rank, before):
        """The buckets' sizes of the span the rank logs after the `before` it had logged."""
        m = self.world.logged(self.span_line(rank), after=before)
        return [int(x) for x in m.group(1).split(",")]

    def test_generated_inputs_every_dtype(self):
        for dtype in DTYPES:
            for dist in ("normal", "sorted", "few-unique", "reversed"):
                for n in (1, 2, 5, 100003):
                    with self.subTest(dtype=dtype, dist=dist, n=n):
                        self.both(["-n", str(n), "--dtype", dtype, "--dist", dist,
                                   "--seed", "7", "--backend", "native"],
                                  "%s-%s-%d" % (dtype, dist, n))

    def test_nans_zeros_and_extremes_every_dtype(self):
        for dtype in DTYPES:
            with self.subTest(dtype=dtype):
                path = self.path(dtype + ".raw")
                with open(path, "wb") as f:
                    f.write(special_array(dtype, 60013, 11))
                self.both(["--input", path, "--dtype", dtype, "--backend", "serial"],
                          dtype + "-special")

    def test_all_equal_and_few_unique_split_evenly(self):
        for dtype, value in (("f64", -0.0), ("i32", 5), ("u64", 2**64 - 1)):
            with self.subTest(dtype=dtype):
                path = self.path(dtype + "-equal.raw")
                with open(path, "wb") as f:
                    f.write(struct.pack(DTYPES[dtype], value) * 90001)
                before = self.spans_logged(1)
                self.both(["--input", path, "--dtype", dtype], dtype + "-equal")
                sh = self.shares(1, before)
                self.assertEqual(sum(sh), 90001)
                self.assertLessEqual(max(sh), 1.1 * 90001 / self.N, sh)
        before = self.spans_logged(1)
        self.both(["-n", "200003", "--dtype", "u32", "--dist", "few-unique"], "few")
        sh = self.shares(1, before)
        self.assertEqual(len(sh), self.N)
        self.assertLessEqual(max(sh), 1.1 * 200003 / self.N, sh)

    def test_every_rank_count_and_backend(self):
        for backend in ("serial", "native", "locked"):
            for ranks in range(1, self.N + 1):
                with self.subTest(backend=backend, ranks=ranks):
                    self.both(["-n", "70001", "--dtype", "f32", "--dist", "normal",
                               "--backend", backend, "--repeat", "2"],
                              "%s-%d" % (backend, ranks), ranks=str(ranks))

    def test_spans_from_every_rank_at_once(self):
        # Each rank's executor holds its own span while it waits for the others' buckets;
        # the buckets its peers send meanwhile must still be sorted (by the waiting span).
        args = ["-n", "300007", "--dtype", "i64", "--dist", "normal", "--seed", "3"]
        _, ref = self.sorted_bytes(self.plain.ctl, "ref-at-once", args)
        procs = [subprocess.Popen(
            [HYBRIDCTL, "--socket", self.world.sock(r), "--json", "sort", "--output",
             self.path("at-once-%d" % r), "--raw", "--ranks", "all"] + args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(self.N)]
        for r, p in enumerate(procs):
            out, err = p.communicate(timeout=120)
            with self.subTest(rank=r):
                self.assertEqual(p.returncode, 0, err)
                with open(self.path("at-once-%d" % r), "rb") as f:
                    self.assertTrue(f.read() == ref)

    def test_auto_sorts_on_a_backend_that_spans(self):
        got = self.both(["-n", "20011", "--dtype", "i64", "--backend", "auto"], "auto")
        self.assertEqual((got["backend"], got["auto"]), ("native", True))
        # .npy paths, which run in parts even on one rank
        got = self.files_case("files-auto", "f64", special_array("f64", 7001, 6),
                              extra=["--backend", "auto"])
        self.assertEqual((got["backend"], got["auto"]), ("native", True))

    def test_per_rank_figures(self):
        # memfd: the asked rank's buckets go out and come back sorted; each rank's share is
        # its bucket, the log's shares
        n = 200003
        before = self.spans_logged(1)
        got = self.both(["-n", str(n), "--dtype", "f64", "--dist", "normal", "--backend",
                         "native"], "per-rank")
        per = check_per_rank(self, got, n, range(self.N))
        logged = self.shares(1, before)  # bucket k is on rank (1 + k) % N
        self.assertEqual([r["share"] for r in per],
                         [logged[(r - 1) % self.N] for r in range(self.N)])
        for r in per:
            self.assertGreater(r["bytes_sent"], 0, r)  # buckets out, sorted buckets back
            self.assertEqual(r["io_ns"], 0, r)          # no file
        # the asked rank sent every other bucket's keys at least
        self.assertGreaterEqual(per[1]["bytes_sent"], 8 * (n - per[1]["share"]))
        # .npy paths: every rank reads its slice, sends its buckets and writes its run
        src = write_npy(self.path("per-rank-in.npy"), "u32", special_array("u32", 50021, 4))
        got = json.loads(self.world.ctl(0, "sort", "--input", src, "--output",
                                        self.path("per-rank-out.npy"), "--ranks",
                                        "all").stdout)
        for r in check_per_rank(self, got, 50021, range(self.N)):
            self.assertGreater(r["io_ns"], 0, r)
            self.assertGreater(r["bytes_sent"], 0, r)
        text = ctl_text(self.world.sock(0), "sort", "--input", src, "--output",
                        self.path("per-rank-out2.npy"), "--ranks", "all")
        self.assertRegex(text, r"\n  all +50021 +100\.0%")

    def files_case(self, tag, dtype, raw, ranks="all", cwd=None, extra=()):
        """sort --input IN.npy --output OUT.npy --ranks: the daemons read and write the
        files (MPI-IO); OUT must be the very file one daemon's sort writes."""
        src = write_npy(self.path(tag + "-in.npy"), dtype, raw)
        ref, out = self.path(tag + "-ref.npy"), self.path(tag + "-out.npy")
        p = self.plain.ctl("sort", "--input", src, "--output", ref)
        self.assertEqual(p.returncode, 0, p.stderr)
        args = ["sort", "--input", src, "--output", out, "--ranks", ranks, "--check"]
        if cwd:  # relative paths: hybridctl makes them absolute for the daemon
            args = ["sort", "--input", os.path.basename(src), "--output",
                    os.path.basename(out), "--ranks", ranks, "--check"]
        args += list(extra)
        p = subprocess.run([HYBRIDCTL, "--socket", self.world.sock(1), "--json"] + args,
                           capture_output=True, text=True, timeout=120, cwd=cwd)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout)
        self.assertEqual(got["ranks"], self.N if ranks == "all" else int(ranks))
        self.assertIs(got["checked"], True)
        with open(ref, "rb") as f, open(out, "rb") as g:
            self.assertTrue(f.read() == g.read(), "the ranks' file differs from one daemon's")
        with open(src, "rb") as f:
            self.assertTrue(f.read()[-len(raw):] == raw, "the input was written to")
        # every rank read its slice and wrote its run (not hybridctl through a memfd);
        # mpirun forwards the ranks' output on its own time, so the line may come a little
        # after the answer
        want = "rank 1: sort across %d ranks from their slices of %s: n %d," % (
            got["ranks"], src, got["n"])
        deadline = time.monotonic() + 30
        while want not in self.world.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(want, self.world.text())
        return got

    def test_npy_paths_every_dtype(self):
        for dtype in DTYPES:
            with self.subTest(dtype=dtype):
                self.files_case(dtype + "-files", dtype, special_array(dtype, 30011, 5))
        # the memfd path of the same input: the same sorted bytes
        raw = special_array("f64", 30011, 5)
        rawin = self.path("f64-files.raw")
        with open(rawin, "wb") as f:
            f.write(raw)
        _, data = self.sorted_bytes(lambda *a: self.world.ctl(1, *a), "f64-files-memfd",
                                    ["--input", rawin, "--dtype", "f64", "--ranks", "all"])
        with open(self.path("f64-files-ref.npy"), "rb") as f:
            self.assertTrue(f.read()[-len(data):] == data)

    def test_spans_past_a_mebibyte_reuse_the_kept_buffers(self):
        # Buckets, bucket ids, slices and received parts of 1 MiB and more are kept after a
        # span and handed to the next (limits.span_keep_bytes): a span that reuses them must
        # leave nothing of the last one's keys. Other data, dtypes and sizes one after
        # another, each one daemon's bytes, through the memfd and through .npy paths.
        for seed, dtype in ((3, "f64"), (4, "f64"), (5, "u32")):
            with self.subTest(seed=seed, dtype=dtype):
                self.both(["-n", "1500007", "--dtype", dtype, "--dist", "normal",
                           "--seed", str(seed), "--backend", "native"],
                          "kept-%s-%d" % (dtype, seed))
        for k, n in enumerate((700001, 650003)):
            with self.subTest(files=k):
                self.files_case("kept-files-%d" % k, "u64", os.urandom(8 * n))

    def test_npy_paths_equal_few_unique_and_sorted(self):
        rnd = random.Random(9)
        cases = [("files-equal", "f64", struct.pack("<d", -0.0) * 20011),
                 ("files-few", "u32", b"".join(struct.pack("<I", rnd.choice((3, 9, 2**32 - 1)))
                                              for _ in range(40009))),
                 ("files-sorted", "i64", b"".join(struct.pack("<q", i - 5000)
                                                  for i in range(25013))),
                 ("files-one", "i32", struct.pack("<i", -7))]
        for tag, dtype, raw in cases:
            with self.subTest(tag=tag):
                self.files_case(tag, dtype, raw)
        self.files_case("files-rel", "f32", special_array("f32", 5003, 2), ranks="2",
                        cwd=self.tmp.name)

    def test_npy_paths_from_every_rank_at_once(self):
        # Every rank reads a slice and sorts a bucket of every span; none may wait on another.
        raw = special_array("u64", 120007, 8)
        src = write_npy(self.path("at-once-in.npy"), "u64", raw)
        ref = self.path("at-once-ref.npy")
        p = self.plain.ctl("sort", "--input", src, "--output", ref)
        self.assertEqual(p.returncode, 0, p.stderr)
        procs = [subprocess.Popen(
            [HYBRIDCTL, "--socket", self.world.sock(r), "--json", "sort", "--input", src,
             "--output", self.path("at-once-%d.npy" % r), "--ranks", "all", "--repeat", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(self.N)]
        with open(ref, "rb") as f:
            want = f.read()
        for r, p in enumerate(procs):
            out, err = p.communicate(timeout=120)
            with self.subTest(rank=r):
                self.assertEqual(p.returncode, 0, err)
                with open(self.path("at-once-%d.npy" % r), "rb") as f:
                    self.assertTrue(f.read() == want)

    def test_npy_paths_that_fail_then_a_good_sort(self):
        src = write_npy(self.path("fail-in.npy"), "i64", special_array("i64", 1000, 1))
        for dst, why in ((self.path("no-such-dir/out.npy"), "no such file"),
                         (self.path("fail-in.npy") + "/out.npy", "cannot open"),
                         (self.tmp.name, "cannot open")):
            with self.subTest(output=dst):
                p = self.world.ctl(1, "sort", "--input", src, "--output", dst, "--ranks",
                                   "all", ok=False)
                self.assertEqual(p.returncode, 1, p.stderr)
                e = error_of(p)
                self.assertEqual(e["name"], "ESYS")
                self.assertIn("rank 1: ", e["message"])
                self.assertIn(why, e["message"].lower())
                self.assertIn(dst, e["message"])
        # Paths hybridctl would not send (it reads the header first): a missing input, a
        # file that is not a .npy, a .npy of another dtype or length than the SUBMIT names.
        bad = self.path("fail-bad.npy")
        with open(bad, "wb") as f:
            f.write(b"not an array at all")
        out = self.path("fail-out.npy")
        for path, dtype, n, code, words in (
                (self.path("missing.npy"), "i64", 1000, -6, "cannot open"),
                (bad, "i64", 1000, -1, "is not a .npy file"),
                (src, "f64", 1000, -1, "holds 1000 i64, not the 1000 f64"),
                (src, "i64", 999, -1, "holds 1000 i64, not the 999 i64")):
            with self.subTest(input=path, dtype=dtype, n=n):
                got = submit_files(self.world.sock(1), path, out, dtype, n)
                t, body = got[0]
                self.assertEqual(t, ERROR)
                c, _, mlen = struct.unpack_from("<iQI", body, 4)
                msg = body[24:24 + mlen].decode()
                self.assertEqual(c, code, msg)
                self.assertIn("rank 1: ", msg)
                self.assertIn(path, msg)
                self.assertIn(words, msg)
        self.files_case("after-failures", "i64", special_array("i64", 7001, 3))

    def test_refusals_then_a_good_sort(self):
        p = self.world.ctl(1, "sort", "-n", "100", "--dtype", "i32", "--ranks",
                           str(self.N + 1), ok=False)
        self.assertNotEqual(p.returncode, 0)
        e = error_of(p)
        self.assertEqual(e["name"], "ELIMIT")
        self.assertIn("above this MPI job's %d rank(s)" % self.N, e["message"])
        p = self.world.ctl(1, "sort", "-n", "100", "--dtype", "i32", "--ranks", "all",
                           "--backend", "process", ok=False)
        e = error_of(p)
        self.assertEqual(e["name"], "EBACKEND")
        self.assertIn("a sort job spans ranks on serial, native, locked or opencl, not process",
                      e["message"])
        p = self.world.ctl(1, "compare", "sort", "-n", "100", "--dtype", "i32", "--ranks",
                           "all", ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.both(["-n", "5000", "--dtype", "i32", "--dist", "normal"], "after-refusals")


class SortRefusedByAPeer(unittest.TestCase):
    """A rank whose pool is smaller refuses its bucket: the client gets that rank's sentence,
    not a hang, and the next sort that fits every rank still works."""

    def test_a_peer_refuses_its_bucket(self):
        small = CONF.replace("native_threads = 2", "native_threads = 1")
        w = World(2, confs=[CONF, small])
        try:
            p = w.ctl(0, "sort", "-n", "50000", "--dtype", "f64", "--dist", "normal",
                      "--backend", "native", "--threads", "2", "--ranks", "all", ok=False)
            self.assertNotEqual(p.returncode, 0)
            e = error_of(p)
            self.assertEqual(e["name"], "ELIMIT")
            self.assertIn("rank 1: threads 2 is above the native pool's 1", e["message"])
            out = os.path.join(w.tmp.name, "out")
            p = w.ctl(0, "sort", "-n", "50000", "--dtype", "f64", "--dist", "normal",
                      "--backend", "native", "--threads", "1", "--ranks", "all", "--check",
                      "--output", out, "--raw")
            got = json.loads(p.stdout)
            self.assertEqual((got["ranks"], got["checked"]), (2, True))
            vals = struct.unpack("<50000d", open(out, "rb").read())
            self.assertEqual(list(vals), sorted(vals))
        finally:
            w.stop()
            w.close()


class DeviceRefusedByAPeer(unittest.TestCase):
    """A device span over a rank with OpenCL off: that rank's sentence, then a span it can
    run."""

    def test_a_rank_without_a_device_refuses_its_part(self):
        w = World(2, confs=[CONF.replace("enabled = false", "enabled = true"), CONF])
        try:
            for job in (["pi", "-n", "1000000"], ["sort", "-n", "50000", "--dtype", "f64"]):
                with self.subTest(job=job[0]):
                    p = w.ctl(0, *(job + ["--backend", "opencl", "--ranks", "all"]), ok=False)
                    self.assertNotEqual(p.returncode, 0)
                    e = error_of(p)
                    self.assertEqual(e["name"], "EBACKEND", e)
                    self.assertIn("rank 1: ", e["message"])
                    self.assertIn("OpenCL is off", e["message"])
            got = json.loads(w.ctl(0, "pi", "-n", "1000000", "--backend", "native", "--ranks",
                                   "all").stdout)
            self.assertEqual(got["ranks"], 2)
        finally:
            w.stop()
            w.close()


class SortFilesARankCannotRead(unittest.TestCase):
    """A rank whose MPI-IO cannot open the input (here: rank 2's Open MPI told to use an io
    component that does not exist) fails a .npy sort that spans it, cleanly, on every rank;
    the daemons go on serving, and spans without that rank still sort their files."""

    def test_a_rank_that_cannot_read_its_slice(self):
        no_io = ["env", "OMPI_MCA_io=no-such-component"]
        world = World(3, confs=[CONF] * 3, prefix=[[], [], no_io])
        tmp = tempfile.TemporaryDirectory(prefix="hybridd-mpi-noio-")
        try:
            raw = special_array("f64", 20011, 4)
            src = write_npy(os.path.join(tmp.name, "in.npy"), "f64", raw)
            out = os.path.join(tmp.name, "out.npy")
            p = world.ctl(1, "sort", "--input", src, "--output", out, "--ranks", "all",
                          ok=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            e = error_of(p)
            self.assertEqual(e["name"], "ESYS")
            self.assertIn("rank 2: cannot open %s" % src, e["message"])
            # the daemons keep serving: every rank in a memfd span, a pi across all
            world.ctl(2, "sort", "-n", "5000", "--dtype", "i32", "--ranks", "all", "--check")
            world.ctl(2, "pi", "-n", "100000", "--ranks", "all")
            # a span of ranks 0 and 1 reads and writes the files
            p = world.ctl(0, "sort", "--input", src, "--output", out, "--ranks", "2",
                          "--check")
            self.assertIs(json.loads(p.stdout)["checked"], True)
            # the same bytes as a memfd span of every rank (rank 2 included) sorts them into
            rawin, ref = os.path.join(tmp.name, "in.raw"), os.path.join(tmp.name, "ref.raw")
            with open(rawin, "wb") as f:
                f.write(raw)
            world.ctl(2, "sort", "--input", rawin, "--dtype", "f64", "--output", ref, "--raw",
                      "--ranks", "all")
            with open(out, "rb") as f, open(ref, "rb") as g:
                self.assertTrue(f.read()[-len(raw):] == g.read())
        finally:
            world.stop()
            world.close()
            tmp.cleanup()


def files_span_is_one_daemons(test, w, rank, tag, dtype, raw):
    """Sorts a .npy of `raw` across all of w's ranks, asking `rank`, then on that rank alone
    with no span: the two output files must hold the same bytes."""
    src = write_npy(os.path.join(w.tmp.name, tag + "-in.npy"), dtype, raw)
    dst, ref = (os.path.join(w.tmp.name, tag + end) for end in ("-out.npy", "-ref.npy"))
    p = w.ctl(rank, "sort", "--input", src, "--output", dst, "--ranks", "all", ok=False)
    test.assertEqual(p.returncode, 0, p.stderr + w.text())
    test.assertEqual(json.loads(p.stdout)["ranks"], w.n)
    w.ctl(rank, "sort", "--input", src, "--output", ref)  # one daemon's sort, no span
    with open(dst, "rb") as a, open(ref, "rb") as b:
        test.assertTrue(a.read() == b.read(), "the span's bytes differ from one daemon's")


class SortFilesPastTheRoom(unittest.TestCase):
    def test_npy_parts_past_a_buckets_room_are_gathered_too(self):
        # A rank gathers its bucket's parts straight into one buffer with room for about a
        # slice and a tenth; a part that does not fit waits aside and is copied in at the end.
        # A test hook shrinks the room to 7000 keys: with 3 ranks and 30011 keys (parts of
        # about 3330), two parts of a bucket fit and the third waits aside; with 60013 keys
        # one fits and two wait; sorted input sends each bucket whole from one slice, past
        # the room. The bytes must be one daemon's.
        w = World(3, confs=[CONF] * 3, env={"HYBRIDD_TEST_COLLECT_ROOM": "7000"})
        try:
            cases = [("room-f64", "f64", special_array("f64", 30011, 7)),
                     ("room-f64-aside", "f64", special_array("f64", 60013, 8)),
                     ("room-sorted", "i64", b"".join(struct.pack("<q", i - 9000)
                                                     for i in range(30011))),
                     ("room-equal", "u32", struct.pack("<I", 5) * 30011)]
            for tag, dtype, raw in cases:
                with self.subTest(tag=tag):
                    files_span_is_one_daemons(self, w, 2, tag, dtype, raw)
            w.stop()
        finally:
            w.close()


class SortClientGone(unittest.TestCase):
    """A client that goes away while its span runs: the asking rank drops the span (its
    peers' late buckets are taken and thrown away) and every rank serves the next sorts."""

    def test_next_sorts_after_a_cancelled_span(self):
        w = World(3)
        try:
            p = subprocess.Popen(
                [HYBRIDCTL, "--socket", w.sock(0), "--json", "sort", "-n", "3000000", "--dtype",
                 "f64", "--dist", "normal", "--ranks", "all", "--repeat", "500"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while "rank 0: sort across 3 ranks" not in w.text():
                self.assertLess(time.monotonic(), deadline, "no span ran:\n" + w.text())
                time.sleep(0.05)
            p.kill()
            p.wait()
            gone = r"rank 0: job \d+ \(sort\) cancelled: .*its client went away"
            while not re.search(gone, w.text()):
                self.assertLess(time.monotonic(), deadline, "not cancelled:\n" + w.text())
                time.sleep(0.05)
            rnd = random.Random(5)
            vals = [rnd.gauss(0, 1) for _ in range(200003)]
            path = os.path.join(w.tmp.name, "in.raw")
            with open(path, "wb") as f:
                f.write(struct.pack("<%dd" % len(vals), *vals))
            want = struct.pack("<%dd" % len(vals), *sorted(vals))
            for rank in (0, 2):
                out = os.path.join(w.tmp.name, "out-%d" % rank)
                got = json.loads(w.ctl(rank, "sort", "--input", path, "--dtype", "f64",
                                       "--ranks", "all", "--output", out, "--raw").stdout)
                self.assertEqual(got["ranks"], 3)
                with open(out, "rb") as f:
                    self.assertTrue(f.read() == want, "rank %d's sort differs" % rank)
        finally:
            w.stop()
            w.close()


class SpansKeptOutOfHistory(unittest.TestCase):
    """A span's time is not the asking daemon's for its n: the history that predicts a row
    (and that backend auto chooses by) must not learn it."""

    def test_a_span_teaches_no_prediction(self):
        w = World(2)
        try:
            args = ["-n", "100003", "--dtype", "f32", "--backend", "native", "--threads", "2",
                    "--repeat", "3"]
            for ranks in ("all", "all", "1"):
                got = json.loads(w.ctl(0, "sort", *args, "--ranks", ranks).stdout)
            # The last one ran on rank 0 alone, after two spans of the same configuration:
            # nothing it could be predicted from.
            self.assertEqual(got["ranks"], 1)
            self.assertIsNone(got["predicted_ns"])
            for _ in range(2):  # as many runs alone as there were spans: they are kept
                got = json.loads(w.ctl(0, "sort", *args).stdout)
            self.assertIsNotNone(got["predicted_ns"])
        finally:
            w.stop()
            w.close()


class SpanMemoryNotKept(unittest.TestCase):
    """limits.span_keep_bytes = 0: every span's buffers are new and given back after it."""

    def test_a_world_that_keeps_no_span_memory_sorts_the_same(self):
        conf = CONF.replace("job_timeout_s = 60L;", "job_timeout_s = 60L; span_keep_bytes = 0L;")
        w, plain = World(3, confs=[conf] * 3), Plain()
        tmp = tempfile.TemporaryDirectory(prefix="hybridd-mpi-nokeep-")
        try:
            for seed in (3, 4):
                args = ["sort", "-n", "1500007", "--dtype", "f64", "--dist", "normal",
                        "--seed", str(seed), "--raw", "--output"]
                ref, out = (os.path.join(tmp.name, "%s-%d" % (t, seed)) for t in ("ref", "out"))
                p = plain.ctl(*args, ref)
                self.assertEqual(p.returncode, 0, p.stderr)
                got = json.loads(w.ctl(1, *args, out, "--ranks", "all", "--check").stdout)
                self.assertEqual(got["ranks"], 3)
                self.assertIs(got["checked"], True)
                with open(ref, "rb") as f, open(out, "rb") as g:
                    self.assertTrue(f.read() == g.read(), "the span's bytes differ")
            w.stop()
        finally:
            w.close()
            plain.close()
            tmp.cleanup()


class SortAcross2(SortAcross, unittest.TestCase):
    N = 2


class SortAcross3(SortAcross, unittest.TestCase):
    N = 3


def raw_exchange(sock_path, frames, final=None):
    """Sends HELLO, then each (type, body) of `frames` as one frame (request ids 2, 3...),
    and returns each answer as (type, payload): the daemon's replies, in order — one per
    frame, or with `final` (types) every reply up to the first of those types."""
    import socket as so

    def frame(t, req, payload):
        return struct.pack("<4sHHIIQ", b"HYD1", 1, t, 0, len(payload), req) + payload

    def recv(c):
        head = b""
        while len(head) < 24:
            head += c.recv(24 - len(head))
        _, _, t, _, length, _ = struct.unpack("<4sHHIIQ", head)
        body = b""
        while len(body) < length:
            body += c.recv(length - len(body))
        return t, body

    with so.socket(so.AF_UNIX, so.SOCK_STREAM) as c:
        c.settimeout(60)
        c.connect(sock_path)
        c.sendall(frame(1, 1, struct.pack("<IHHII", 16, 1, 1, 0, 0)))  # HELLO, no name
        assert recv(c)[0] == 2  # WELCOME
        got = []
        for i, (t, body) in enumerate(frames):
            c.sendall(frame(t, 2 + i, body))
            got.append(recv(c))
            while final and got[-1][0] not in final:
                got.append(recv(c))
        return got


class SilentPeer(unittest.TestCase):
    """A rank that stops answering (SIGSTOP) costs a question or a span the peer timeout,
    then an error naming it, not a hang; after SIGCONT the next requests are answered."""

    def test_a_stopped_rank_is_named_then_the_world_works_again(self):
        conf = CONF.replace("job_timeout_s = 60L;", "job_timeout_s = 60L; peer_timeout_s = 2L;")
        w = World(3, confs=[conf] * 3)
        try:
            pid = w.pid(2)
            os.kill(pid, signal.SIGSTOP)
            try:
                asks = [("devices", "--ranks"), ("status", "--ranks"),
                        ("pi", "-n", "1000000", "--ranks", "all"),
                        ("sort", "-n", "100000", "--dtype", "i32", "--ranks", "all"),
                        ("pi", "-n", "1000000", "--ranks", "3")]
                for args in asks:
                    with self.subTest(args=args):
                        p = w.ctl(0, *args, ok=False)
                        self.assertNotEqual(p.returncode, 0, p.stdout)
                        e = error_of(p)
                        self.assertEqual(e["name"], "EBUSY", e)
                        self.assertIn("rank 2 ", e["message"])
                        self.assertIn("limits.peer_timeout_s", e["message"])
                # a span that leaves the stopped rank out is answered meanwhile
                got = json.loads(w.ctl(0, "pi", "-n", "1000", "--ranks", "2").stdout)
                self.assertEqual(got["ranks"], 2)
            finally:
                os.kill(pid, signal.SIGCONT)
            d = json.loads(w.ctl(0, "devices", "--ranks").stdout)
            self.assertEqual([r["rank"] for r in d["ranks"]], [0, 1, 2])
            got = json.loads(w.ctl(0, "pi", "-n", "1000000", "--ranks", "all").stdout)
            check_per_rank(self, got, 1000000, range(3))
            got = json.loads(w.ctl(1, "sort", "-n", "100000", "--dtype", "i32", "--ranks",
                                   "all", "--check").stdout)
            self.assertIs(got["checked"], True)
            w.stop()
        finally:
            w.close()

    def test_a_rank_busy_on_its_slice_past_the_timeout_is_not_silent(self):
        # Every rank's MPI thread spends 5 s on its slice of a .npy sort (a test hook that
        # lengthens the read) against a peer timeout of 2 s: the ranks answer pings between
        # the steps of that work, so the span completes instead of naming a rank silent.
        conf = CONF.replace("job_timeout_s = 60L;", "job_timeout_s = 60L; peer_timeout_s = 2L;")
        w = World(3, confs=[conf] * 3, env={"HYBRIDD_TEST_SLICE_PAUSE_MS": "5000"})
        try:
            files_span_is_one_daemons(self, w, 0, "busy", "f64",
                                      special_array("f64", 30001, 5))
            w.stop()
        finally:
            w.close()

    def test_a_part_run_inside_a_waiting_span_is_counted(self):
        # rank 1's span waits on rank 2 (stopped), so rank 1 holds the parts peers send it
        # and runs them itself: rank 0's part of a span over ranks 0 and 1 is one of them.
        # STATUS counts it, as it counts the parts a rank queues as jobs.
        w = World(3)
        try:
            pid = w.pid(2)
            os.kill(pid, signal.SIGSTOP)
            try:
                p = running_span(self, w, 1, ["pi", "-n", "3000000", "--ranks", "all"])
                before = json.loads(w.ctl(1, "status").stdout)["jobs"]
                got = json.loads(w.ctl(0, "pi", "-n", "1000000", "--ranks", "2").stdout)
                self.assertEqual(got["ranks"], 2)
                after = json.loads(w.ctl(1, "status").stdout)["jobs"]
                self.assertEqual(after["done"] - before["done"], 1, (before, after))
                self.assertEqual(after["running"], 1, after)  # its own span, still waiting
                self.assertIsNone(p.poll(), "rank 1's span ended before rank 2 answered")
            finally:
                os.kill(pid, signal.SIGCONT)
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(json.loads(out)["ranks"], 3)
            st = json.loads(w.ctl(0, "status", "--ranks").stdout)["world"]["ranks"]
            self.assertEqual(st[1]["jobs"]["done"] - before["done"], 2)  # the part, its span
            w.stop()
        finally:
            w.close()

    def test_a_killed_rank_ends_the_job_and_the_client_hears(self):
        # MPI's contract: a rank that dies takes the job down. The client waiting on the
        # other rank's span gets an answer (an error), not a hang.
        w = World(2)
        try:
            # far more samples than the job timeout (60 s) lets it count
            p = running_span(self, w, 0, ["pi", "-n", "1000000000000", "--backend", "serial",
                                          "--ranks", "all"])
            time.sleep(0.5)  # rank 1 counting its part, or about to: either way it dies mid-span
            os.kill(w.pid(1), signal.SIGKILL)
            out, err = p.communicate(timeout=120)
            self.assertNotEqual(p.returncode, 0, out)
            self.assertTrue(err or out)
            w.wait()
        finally:
            w.close()


RANKS, RANKS_REPLY, ERROR = 19, 20, 9


class RanksSeen:
    """`hybridctl devices --ranks` and `status` on every rank: each rank listed once, in
    order, with its own node, pools and counters; a bad RANKS refused, and the next one
    answered."""
    N = None

    @classmethod
    def setUpClass(cls):
        cls.world = World(cls.N)

    @classmethod
    def tearDownClass(cls):
        cls.world.stop()
        cls.world.close()

    def idle_ranks(self):
        """Every rank's record once none has a job queued or running (a span an earlier
        test cancelled leaves its peers' parts to finish)."""
        deadline = time.monotonic() + 120
        while True:
            ranks = json.loads(self.world.ctl(0, "status", "--ranks").stdout)["world"]["ranks"]
            if all(r["jobs"]["queued"] == r["jobs"]["running"] == 0 for r in ranks):
                return ranks
            self.assertLess(time.monotonic(), deadline, "the ranks never went idle")
            time.sleep(0.1)

    def test_devices_ranks_lists_every_rank_once(self):
        import socket as so
        for asked in range(self.N):
            d = json.loads(self.world.ctl(asked, "devices", "--ranks").stdout)
            self.assertEqual((d["mpi"], d["rank"], d["size"], d["complete"]),
                             (True, asked, self.N, True))
            self.assertEqual([r["rank"] for r in d["ranks"]], list(range(self.N)))
            for r in d["ranks"]:
                # CONF's pools, and no OpenCL device (opencl is off)
                self.assertEqual(r["cpu"]["native_threads"], 2)
                self.assertEqual(r["cpu"]["locked_threads"], 1)
                self.assertEqual(r["cpu"]["process_workers"], 1)
                self.assertEqual(r["cpu"]["online"], os.cpu_count())
                self.assertEqual(r["devices"], [])
                self.assertEqual(r["host"], so.gethostname())
        text = self.world.ctl(0, "devices", "--ranks").stdout
        self.assertTrue(text.startswith("{"))
        p = subprocess.run([HYBRIDCTL, "--socket", self.world.sock(self.N - 1), "devices",
                            "--ranks"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("MPI: rank %d of %d" % (self.N - 1, self.N), p.stdout)
        for r in range(self.N):
            self.assertEqual(p.stdout.count("rank %d on " % r), 1, p.stdout)

    def test_status_says_the_world_and_each_ranks_counters(self):
        for asked in range(self.N):
            st = json.loads(self.world.ctl(asked, "status").stdout)
            self.assertEqual((st["world"]["mpi"], st["world"]["rank"], st["world"]["size"]),
                             (True, asked, self.N))
        before = self.idle_ranks()
        # a job on the last rank alone: only its counter moves
        self.world.ctl(self.N - 1, "pi", "-n", "100000", "--backend", "serial")
        st = json.loads(self.world.ctl(0, "status", "--ranks").stdout)
        after = st["world"]["ranks"]
        self.assertEqual([r["rank"] for r in after], list(range(self.N)))
        self.assertTrue(st["world"]["complete"])
        done = [a["jobs"]["done"] - b["jobs"]["done"] for a, b in zip(after, before)]
        self.assertEqual(done, [0] * (self.N - 1) + [1])
        self.assertEqual(after[0]["clients"], 1)  # the asking hybridctl itself

    def test_a_bad_ranks_request_is_refused_and_the_next_answered(self):
        got = raw_exchange(self.world.sock(1), [
            (RANKS, struct.pack("<II", 8, 0x6)),  # flags it does not know
            (RANKS, struct.pack("<II", 8, 0x1))])  # ALL
        t, body = got[0]
        self.assertEqual(t, ERROR)
        code, _, mlen = struct.unpack_from("<iQI", body, 4)
        self.assertEqual(code, -1)  # EINVAL
        self.assertIn(b"RANKS flags 0x6", body[24:24 + mlen])
        t, body = got[1]
        self.assertEqual(t, RANKS_REPLY)
        nranks, rank_size, _, rank, size, flags, ndev = struct.unpack_from("<7I", body, 4)
        self.assertEqual((nranks, rank, size, flags, ndev), (self.N, 1, self.N, 0x3, 0))
        ranks = [struct.unpack_from("<I", body, 32 + rank_size * i)[0] for i in range(nranks)]
        self.assertEqual(ranks, list(range(self.N)))

    def test_answered_while_a_span_holds_the_executors(self):
        """A rank's loop answers RANKS while its CPU executor runs a span: status --ranks
        asked during a long pi across every rank sees it running."""
        p = subprocess.Popen([HYBRIDCTL, "--socket", self.world.sock(1), "--json", "pi", "-n",
                              "4e9", "--backend", "native", "--ranks", "all"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seen = None
            deadline = time.monotonic() + 120
            while p.poll() is None and time.monotonic() < deadline:
                w = json.loads(self.world.ctl(0, "status", "--ranks").stdout)["world"]
                if w["ranks"][1]["jobs"]["running"] == 1:
                    seen = w
                    break
                time.sleep(0.05)
            self.assertIsNotNone(seen, "the span was never seen running")
            self.assertEqual([r["rank"] for r in seen["ranks"]], list(range(self.N)))
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(120)


class RanksSeen2(RanksSeen, unittest.TestCase):
    N = 2


class RanksSeen3(RanksSeen, unittest.TestCase):
    N = 3


class FilesRefusedByAPlainDaemon(unittest.TestCase):
    """The system service opens no path a client names: array files is for hybridd --mpi."""

    def test_plain_daemon_refuses_paths(self):
        plain = Plain()
        try:
            src = write_npy(os.path.join(plain.tmp.name, "in.npy"), "i32",
                            struct.pack("<3i", 3, 1, 2))
            out = os.path.join(plain.tmp.name, "out.npy")
            p = plain.ctl("sort", "--input", src, "--output", out, "--ranks", "2")
            self.assertEqual(p.returncode, 1, p.stderr)
            e = error_of(p)
            self.assertEqual(e["name"], "EINVAL")
            self.assertIn("runs only on hybridd --mpi", e["message"])
            self.assertFalse(os.path.exists(out))
            got = submit_files(plain.sock, src, out, "i32", 3, ranks=0)
            self.assertEqual(got[0][0], ERROR)
            self.assertIn(b"runs only on hybridd --mpi", got[0][1])
            self.assertFalse(os.path.exists(out))
            p = plain.ctl("sort", "--input", src, "--output", out, "--ranks", "1")
            self.assertEqual(p.returncode, 0, p.stderr)  # --ranks 1: the memfd, as before
        finally:
            plain.close()


class RanksOfAPlainDaemon(unittest.TestCase):
    """A daemon not under MPI answers for itself alone, and says so."""

    def test_plain_daemon_answers_for_itself(self):
        plain = Plain()
        try:
            p = plain.ctl("devices", "--ranks")
            self.assertEqual(p.returncode, 0, p.stderr)
            d = json.loads(p.stdout)
            self.assertEqual((d["mpi"], d["rank"], d["size"], d["complete"]),
                             (False, 0, 1, True))
            self.assertEqual([r["rank"] for r in d["ranks"]], [0])
            self.assertEqual(d["ranks"][0]["cpu"]["native_threads"], 2)
            st = json.loads(plain.ctl("status").stdout)
            self.assertNotIn("world", st)  # nothing about MPI unless asked
            st = json.loads(plain.ctl("status", "--ranks").stdout)
            self.assertEqual((st["world"]["mpi"], st["world"]["size"]), (False, 1))
            p = subprocess.run([HYBRIDCTL, "--socket", plain.sock, "status", "--ranks"],
                               capture_output=True, text=True, timeout=120)
            self.assertIn("not under MPI", p.stdout)
        finally:
            plain.close()


def main():
    global MPIRUN, HYBRIDD, HYBRIDCTL
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--hybridd", required=True)
    ap.add_argument("--hybridctl", required=True)
    args, rest = ap.parse_known_args()
    MPIRUN, HYBRIDD, HYBRIDCTL = args.mpirun, args.hybridd, args.hybridctl
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
