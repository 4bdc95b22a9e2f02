"""The client against a real hybridd (conftest.py starts one on a temporary socket)."""
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import hybridd
from hybridd import protocol as P
from conftest import MAX_SAMPLES, NATIVE_THREADS, PROCESS_WORKERS, Daemon

CPU_BACKENDS = ["serial", "native", "locked", "process"]
DTYPES = ["<i4", "<u4", "<i8", "<u8", "<f4", "<f8"]


def backends(opencl_device):
    return CPU_BACKENDS + (["opencl"] if opencl_device is not None else [])


def special_values(dtype, n=5000, seed=3):
    """n values of dtype: random ones, the extremes, duplicates and, for floats, -0.0, +0.0,
    +-inf and NaNs of both signs."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.normal(size=n).astype(dt)
        special = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 0.0, -0.0, np.nan,
                   np.finfo(dt).max, np.finfo(dt).min, np.finfo(dt).tiny]
    else:
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
        special = [info.min, info.max, 0, 1, info.max, info.min, 7, 7, 7]
    a[rng.choice(n, size=len(special), replace=False)] = np.array(special, dtype=dt)
    return a


def check_sorted_like_numpy(got, original):
    """got is np.sort(original) byte for byte, in hybridd's order for what numpy leaves open:
    -0.0 before +0.0 (numpy keeps them in no order), and the NaNs last in any order."""
    want = np.sort(original)
    if got.dtype.kind == "f":
        nan = np.isnan(want)
        k = int((~nan).sum())
        # numpy's order, with each run of zeros rearranged -0.0 first
        want = want.copy()
        zeros = want[:k] == 0
        # counted in the input: numpy 2's SIMD sort may turn a -0.0 into +0.0 (min/max of
        # equal zeros), so its own output does not always keep them
        nneg = int(np.signbit(original[original == 0]).sum())
        idx = np.flatnonzero(zeros)
        want[idx] = np.where(np.arange(idx.size) < nneg, -0.0, 0.0).astype(want.dtype)
        assert got[:k].tobytes() == want[:k].tobytes()
        assert np.isnan(got[k:]).all()
        assert sorted(got[k:].view("u%d" % got.itemsize).tolist()) == \
            sorted(original[np.isnan(original)].view("u%d" % got.itemsize).tolist())
    else:
        assert got.tobytes() == want.tobytes()


# ------------------------------------------------------------------ basics

def test_ping_status_devices(client):
    assert client.ping() > 0
    assert client.welcome["version"] == 1 and client.welcome["server"].startswith("hybridd")
    assert client.welcome["features"] == P.FEATURE_MEMFD | P.FEATURE_PROGRESS | P.FEATURE_KEEP_MAP
    st = client.status()
    assert st["clients"] >= 1 and st["version"].startswith("hybridd")
    assert set(st["backend_jobs"]) == set(P.BACKENDS)
    dev = client.devices()
    assert dev["native_threads"] == NATIVE_THREADS and dev["process_workers"] == PROCESS_WORKERS
    for d in dev["devices"]:
        assert isinstance(d["name"], str) and d["usable"] == (d["problem"] == "")


def test_ranks_of_a_daemon_not_under_mpi(client):
    """RANKS: a daemon not under MPI lists itself alone, as rank 0 of 1, with DEVICES' pools."""
    w = client.ranks()
    assert (w["mpi"], w["rank"], w["size"], w["complete"]) == (False, 0, 1, True)
    (r,) = w["ranks"]
    assert r["rank"] == 0 and r["native_threads"] == NATIVE_THREADS
    assert r["process_workers"] == PROCESS_WORKERS and r["clients"] >= 1
    assert len(r["devices"]) == len(client.devices()["devices"])
    assert client.ranks(all=False)["ranks"][0]["host"] == r["host"] != ""


def test_version_matches_cmake():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "CMakeLists.txt")
    with open(top) as f:
        text = f.read()
    import re
    assert re.search(r"project\(hybridd VERSION ([0-9.]+)", text).group(1) == \
        hybridd.__version__


