#!/usr/bin/env python3
"""hybrid-bench sort --input FILE (standard library only): the array of a .npy file is the one
sorted (its dtype and length taken from the header, the output checked ascending by
hybrid-bench itself), and a missing, foreign, truncated or empty file, or --input with the
options of a drawn array, fails with a sentence and a non-zero exit.

    python3 test_input.py PATH-TO-hybrid-bench
"""
import os
import random
import struct
import subprocess
import sys
import tempfile

BENCH = sys.argv[1]
failures = []


def npy(path, descr, fmt, values, shape=None, cut=0):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (
        descr, len(values) if shape is None else shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    body = struct.pack("<%d%s" % (len(values), fmt), *values)
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(body[:len(body) - cut])


def run(*args):
    r = subprocess.run([BENCH, "sort", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def expect(what, ok, detail=""):
    print("%s %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures.append(what)
        print("     " + detail.strip().replace("\n", "\n     "))


with tempfile.TemporaryDirectory() as d:
    rng = random.Random(7)
    f64 = os.path.join(d, "f64.npy")
    vals = [rng.random() * 2 - 1 for _ in range(5000)] + [float("nan"), -0.0, 0.0] * 10
    rng.shuffle(vals)
    npy(f64, "<f8", "d", vals)
    rc, out, err = run("--input", f64, "--backends", "serial,native", "--threads", "1,2",
                       "--repeat", "1")
    expect("f64 file sorted on serial and native", rc == 0 and
           ("sort: n = %d f64, %s" % (len(vals), f64)) in out, out + err)

    i32 = os.path.join(d, "i32.npy")
    npy(i32, "<i4", "i", [rng.randrange(-2**31, 2**31) for _ in range(3000)])
    rc, out, err = run("--input", i32, "--backends", "serial", "--threads", "1", "--repeat", "1")
    expect("i32 file: dtype and length from the header", rc == 0 and
           "sort: n = 3000 i32" in out, out + err)

    rc, out, err = run("--input", os.path.join(d, "none.npy"), "--backends", "serial")
    expect("missing file refused", rc == 1 and "cannot open" in err, err)

    foreign = os.path.join(d, "foreign.npy")
    with open(foreign, "wb") as f:
        f.write(b"not an array at all")
    rc, out, err = run("--input", foreign, "--backends", "serial")
    expect("a file that is not .npy refused", rc == 1 and "is not a .npy file" in err, err)

    short = os.path.join(d, "short.npy")
    npy(short, "<f8", "d", [1.0, 2.0, 3.0], cut=4)
    rc, out, err = run("--input", short, "--backends", "serial")
    expect("truncated elements refused", rc == 1 and "ends short" in err, err)

    empty = os.path.join(d, "empty.npy")
    npy(empty, "<f8", "d", [])
    rc, out, err = run("--input", empty, "--backends", "serial")
    expect("an empty array refused", rc == 1 and "holds no elements" in err, err)

    big_endian = os.path.join(d, "be.npy")
    npy(big_endian, ">f8", "d", [1.0])
    rc, out, err = run("--input", big_endian, "--backends", "serial")
    expect("a dtype hybridd does not sort refused", rc == 1 and err.strip() != "", err)

    rc, out, err = run("--input", f64, "-n", "100")
    expect("--input with -n is a usage error", rc == 2 and "usage" in err, err)

sys.exit(1 if failures else 0)
