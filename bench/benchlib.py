"""What the Python benchmark scripts share: a median, and a hybridd of their own on a
temporary socket driven through hybridctl --json. Standard library only."""

import json
import os
import signal
import subprocess
import time


def median(xs):
    xs = sorted(xs)
    m = len(xs)
    return xs[m // 2] if m % 2 else (xs[m // 2 - 1] + xs[m // 2]) / 2


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