def test_connect_to_nothing_is_a_connection_error(tmp_path):
    with pytest.raises(hybridd.DaemonNotRunning) as e:
        hybridd.connect(str(tmp_path / "none.sock"))
    assert isinstance(e.value, ConnectionError) and "none.sock" in str(e.value)


def test_default_socket_follows_hybridctl(monkeypatch, tmp_path):
    monkeypatch.setenv("HYBRIDD_SOCKET", "/x/y.sock")
    assert hybridd.default_socket() == "/x/y.sock"
    monkeypatch.delenv("HYBRIDD_SOCKET")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert hybridd.default_socket() == "/run/hybridd/hybridd.sock"     # nothing there yet
    (tmp_path / "hybridd.sock").write_text("")
    assert hybridd.default_socket() == str(tmp_path / "hybridd.sock")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert hybridd.default_socket() == "/run/hybridd/hybridd.sock"     # root: the system's


# ------------------------------------------------------------------ pi

def test_pi_hits_are_the_same_on_every_backend(client, opencl_device):
    rows = {b: client.pi(10 ** 6, backend=b, seed=42) for b in backends(opencl_device)}
    hits = {r.hits for r in rows.values()}
    assert len(hits) == 1, {b: r.hits for b, r in rows.items()}
    for b, r in rows.items():
        assert r.backend == b and r.n == 10 ** 6 and r.repeat == 1
        assert r.estimate == pytest.approx(4 * r.hits / r.n)
        assert r.error == r.std_error > 0 and r.median_ns > 0
    assert rows["native"].threads == NATIVE_THREADS and rows["serial"].threads == 1
    assert rows["process"].threads == PROCESS_WORKERS
    if opencl_device is not None:
        assert rows["opencl"].launches > 0


def test_pi_options_and_to_dict(client):
    r = client.pi(1e5, backend="locked", threads=2, seed=7, nogil=True, repeat=2)
    d = r.to_dict()
    assert d["backend"] == "locked" and d["threads"] == 2 and d["repeat"] == 2
    assert d["nogil"] is True and d["hits"] == r.hits
    assert client.pi(10 ** 5, backend="serial", seed=7).hits == r.hits


def test_auto_says_what_it_chose_and_why(client):
    # Whatever this session's daemon has learnt so far: a run it explores predicts nothing,
    # a run it chose as the fastest has a prediction; either way it names a real backend.
    for _ in range(3):
        r = client.pi(1e5, backend="auto", seed=7)
        assert r.auto and r.backend in P.BACKENDS and r.hits == client.pi(
            1e5, backend="serial", seed=7).hits
        assert r.explore == (r.predicted_ns == 0), (r.explore, r.predicted_ns)
        assert r.to_dict()["auto"] is True
    a = np.random.default_rng(3).standard_normal(5000)
    s = client.sort(a.copy(), backend="auto")
    assert s.auto and not (s.explore and s.predicted_ns)
    # a backend named by the caller is never flagged as the daemon's choice
    assert not client.pi(1e5, backend="native").auto
    # auto chooses the threads itself: naming them is refused with a sentence
    with pytest.raises(hybridd.Error) as e:
        client.pi(1e5, backend="auto", threads=2)
    assert "auto" in e.value.sentence and "threads" in e.value.sentence


def test_hybrid_rows_say_who_did_what(client):
    r = client.pi(2e6, backend="hybrid", seed=5)
    assert r.backend == "hybrid" and r.hits == client.pi(2e6, backend="serial", seed=5).hits
    d = r.to_dict()
    # The pool's share and the devices' add up to n; on a daemon that leaves PoCL's CPU
    # device out (the default), the pool did it all and the row says why.
    assert 0 <= d["cpu_items"] <= r.n and d["devices_used"] >= 0
    if d["devices_used"] == 0:
        assert d["cpu_items"] == r.n and d["balance"] is None
    a = np.random.default_rng(4).standard_normal(20000)
    want = np.sort(a)
    s = client.sort(a, backend="hybrid")
    assert s.backend == "hybrid" and np.array_equal(a, want)


