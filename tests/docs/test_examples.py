#!/usr/bin/env python3
"""Runs every hybridctl example of the documentation exactly as written (standard library only).

Where the examples are: the fenced code blocks of README.md and docs/*.md, and the .EX/.EE blocks
of the man pages (docs/man/*.[158]: EXAMPLES and the rest). A line is a command when, after an
optional "$ " prompt, it starts with hybridctl or hybridd, or uses sudo or systemctl; lines
ending in a backslash are joined, and a trailing "# comment" is dropped. Every other line
(output shown after a prompt, make, cmake, configuration) is not an example of these tools.

The rules, in this order (each skipped line is printed with its rule):
  1. sudo or systemctl: needs root and a system's systemd -> skipped;
  2. starts hybridd (a daemon, or --check-config of a system's configuration): the test runs its
     own daemon -> skipped; in "hybridd && hybridctl ...", the hybridctl part runs;
  3. --ranks: a job across the ranks of an MPI job, which this test's one daemon is not
     (tests/mpi runs them under mpirun) -> skipped;
  4. everything else (hybridctl ...) runs, once per distinct line, through bash (so redirections
     work) in a scratch directory, against one temporary hybridd with its built-in defaults,
     reached through HYBRIDD_SOCKET so the lines stay as written. It must exit 0, and each file
     it names with --output, --plot or ">" must exist and be non-empty afterwards.
The scratch directory holds what the examples read: data.npy (100000 float64 values) and build/.

    python3 test_examples.py --src DIR --hybridd PATH --hybridctl PATH
"""
import argparse
import glob
import os
import random
import re
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import time


def md_blocks(path):
    """(line number, text) of each line in a fenced code block."""
    res, inside = [], False
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if line.startswith("```"):
                inside = not inside
                continue
            if inside:
                res.append((no, line))
    return res


def roff_text(line):
    """What man shows for a line of an .EX block (the escapes the pages use)."""
    for a, b in (("\\-", "-"), ("\\e", "\\"), ("\\(aq", "'"), ("\\(dq", '"'), ("\\&", ""),
                 ("\\(ti", "~"), ("\\(ha", "^")):
        line = line.replace(a, b)
    return line


def man_blocks(path):
    res, inside = [], False
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if line.startswith(".EX"):
                inside = True
                continue
            if line.startswith(".EE"):
                inside = False
                continue
            if inside:
                res.append((no, roff_text(line)))
    return res


def commands(src):
    """(where, command line) of every command in the documentation's code blocks."""
    files = [os.path.join(src, "README.md")] + sorted(glob.glob(os.path.join(src, "docs", "*.md")))
    mans = sorted(glob.glob(os.path.join(src, "docs", "man", "*.[158]")))
    found = []
    for path, blocks in [(p, md_blocks(p)) for p in files] + [(p, man_blocks(p)) for p in mans]:
        # Join continuations within consecutive lines only; the line number is the first one's.
        pending, first = "", None
        for no, text in blocks:
            text = text.rstrip("\n")
            if first is None:
                first = no
            if text.endswith("\\"):
                pending += text[:-1].rstrip() + " "
                continue
            line = (pending + text.strip()) if pending else text
            where = "%s:%d" % (os.path.relpath(path, src), first)
            pending, first = "", None
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:].strip()
            line = re.sub(r"\s+#.*$", "", line)
            if re.match(r"(hybridctl|hybridd|sudo|systemctl)\b", line):
                found.append((where, line))
    return found


def classify(line):
    """(rule, what to run or None)."""
    if re.search(r"(^|[;&|]\s*)(sudo|systemctl)\b", line):
        return "needs root and a system's systemd (sudo, systemctl)", None
    if line.startswith("hybridd"):
        m = re.match(r"hybridd(\s+[^&;|]*)?\s*&&\s*(hybridctl\b.*)$", line)
        if m:
            return "hybridd part dropped: the test's own daemon is running", m.group(2)
        return "starts or checks a hybridd of its own: the test runs its own daemon", None
    if re.search(r"\s--ranks\b", line):
        return "spans the ranks of an MPI job (tests/mpi runs those under mpirun)", None
    return None, line


def outputs(line):
    """The files a command line writes: --output, --plot, > (as written, relative to cwd; "-"
    is standard output, not a file)."""
    try:
        words = shlex.split(line)
    except ValueError:
        return []
    res = []
    for i, w in enumerate(words):
        if w in ("--output", "--plot", ">") and i + 1 < len(words):
            res.append(words[i + 1])
        elif w.startswith(("--output=", "--plot=")):
            res.append(w.split("=", 1)[1])
        elif w.startswith(">") and len(w) > 1:
            res.append(w[1:])
    return [f for f in res if f != "-"]  # "-": standard output, written through


