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
import re
import signal
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
    """One `mpirun -np N hybridd --mpi` in a temporary directory."""

    def __init__(self, n):
        self.n = n
        self.tmp = tempfile.TemporaryDirectory(prefix="hybridd-mpi-")
        conf = os.path.join(self.tmp.name, "hybridd.conf")
        with open(conf, "w") as f:
            f.write(CONF)
        self.log_path = os.path.join(self.tmp.name, "log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [MPIRUN, "--oversubscribe", "-np", str(n), HYBRIDD, "--mpi", "-c", conf,
             "--socket", os.path.join(self.tmp.name, "rank-%r.sock")],
            stdout=self.log, stderr=subprocess.STDOUT, env=mpi_env(),
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

    def pid(self, rank):
        m = re.search(r"hybridd\[(\d+)\] info: rank %d: MPI: rank" % rank, self.text())
        return int(m.group(1))

    def ctl(self, rank, *args, ok=True):
        p = subprocess.run([HYBRIDCTL, "--socket", self.sock(rank), "--json"] + list(args),
                           capture_output=True, text=True, timeout=120)
        if ok and p.returncode != 0:
            raise AssertionError("hybridctl %s: rc %d: %s" % (args, p.returncode, p.stderr))
        return p

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
                self.assertIn("rank %d: MPI: rank %d of 3" % (r, r), w.text())
            # mpirun forwards SIGTERM to every rank and then exits 1 whatever they did
            # (Open MPI's rule for a job it was told to end), so the ranks' logs say how
            # they stopped: each drained and said so.
            w.proc.send_signal(signal.SIGTERM)
            w.wait()
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
        cls.world.proc.send_signal(signal.SIGTERM)
        cls.world.wait()
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

    def test_every_rank_count_and_backend(self):
        n, seed = 999983, 42
        for backend in ("serial", "native", "locked"):
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

    def test_refusals_then_a_good_job(self):
        p = self.world.ctl(1, "pi", "-n", "100", "--ranks", str(self.N + 1), ok=False)
        self.assertNotEqual(p.returncode, 0)
        e = error_of(p)
        self.assertEqual(e["name"], "ELIMIT")
        self.assertIn("above this MPI job's %d rank(s)" % self.N, e["message"])
        p = self.world.ctl(1, "pi", "-n", "100", "--ranks", "all", "--backend", "process",
                           ok=False)
        e = error_of(p)
        self.assertEqual(e["name"], "EBACKEND")
        self.assertIn("spans ranks on serial, native or locked", e["message"])
        got = self.pi(1, "-n", "1000", "--seed", "3", "--backend", "native", "--ranks", "all")
        self.assertEqual(got["hits"], self.reference(1000, 3, "native")["hits"])

    def test_a_daemon_not_under_mpi_refuses_ranks(self):
        p = self.plain.ctl("pi", "-n", "100", "--ranks", "2")
        e = error_of(p)
        self.assertEqual(e["name"], "EINVAL")
        self.assertIn("not running under MPI", e["message"])
        p = self.plain.ctl("pi", "-n", "100", "--seed", "5")
        self.assertEqual(p.returncode, 0, p.stderr)


class PiAcross2(PiAcross, unittest.TestCase):
    N = 2


class PiAcross3(PiAcross, unittest.TestCase):
    N = 3


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
