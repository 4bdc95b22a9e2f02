"""The client's ``ranks=`` against a real ``mpirun -np 2 hybridd --mpi`` (skipped where Open
MPI's mpirun or the built hybridd is missing): a job spans the ranks, gives one daemon's
answer (the same hits; the same bytes, which are np.sort's), and its result says what each
rank did."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import numpy as np
import pytest

import hybridd
from test_client import check_sorted_like_numpy, special_values

RANKS = 2
CONF = ("cpu = { native_threads = 1; locked_threads = 1; process_workers = 1; };\n"
        "opencl = { enabled = false; };\n")


def mpi_env():
    env = dict(os.environ)
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_btl": "self,vader", "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
                "OMPI_MCA_rmaps_base_oversubscribe": "1"})
    return env


@pytest.fixture(scope="module")
def world():
    binary, mpirun = os.environ.get("HYBRIDD_BIN"), shutil.which("mpirun")
    if not binary or not os.access(binary, os.X_OK) or not mpirun:
        pytest.skip("needs HYBRIDD_BIN and Open MPI's mpirun")
    tmp = tempfile.mkdtemp(prefix="hybridd-pympi.")
    conf = os.path.join(tmp, "hybridd.conf")
    with open(conf, "w") as f:
        f.write(CONF)
    log = open(os.path.join(tmp, "log"), "w")
    proc = subprocess.Popen([mpirun, "--oversubscribe", "-np", str(RANKS), binary, "--mpi",
                             "-c", conf, "--socket", os.path.join(tmp, "rank-%r.sock")],
                            stdout=log, stderr=subprocess.STDOUT, env=mpi_env(),
                            start_new_session=True)
    socks = [os.path.join(tmp, "rank-%d.sock" % r) for r in range(RANKS)]
    deadline = time.monotonic() + 60
    while not all(os.path.exists(s) for s in socks):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the MPI job did not start:\n" + open(log.name).read())
        time.sleep(0.05)
    yield socks
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


def check_per_rank(r, n):
    assert r.ranks == RANKS, r
    assert [p["rank"] for p in r.per_rank] == list(range(RANKS)), r.per_rank
    assert sum(p["share"] for p in r.per_rank) == n, r.per_rank
    for p in r.per_rank:
        assert min(p["compute_ns"], p["exchange_ns"], p["io_ns"]) >= 0, p


def test_pi_across_ranks_counts_one_daemons_hits(world):
    n = 3_000_001
    with hybridd.connect(world[0]) as c:
        alone = c.pi(n, backend="serial", seed=5)
        spanned = c.pi(n, backend="serial", seed=5, ranks="all")
    assert alone.per_rank == [] and alone.ranks <= 1
    assert spanned.hits == alone.hits
    check_per_rank(spanned, n)
    assert all(p["bytes_sent"] > 0 for p in spanned.per_rank), spanned.per_rank


@pytest.mark.parametrize("dtype", ["<f8", "<i4"])
def test_sort_across_ranks_gives_one_daemons_bytes(world, dtype):
    src = special_values(dtype, n=200_000, seed=11)
    with hybridd.connect(world[1]) as c:     # any rank may be asked
        alone = src.copy()
        c.sort(alone, backend="native")
        check_sorted_like_numpy(alone, src)
        a = hybridd.asarray(src)             # in a memfd: sorted where it lies
        r = c.sort(a, backend="native", ranks=RANKS)
        assert a.tobytes() == alone.tobytes()
        check_per_rank(r, src.size)
        assert r.per_rank[1]["share"] > 0 and r.per_rank[0]["share"] > 0, r.per_rank
        b = src.copy()                       # a plain array: staged through a memfd
        r = c.sort(b, backend="native", ranks="all", transfer="memfd")
        assert b.tobytes() == alone.tobytes()
        check_per_rank(r, src.size)


def test_bad_ranks_are_refused_before_anything_is_sent(world):
    with hybridd.connect(world[0]) as c:
        for bad, err in (("some", ValueError), (0, ValueError), (1 << 16, ValueError),
                         (2.5, TypeError), (True, TypeError)):
            with pytest.raises(err):
                c.pi(1000, ranks=bad)
        # more ranks than the MPI job has: the daemon's refusal, and the next job runs
        with pytest.raises(hybridd.LimitError, match="above this MPI job"):
            c.pi(1000, ranks=RANKS + 1)
        assert c.pi(1000, ranks="all").hits == c.pi(1000).hits
