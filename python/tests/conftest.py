"""A real hybridd on a temporary socket for the whole session.

The daemon binary comes from $HYBRIDD_BIN (CTest sets it to the built one); without it the
tests that need a daemon skip.  PoCL's kernel cache comes from $POCL_CACHE_DIR when set.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import hybridd  # noqa: E402

NATIVE_THREADS = 2
PROCESS_WORKERS = 2
MAX_SAMPLES = 10 ** 11
CONF = ("cpu = { native_threads = %d; locked_threads = 2; process_workers = %d; };\n"
        "limits = { samples = %dL; sort_elements = 20000000L; };\n"
        % (NATIVE_THREADS, PROCESS_WORKERS, MAX_SAMPLES))


class Daemon:
    def __init__(self, binary, tmp):
        self.binary, self.tmp = binary, tmp
        self.sock = os.path.join(tmp, "hybridd.sock")
        self.log_path = os.path.join(tmp, "hybridd.log")
        conf = os.path.join(tmp, "hybridd.conf")
        with open(conf, "w") as f:
            f.write(CONF)
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([binary, "--foreground", "-c", conf, "--socket", self.sock],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        self._wait_ready()

    def _wait_ready(self):
        # Ready when it answers a ping: the OpenCL kernels build first (seconds when cold).
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("hybridd exited %d:\n%s" % (self.proc.returncode, self.text()))
            try:
                with hybridd.connect(self.sock, timeout=30) as c:
                    c.ping()
                return
            except hybridd.DaemonConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("hybridd did not answer within 120 s:\n" + self.text())
                time.sleep(0.1)

    def text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def daemon():
    binary = os.environ.get("HYBRIDD_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip("no daemon: set HYBRIDD_BIN to a built hybridd")
    tmp = tempfile.mkdtemp(prefix="hybridd-py.")
    d = Daemon(binary, tmp)
    yield d
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def client(daemon):
    with hybridd.connect(daemon.sock) as c:
        yield c


@pytest.fixture(scope="session")
def opencl_device(daemon):
    """The index of the daemon's first usable OpenCL device, or None."""
    with hybridd.connect(daemon.sock) as c:
        for d in c.devices()["devices"]:
            if d["usable"]:
                return d["index"]
    return None
