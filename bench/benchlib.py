"""What the Python benchmark scripts share: a median, a hybridd of their own on a temporary
socket driven through hybridctl --json, and an MPI job of hybridd ranks. Standard library
only."""

import json
import os
import re
import signal
import subprocess
import time


def median(xs):
    xs = sorted(xs)
    m = len(xs)
    return xs[m // 2] if m % 2 else (xs[m // 2 - 1] + xs[m // 2]) / 2


def quartiles(xs):
    """The lower quartile, the median and the upper quartile of xs."""
    xs = sorted(xs)
    return xs[len(xs) // 4], median(xs), xs[(3 * len(xs)) // 4]


class Daemon:
    """hybridd with the configuration text `conf` (and extra environment `env`) in `tmp`."""

    def __init__(self, hybridd, hybridctl, tmp, conf="", env=None):
        self.sock = os.path.join(tmp, "s.sock")
        path = os.path.join(tmp, "hybridd.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(tmp, "hybridd.log"), "w")
        self.proc = subprocess.Popen([hybridd, "--foreground", "-c", path, "--socket",
                                      self.sock], stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, **(env or {})))
        self.ctl = hybridctl
        for _ in range(200):
            if subprocess.run([hybridctl, "-s", self.sock, "ping"], capture_output=True,
                              check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("hybridd did not start (see %s)" % self.log.name)

    def json(self, *args):
        r = subprocess.run([self.ctl, "-s", self.sock, "--json"] + [str(a) for a in args],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise SystemExit("hybridctl %s: %s" % (" ".join(map(str, args)), r.stderr.strip()))
        return json.loads(r.stdout)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


# tests/mpi's transport: shared memory without the single-copy mechanism, which containers
# often refuse.
MPI_ENV = {"OMPI_MCA_btl": "self,vader", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}


class MpiWorld:
    """`mpirun -np RANKS hybridd --mpi` of a build directory, its sockets and log in `tmp`;
    `keep`, limits.span_keep_bytes (None: the default)."""

    def __init__(self, mpirun, build, ranks, tmp, keep=None):
        self.build, self.tmp = build, tmp
        self.log_path = os.path.join(tmp, "log")
        self.log = open(self.log_path, "w")
        conf = []
        if keep is not None:  # limits.span_keep_bytes: the buffers a rank keeps for the next span
            conf = ["-c", os.path.join(tmp, "hybridd.conf")]
            with open(conf[1], "w") as f:
                f.write("limits = { span_keep_bytes = %dL; };\n" % keep)
        self.proc = subprocess.Popen(
            [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", str(ranks),
             os.path.join(build, "daemon", "hybridd"), "--mpi"] + conf + ["--socket",
             os.path.join(tmp, "%r.sock")],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, **MPI_ENV),
            start_new_session=True)
        self.sock = os.path.join(tmp, "0.sock")
        for _ in range(400):
            if self.ctl("ping").returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("mpirun of %s did not start (see %s)" % (build, self.log_path))

    def ctl(self, *args):
        return subprocess.run([os.path.join(self.build, "client", "hybridctl"), "-s",
                               self.sock] + list(args), capture_output=True, text=True,
                              check=False)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()

    def partitions(self):
        with open(self.log_path) as f:
            return [float(x) for x in re.findall(r"sample\+partition ([0-9.]+) ms", f.read())]