def test_warmup_and_spread(client):
    r = client.pi(1e5, backend="native", warmup=2, repeat=3)
    assert r.warmup_ns > 0 and r.repeat == 3
    assert r.min_ns <= r.q1_ns <= r.median_ns <= r.q3_ns <= r.max_ns
    assert client.pi(1e5, backend="native").warmup_ns == 0   # none unless asked
    for bad in (0, 101, 1.5):
        with pytest.raises((ValueError, TypeError)):
            client.pi(1e5, warmup=bad)


def test_model_after_runs(client):
    client.pi(2 ** 14, backend="serial", repeat=6)
    m = client.model()
    cells = [c for c in m["cells"] if c["job"] == "pi" and c["backend"] == "serial"
             and c["log2n"] == 14 and c["threads"] == 1]
    assert len(cells) == 1 and cells[0]["samples"] >= 5 and cells[0]["trusted"]
    assert m["trust"] == 5 and m["ring"] == 20 and m["total"] >= len(m["cells"])


def test_progress_callback(client):
    seen = []
    client.pi(3 * 10 ** 9, backend="serial", progress=lambda d, t, row: seen.append((d, t)))
    assert seen and all(0 <= d <= t for d, t in seen)


# ------------------------------------------------------------------ sort

@pytest.mark.parametrize("dtype", DTYPES)
def test_sort_six_dtypes_like_numpy(client, dtype):
    original = special_values(dtype)
    for transfer in ("inline", "memfd"):
        a = original.copy()
        row = client.sort(a, backend="native", transfer=transfer)
        assert row.n == a.size and row.dtype == hybridd.arrays.wire_dtype(dtype)
        check_sorted_like_numpy(a, original)
    m = hybridd.asarray(original)
    client.sort(m, backend="serial")
    check_sorted_like_numpy(m, original)


def test_sort_every_backend(client, opencl_device):
    original = special_values("<f8", n=20000, seed=11)
    for b in backends(opencl_device):
        for transport in (["pipe", "shm"] if b == "process" else [None]):
            a = hybridd.asarray(original)
            row = client.sort(a, backend=b, transport=transport)
            assert row.backend == b
            if transport:
                assert row.transport == transport
            check_sorted_like_numpy(a, original)