def write_npy_f64(path, values):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }" % len(values)
    pad = 64 - (10 + len(header) + 1) % 64
    h = (header + " " * (pad % 64) + "\n").encode("latin1")
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h)
        f.write(struct.pack("<%dd" % len(values), *values))


def start_daemon(hybridd, hybridctl, tmp, env):
    sock = os.path.join(tmp, "hybridd.sock")
    log = open(os.path.join(tmp, "hybridd.log"), "w")
    proc = subprocess.Popen([hybridd, "--foreground", "--socket", sock], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    # Up to 120 s: with a cold PoCL cache the OpenCL kernels are compiled before it answers.
    for _ in range(1200):
        if subprocess.run([hybridctl, "-s", sock, "--quiet", "ping"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=env).returncode == 0:
            return proc, sock
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    with open(os.path.join(tmp, "hybridd.log")) as f:
        sys.stdout.write("hybridd did not answer a ping within 120 s; its log:\n" + f.read())
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--hybridd", required=True)
    ap.add_argument("--hybridctl", required=True)
    ap.add_argument("--pocl-cache")
    ap.add_argument("--list", action="store_true", help="only print the examples and the rules")
    a = ap.parse_args()

    found = commands(a.src)
    if not found:
        print("FAIL: no examples found under %s" % a.src)
        return 1
    if a.list:
        for where, line in found:
            rule, run = classify(line)
            print("%-28s %s%s" % (where, line, "" if rule is None else "   [%s]" % rule))
        return 0

    tmp = tempfile.mkdtemp(prefix="hybridd-examples.")
    work = os.path.join(tmp, "work")
    os.makedirs(os.path.join(work, "build"))
    rng = random.Random(1)
    write_npy_f64(os.path.join(work, "data.npy"), [rng.uniform(-1e6, 1e6) for _ in range(100000)])

    # hybridctl from the build, under the name the examples use.
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    os.symlink(os.path.abspath(a.hybridctl), os.path.join(bindir, "hybridctl"))
    env = dict(os.environ)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    if "POCL_CACHE_DIR" not in env and a.pocl_cache:
        os.makedirs(a.pocl_cache, exist_ok=True)
        env["POCL_CACHE_DIR"] = a.pocl_cache

    daemon, sock = start_daemon(a.hybridd, a.hybridctl, tmp, env)
    env["HYBRIDD_SOCKET"] = sock
    fails, ran, skipped, done = 0, 0, 0, {}
    try:
        for where, line in found:
            rule, run = classify(line)
            if run is None:
                print("skip %-26s %s   [%s]" % (where, line, rule))
                skipped += 1
                continue
            if rule:
                print("note %-26s %s   [%s]" % (where, line, rule))
            if run in done:
                print("same %-26s %s   (ran for %s)" % (where, run, done[run]))
                continue
            done[run] = where
            for out in outputs(run):
                p = os.path.join(work, out)
                if os.path.isfile(p):
                    os.unlink(p)
            t0 = time.monotonic()
            r = subprocess.run(["bash", "-c", run], cwd=work, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
            secs = time.monotonic() - t0
            ran += 1
            problems = []
            if r.returncode != 0:
                problems.append("exit %d" % r.returncode)
            for out in outputs(run):
                p = os.path.join(work, out)
                if not os.path.isfile(p) or os.path.getsize(p) == 0:
                    problems.append("%s was not written" % out)
            if problems:
                fails += 1
                print("FAIL %-26s %s   (%s, %.1f s)" % (where, run, "; ".join(problems), secs))
                for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
                    text = text.decode("utf-8", "replace").strip()
                    if text:
                        print("     %s: %s" % (name, text[-2000:].replace("\n", "\n     ")))
            else:
                print("ok   %-26s %s   (%.1f s)" % (where, run, secs))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        if fails == 0:
            subprocess.run(["rm", "-rf", tmp])
        else:
            print("scratch directory and the daemon's log kept in %s" % tmp)
    print("%d example(s) ran, %d failed, %d skipped by the rules above" % (ran, fails, skipped))
    if daemon.returncode != 0:
        print("FAIL: hybridd exited %d on SIGTERM" % daemon.returncode)
        return 1
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
