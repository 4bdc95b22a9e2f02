#!/usr/bin/env python3
"""hybridd's side of make bench's end-to-end row: a file sorted into a file, as a user does it.

  python3 bench/e2e-time.py --hybridctl PATH (--socket SOCK | --hybridd PATH)
                            --input IN.npy --output OUT.npy [--repeat N]

Times the whole command `hybridctl sort --input IN --output OUT` from outside, from process
start to exit (the client reads the file, the daemon sorts, the client writes the answer):
one untimed warm-up with --check (exit 1 if the daemon's result is out of order), then N
timed runs (default 3). Each run's --json answer gives the daemon's own sort time, reported
beside it. In turns with those runs, the floor under any file-to-file sort: reading IN into
memory and writing those bytes to OUT, through the page cache and without fsync as numpy
does, by a Python process of its own per run, timed inside it (hybridctl does fsync its
output, which is replaced atomically; its writeback starts while it writes, so the fsync
adds a few ms). bench/lesson/lesson.py --e2e-input times numpy's side of the same file, also
a fresh process per run.

With --hybridd PATH it starts that daemon on a socket of its own (built-in defaults, stopped
at the end) and first times the first job after start, before the warm-up: issue 16 asks for
it within 1.2x of a warm run (first_job_ns; first_job_sort_ns is the daemon's own sort time
in it). That job waits --idle seconds (default 5) after the daemon answers, and after the
timed runs the warm daemon gets one more job after the same idle time (idle_job_ns,
idle_job_sort_ns). The two are then timed alike: on a VM whose balloon reports free pages
to its host (virtio-balloon's free page reporting, as on the machine these figures come
from), memory freed more than about 2 s before is handed back, and a job's 80 MB output
write then faults every page cache page in again at the host's cost, whatever the daemon's
age. With --socket it uses a running daemon and has no first job.

Prints one JSON document (compare.py reads it); exit 1 on any error. Standard library only.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def median(xs):
    xs = sorted(xs)
    m = len(xs)
    return xs[m // 2] if m % 2 else (xs[m // 2 - 1] + xs[m // 2]) / 2


def run_hybridctl(cmd):
    """One run of the command: (wall seconds, its JSON answer)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("e2e-time: %s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                        p.stderr.strip()))
    try:
        return wall, json.loads(p.stdout)
    except ValueError as e:
        raise SystemExit("e2e-time: %s printed no JSON: %s" % (" ".join(cmd), e))


# The floor: the file's bytes read into memory and written out again, by a process of its
# own timed inside it, as numpy's side is (bench/lesson/lesson.py FILE_TO_FILE): a
# long-lived loop would reuse the pages its last run freed, which no command run from a
# shell does, and on this VM first writes to new pages can cost several times more.
READ_WRITE = """
import sys, time
t0 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    data = f.read()
with open(sys.argv[2], "wb") as f:
    f.write(data)
print(time.perf_counter() - t0)
"""


def read_write(inp, out):
    """One run of the floor: its time in seconds."""
    p = subprocess.run([sys.executable, "-c", READ_WRITE, inp, out], capture_output=True,
                       text=True, check=False)
    if p.returncode != 0:
        raise SystemExit("e2e-time: the read-and-write floor failed: " + p.stderr.strip())
    return float(p.stdout)


def start_daemon(hybridd, hybridctl):
    """Starts hybridd --foreground on a temporary socket; (process, socket, directory) once it
    answers a ping (the OpenCL kernels build first: seconds on a cold PoCL cache)."""
    tmp = tempfile.mkdtemp(prefix="hybridd-e2e.")
    sock = os.path.join(tmp, "hybridd.sock")
    log = open(os.path.join(tmp, "hybridd.log"), "w")
    proc = subprocess.Popen([hybridd, "--foreground", "--socket", sock], stderr=log)
    log.close()
    for _ in range(600):
        ping = subprocess.run([hybridctl, "-s", sock, "--quiet", "ping"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if ping.returncode == 0:
            return proc, sock, tmp
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop_daemon(proc, tmp)
    raise SystemExit("e2e-time: %s did not come up on %s" % (hybridd, sock))


def stop_daemon(proc, tmp):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def row(name, n, times, **extra):
    med = median(times)
    r = {"name": name, "n": n, "median_ns": med * 1e9, "min_ns": min(times) * 1e9,
         "max_ns": max(times) * 1e9, "times_ns": [t * 1e9 for t in times],
         "throughput": n / med}
    r.update(extra)
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hybridctl", required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="a running hybridd's socket")
    where.add_argument("--hybridd", help="start this hybridd for the run, and time its first job")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle", type=float, default=5.0,
                    help="seconds of idle before the first job and the warm daemon's idle job")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    if not 0 <= a.idle <= 600:
        ap.error("--idle must be 0 to 600 seconds")
    if a.hybridd:
        proc, sock, tmp = start_daemon(a.hybridd, a.hybridctl)
        try:
            doc = measure(a, sock, True)
        finally:
            stop_daemon(proc, tmp)
    else:
        doc = measure(a, a.socket, False)
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def measure(a, sock, fresh):
    """The document: the command's rows (and its first job on a fresh daemon), the floor's."""
    cmd = [a.hybridctl, "-s", sock, "--json", "sort", "--input", a.input, "--output", a.output]
    cold, cold_ans = None, None
    if fresh:
        time.sleep(a.idle)
        cold, cold_ans = run_hybridctl(cmd)
    _, first = run_hybridctl(cmd + ["--check"])
    if first.get("checked") is not True:
        raise SystemExit("e2e-time: hybridctl --check did not confirm the order: %s"
                         % first.get("checked"))
    read_write(a.input, a.output)                 # warm-up, as for the command
    # In turns, so that both see the machine as it is at that moment.
    walls, sorts, floor = [], [], []
    for _ in range(a.repeat):
        wall, ans = run_hybridctl(cmd)
        walls.append(wall)
        sorts.append(ans["median_ns"] / 1e9)
        floor.append(read_write(a.input, a.output))
    n = first["n"]
    # The first job's own sort time beside its wall time tells a daemon that is slow to start
    # its first sort (fresh scratch pages) from a client that is slow on its first run; the
    # warm daemon's job after the same idle time tells both from what the idle costs any job.
    extra = {}
    if fresh:
        time.sleep(a.idle)
        idle, idle_ans = run_hybridctl(cmd)
        extra = {"first_job_ns": cold * 1e9, "first_job_sort_ns": cold_ans["median_ns"],
                 "idle_s": a.idle, "idle_job_ns": idle * 1e9,
                 "idle_job_sort_ns": idle_ans["median_ns"]}
    return {"tool": "bench/e2e-time.py", "n": n, "dtype": first.get("dtype"),
            "input": os.path.abspath(a.input), "repeat": a.repeat, "fresh_daemon": fresh,
            "rows": [row("hybridctl", n, walls, backend=first.get("backend"),
                         threads=first.get("threads"), sort_median_ns=median(sorts) * 1e9,
                         sort_times_ns=[s * 1e9 for s in sorts], **extra),
                     row("read-write", n, floor)]}


if __name__ == "__main__":
    sys.exit(main())