def memfd_mappings():
    """(start, end) of this process's mappings of memfds named hybridd-array."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            if "/memfd:hybridd-array" in line:
                lo, hi = line.split()[0].split("-")
                out.append((int(lo, 16), int(hi, 16)))
    return out


def test_memfd_array_is_sorted_where_it_lies(client):
    a = hybridd.array(10 ** 6, "f8")
    a[...] = np.random.default_rng(5).random(a.size)
    original = np.array(a)
    address, copied = a.ctypes.data, client.bytes_copied
    assert any(lo <= address and address + a.nbytes <= hi for lo, hi in memfd_mappings())
    assert hybridd.asarray(a) is a
    client.sort(a, backend="native")
    assert a.ctypes.data == address and client.bytes_copied == copied   # no copy, either way
    check_sorted_like_numpy(a, original)


def test_plain_array_is_copied_once_each_way(client):
    a = np.random.default_rng(6).random(300000)
    original = a.copy()
    copied = client.bytes_copied
    client.sort(a, transfer="memfd")
    assert client.bytes_copied - copied == 2 * a.nbytes
    check_sorted_like_numpy(a, original)
    s = original[::2].copy()
    strided = np.empty(s.size * 2)[::2]                 # not contiguous: copied in and out
    strided[...] = s
    client.sort(strided)
    check_sorted_like_numpy(np.array(strided), s)


def test_threads_share_one_client(client):
    errors = []

    def work(i):
        try:
            a = np.random.default_rng(i).integers(-1000, 1000, 50000).astype(np.int32)
            b = np.sort(a)
            client.sort(a, backend=CPU_BACKENDS[i % 4])
            assert (a == b).all()
            assert client.pi(10 ** 5, backend="native", seed=i).n == 10 ** 5
        except BaseException as e:          # noqa: B902 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_submit_futures_overlap(client):
    jobs = [client.submit("pi", 10 ** 5, backend="native", seed=s) for s in (1, 2, 3)]
    assert [j.result().n for j in jobs] == [10 ** 5] * 3
    assert all(j.job_id for j in jobs)


# ------------------------------------------------------------------ compare

def test_compare_pi(client):
    cmp = client.compare("pi", n=10 ** 5, backends=["serial", "native"], threads=[1, 2],
                         repeat=1)
    assert {(r.backend, r.threads) for r in cmp} == {("serial", 1), ("native", 1),
                                                     ("native", 2)}
    assert len({r.hits for r in cmp}) == 1
    lines = cmp.to_csv().splitlines()
    assert lines[0].startswith("backend,") and len(lines) == 1 + len(cmp)
    html = cmp._repr_html_()
    assert "<table>" in html and "<svg" in html and "native" in html
    try:
        import pandas  # noqa: F401
    except ImportError:
        return
    assert len(cmp.to_pandas()) == len(cmp)


def test_compare_sort(client):
    a = special_values("<f4", n=10000)
    before = a.copy()
    cmp = client.compare("sort", a, backends=["serial", "process"], threads=[2],
                         transports=["pipe", "shm"], repeat=1)
    assert {(r.backend, r.transport) for r in cmp} >= {("process", "pipe"), ("process", "shm")}
    assert a.tobytes() == before.tobytes()         # a plain array goes in a copy


# ------------------------------------------------------------------ errors and cancel

def sends(client):
    """Records every frame the client sends from now on."""
    sent = []
    orig = client._send_frame
    client._send_frame = lambda data, fds=(): (sent.append(data), orig(data, fds))[1]
    return sent


@pytest.mark.parametrize("call, exc", [
    (lambda c: c.pi("10"), TypeError), (lambda c: c.pi(0), ValueError),
    (lambda c: c.pi(1.5), TypeError), (lambda c: c.pi(True), TypeError),
    (lambda c: c.pi(10, backend="gpu"), ValueError), (lambda c: c.pi(10, threads=0), ValueError),
    (lambda c: c.pi(10, nogil="yes"), TypeError), (lambda c: c.pi(10, seed=-1), ValueError),
    (lambda c: c.pi(10, mode="both"), ValueError), (lambda c: c.pi(2 ** 64), ValueError),
    (lambda c: c.sort([3, 1, 2]), TypeError), (lambda c: c.sort(np.zeros(3, bool)), TypeError),
    (lambda c: c.sort(np.zeros(3, ">f8")), TypeError),
    (lambda c: c.sort(np.zeros((2, 2))), ValueError),
    (lambda c: c.sort(np.zeros(0)), ValueError),
    (lambda c: c.sort(np.frombuffer(b"\0" * 8)), ValueError),
    (lambda c: c.sort(np.zeros(3), transfer="pigeon"), ValueError),
    (lambda c: c.compare("fft"), ValueError),
    (lambda c: c.compare("pi", n=10, threads=[0]), ValueError),
    (lambda c: c.compare("pi", n=10, threads=list(range(1, 34))), ValueError),
    (lambda c: c.compare("pi", n=10, backends=["cuda"]), ValueError),
    (lambda c: c.compare("pi", n=10, backends=["auto"]), ValueError),
    (lambda c: c.submit("fft", 10), ValueError),
])
def test_bad_arguments_raise_before_any_byte(client, call, exc):
    sent = sends(client)
    with pytest.raises(exc):
        call(client)
    assert sent == []


def test_daemon_error_has_its_code_and_sentence(client):
    with pytest.raises(hybridd.LimitError) as e:
        client.pi(MAX_SAMPLES + 1)
    assert e.value.code == P.ELIMIT == -4 and e.value.name == "ELIMIT"
    assert str(MAX_SAMPLES + 1) in e.value.sentence and "limits.samples" in e.value.sentence
    with pytest.raises(hybridd.LimitError) as e:
        client.sort(np.zeros(10), backend="native", threads=NATIVE_THREADS + 5)
    assert "native" in e.value.sentence
    assert client.ping() > 0                       # the connection goes on


def test_cancel_from_another_thread(client):
    started = threading.Event()
    job = client.submit("pi", MAX_SAMPLES, backend="serial",
                        progress=lambda d, t, r: started.set())
    canceller = threading.Thread(target=lambda: (started.wait(60), job.cancel()))
    canceller.start()
    with pytest.raises(hybridd.CancelledError) as e:
        job.result(120)
    canceller.join()
    assert e.value.code == P.ECANCELED and e.value.job_id == job.job_id
    assert client.ping() > 0


def test_ctrl_c_cancels_the_job(client):
    before = client.status()["jobs_cancelled"]
    main = threading.main_thread().ident
    fired = []

    def interrupt(done, total, row):
        if not fired:
            fired.append(1)
            signal.pthread_kill(main, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        client.pi(MAX_SAMPLES, backend="serial", progress=interrupt, timeout=120)
    assert client.status()["jobs_cancelled"] == before + 1


KILLED_CLIENT = r"""
import os, sys, threading
sys.path.insert(0, sys.argv[2])
import hybridd
c = hybridd.connect(sys.argv[1])
started = threading.Event()
a = hybridd.array(10 ** 6, "f8")
c.submit("sort", a, backend="serial", repeat=1000, progress=lambda *x: started.set())
c.submit("pi", int(sys.argv[3]), backend="serial", progress=lambda *x: started.set())
if not started.wait(120):
    sys.exit("no job reported progress within 120 s")
