"""A plain numpy array's trip through the client's staging memfd: the client keeps its
largest idle one for the next job (a reused memfd's pages are already in memory), never
hands one memfd to two jobs at once, and the answers are the same as np.sort's."""
import threading

import numpy as np

from hybridd.arrays import memfd_of


def test_a_plain_arrays_staging_memfd_is_reused_by_the_next_job(client):
    rng = np.random.default_rng(5)
    a = rng.random(1000)
    client.sort(a, transfer="memfd")
    first = client._idle_memfd
    assert first is not None and first.size >= a.nbytes
    assert np.all(a[:-1] <= a[1:])

    b = rng.integers(-50, 50, 600).astype(np.int32)     # smaller, another dtype: same memfd
    want = np.sort(b)
    client.sort(b, transfer="memfd")
    assert np.array_equal(b, want)
    assert client._idle_memfd is first

    c = rng.random(5000)                                 # larger: a new memfd, kept instead
    want = np.sort(c)
    client.sort(c, transfer="memfd")
    assert np.array_equal(c, want)
    assert client._idle_memfd is not first and client._idle_memfd.size >= c.nbytes
    client.close()
    assert client._idle_memfd is None


def test_jobs_at_once_never_share_a_staging_memfd(client):
    rng = np.random.default_rng(6)
    arrays = [rng.random(20000 + 1000 * k) for k in range(4)]
    wants = [np.sort(x) for x in arrays]
    in_flight, staged, lock = set(), [], threading.Lock()
    real_stage = client._stage

    def stage(x):
        tmp, done = real_stage(x)
        owner = memfd_of(tmp)
        with lock:
            assert id(owner) not in in_flight, "one staging memfd given to two jobs at once"
            in_flight.add(id(owner))
            staged.append(owner)

        def release():
            with lock:
                in_flight.discard(id(owner))
            done()
        return tmp, release
    client._stage = stage
    try:
        jobs = [client.submit("sort", x, transfer="memfd") for x in arrays]
        for j in jobs:
            j.result(timeout=60)
    finally:
        del client._stage
    for x, w in zip(arrays, wants):
        assert np.array_equal(x, w)
    assert len(staged) == 4 and not in_flight


def test_large_copies_are_split_over_threads_and_exact(monkeypatch):
    # The split copy: every dtype, contiguous and strided on either side, sizes that do not
    # divide evenly; the threshold lowered so small arrays take the threaded path.
    from hybridd import arrays
    monkeypatch.setattr(arrays, "PARALLEL_COPY_BYTES", 64)
    monkeypatch.setattr(arrays, "_copy_threads", lambda: 3)
    used = set()
    real_pool = arrays.concurrent.futures.ThreadPoolExecutor

    class Pool(real_pool):
        def submit(self, fn, *args):
            return real_pool.submit(self, lambda: (used.add(threading.get_ident()), fn(*args)))
    monkeypatch.setattr(arrays, "_copy_pool", Pool(max_workers=2))
    rng = np.random.default_rng(11)
    for dt in ("i4", "u4", "i8", "u8", "f4", "f8"):
        for n in (17, 1000, 4099):
            src = rng.integers(0, 1 << 30, 2 * n).astype(dt)
            for s in (src[:n], src[::2]):
                dst = np.zeros(2 * n, dtype=dt)
                for d in (dst[:n], dst[::2]):
                    d[...] = 0
                    arrays.copy(d, s)
                    assert np.array_equal(d, s), (dt, n)
    assert used and threading.get_ident() not in used, "no copy ran on another thread"


def test_a_large_plain_array_sorts_right_through_the_split_copies(client, monkeypatch):
    from hybridd import arrays
    monkeypatch.setattr(arrays, "PARALLEL_COPY_BYTES", 4096)
    rng = np.random.default_rng(12)
    big = rng.standard_normal(40002)
    big[::97] = np.nan
    big[1::89] = -0.0
    a = big[::2]                                 # strided: the copy back lands in place
    want = np.sort(a)
    client.sort(a, transfer="memfd")
    assert np.array_equal(a.view(np.uint64), want.view(np.uint64))
    assert np.array_equal(big[::2].view(np.uint64), want.view(np.uint64))