print("running", flush=True)
os._exit(0)
"""


def daemon_fds(pid):
    return sorted(os.listdir("/proc/%d/fd" % pid))


def test_client_killed_mid_job_leaves_nothing(daemon, client):
    fds = daemon_fds(daemon.proc.pid)
    before = client.status()
    pkg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    r = subprocess.run([sys.executable, "-c", KILLED_CLIENT, daemon.sock, pkg,
                        str(MAX_SAMPLES)], capture_output=True, text=True, timeout=120)
    assert r.stdout == "running\n", r.stderr
    for _ in range(600):                 # the daemon notices the hang-up, then cancels
        st = client.status()
        if st["jobs_running"] == 0 and st["jobs_queued"] == 0 and st["clients"] == 1:
            break
        threading.Event().wait(0.1)
    assert st["jobs_cancelled"] >= before["jobs_cancelled"] + 1
    assert (st["jobs_running"], st["jobs_queued"], st["clients"]) == (0, 0, 1)
    # The count, not the numbers: a process worker replaced meanwhile gets new ones.  The
    # job's memfd and the connection may close just after the counters say it ended.
    for _ in range(100):
        if len(daemon_fds(daemon.proc.pid)) <= len(fds):
            break
        threading.Event().wait(0.1)
    assert len(daemon_fds(daemon.proc.pid)) == len(fds)


def test_a_stopped_daemon_raises_connection_errors(daemon, tmp_path):
    d = Daemon(daemon.binary, str(tmp_path))
    c = hybridd.connect(d.sock)
    assert c.ping() > 0
    d.stop()
    with pytest.raises(ConnectionError):
        c.ping()
    with pytest.raises(hybridd.DaemonConnectionError):
        c.status()
    c.close()
    with pytest.raises(hybridd.DaemonNotRunning):
        hybridd.connect(d.sock)


def test_inline_array_is_counted_too(client):
    a = np.arange(1000, 0, -1, dtype=np.int64)
    copied = client.bytes_copied
    client.sort(a, transfer="inline")
    assert client.bytes_copied - copied == 2 * a.nbytes and (a == np.arange(1, 1001)).all()


BEYOND_SHM = r"""
import sys
sys.path.insert(0, sys.argv[2])
import numpy as np, hybridd
with open("/proc/self/mountinfo") as f:
    assert any(" /dev/shm " in l and "size=1024k" in l for l in f), "no small /dev/shm"
a = hybridd.array(2 * 10 ** 6, "f8")           # 16 MB, 16 times /dev/shm's size
a[...] = np.random.default_rng(9).random(a.size)
want = np.sort(a)
with hybridd.connect(sys.argv[1]) as c:
    c.sort(a, backend="native")
assert a.tobytes() == want.tobytes()
print("sorted", flush=True)
"""


def test_arrays_beyond_dev_shm_size(daemon):
    """memfds are not files in /dev/shm: a 1 MiB /dev/shm (in a mount namespace of its own)
    does not bound the array."""
    pkg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    script = "mount -t tmpfs -o size=1m tmpfs /dev/shm || exit 77; exec \"$@\""
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            script, "sh", sys.executable, "-c", BEYOND_SHM, daemon.sock, pkg],
                           capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        pytest.skip("no unshare(1)")
    if r.returncode != 0 and "sorted" not in r.stdout and \
            (r.returncode == 77 or "unshare" in r.stderr):
        pytest.skip("no mount namespace here (needs root): %s" % r.stderr.strip())
    assert r.returncode == 0 and r.stdout == "sorted\n", r.stderr


def test_jobs_lists_a_running_job(client):
    started = threading.Event()
    job = client.submit("pi", MAX_SAMPLES, backend="serial",
                        progress=lambda d, t, r: started.set())
    try:
        assert started.wait(60)
        try:
            listed = client.jobs()
        except hybridd.UnknownTypeError:
            pytest.skip("this hybridd does not know JOBS")
        mine = [j for j in listed["jobs"] if j["job_id"] == job.job_id]
        assert len(mine) == 1 and mine[0]["state"] == "running"
        assert mine[0]["backend"] == "serial" and mine[0]["n"] == MAX_SAMPLES
        assert mine[0]["uid"] == os.getuid()
    finally:
        job.cancel()
        with pytest.raises(hybridd.CancelledError):
            job.result(120)


def test_lesson_example_prints_its_table(daemon):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.path.join(here, ".."))
    r = subprocess.run([sys.executable, os.path.join(here, "..", "examples", "lesson.py"),
                        "--socket", daemon.sock, "--pi-n", "20000", "--sort-n", "20000",
                        "--repeat", "1", "--threads", "1,2"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["job", "who", "backend"]
    assert any("pure Python threads" in line for line in lines)
    assert any(line.startswith("sort") and "hybridd" in line and "native" in line
               for line in lines)


def test_a_failing_progress_callback_does_not_end_the_connection(client):
    def boom(done, total, row):
        raise RuntimeError("boom")
    with pytest.warns(RuntimeWarning, match="boom"):
        r = client.pi(3 * 10 ** 9, backend="serial", progress=boom)
    assert r.n == 3 * 10 ** 9 and client.ping() > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sorts_like_hybridctl(daemon, client, tmp_path, dtype):
    """The same array sorted by hybridctl (file in, file out) and by this client: the same
    bytes, NaN payloads and their order included."""
    hybridctl = os.environ.get("HYBRIDCTL_BIN")
    if not hybridctl:
        pytest.skip("no hybridctl: set HYBRIDCTL_BIN to a built one")
    original = special_values(dtype, n=3000, seed=21)
    np.save(tmp_path / "in.npy", original)
    r = subprocess.run([hybridctl, "-s", daemon.sock, "--quiet", "sort", "--input",
                        str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy"),
                        "--backend", "native"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    theirs = np.load(tmp_path / "out.npy")
    ours = hybridd.asarray(original)
    client.sort(ours, backend="native")
    assert theirs.dtype == ours.dtype and theirs.tobytes() == ours.tobytes()


def test_progress_true_drives_a_tqdm_bar(client, monkeypatch):
    """progress=True uses tqdm when it is installed (a stand-in module here)."""
    import types
    bars = []

    class Bar:
        def __init__(self, total=0, unit=""):
            self.total, self.n, self.refreshed, self.closed = total, 0, 0, False
            bars.append(self)

        def refresh(self):
            self.refreshed += 1

        def close(self):
            self.closed = True
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=Bar))
    client.pi(3 * 10 ** 9, backend="serial", progress=True)
    assert len(bars) == 1 and bars[0].refreshed > 0 and bars[0].closed
    assert 0 < bars[0].n <= bars[0].total
