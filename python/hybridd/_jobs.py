"""The job methods of Client: pi, sort, compare, submit.

Every argument is checked here, before a byte is sent: a wrong type raises TypeError, a value
outside what the protocol can carry raises ValueError.  What depends on the daemon's
configuration (its limits, pools and devices) is the daemon's to refuse, with its own code
and sentence.
"""
import concurrent.futures
import numbers

import numpy as np

from . import errors as E
from . import protocol as P
from . import results as R
from .arrays import array as memfd_array, copy, memfd_of, numpy_dtype, staging, view, wire_dtype

# How long a Ctrl-C'd job may take to answer its CANCEL before the wait gives up on it.
CANCEL_WAIT_S = 30.0
U16, U32, U64 = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
TRANSFERS = ("auto", "memfd", "inline")
# A single job's backend: a backend, or auto (the daemon chooses from its history).
JOB_BACKENDS = dict(P.BACKENDS, auto=P.BACKEND_AUTO)


class Job(concurrent.futures.Future):
    """A submitted job.  ``result()`` is its PiResult, SortResult or Comparison, or raises its
    hybridd.Error; ``job_id`` is the daemon's id once ACCEPTED came (``accepted`` holds that
    message); ``cancel()`` asks the daemon to stop it (its result becomes CancelledError)."""

    def __init__(self, client, finish, progress=None):
        super().__init__()
        self.set_running_or_notify_cancel()
        self._client, self._finish, self.progress = client, finish, progress
        self._cleanup = None
        self.job_id = 0
        self.accepted = None
        self._cancel_wanted = False

    def cancel(self):
        """Sends CANCEL (now, or as soon as the job has an id); True unless it has ended."""
        if self.done():
            return False
        with self._client._lock:
            self._cancel_wanted = True
            job_id = self.job_id
        if job_id:
            self._client._cancel(job_id)
        return True

    def wait(self, timeout=None):
        """The result, as ``result()``, but Ctrl-C during the wait cancels the job first and
        waits for the daemon's answer to that before KeyboardInterrupt goes on."""
        try:
            return self.result(timeout)
        except KeyboardInterrupt:
            self.cancel()
            try:
                self.exception(CANCEL_WAIT_S)
            except (concurrent.futures.TimeoutError, KeyboardInterrupt):
                pass
            raise


# ------------------------------------------------------------------ argument checks

def _int(name, v, lo, hi, none=None, integral_float=False):
    """``v`` as an int in lo..hi; None gives ``none``.  Bools are not ints here."""
    if v is None and none is not None:
        return none
    if integral_float and isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError("%s must be an int, not %s" % (name, type(v).__name__))
    v = int(v)
    if not lo <= v <= hi:
        raise ValueError("%s must be in %d..%d, not %d" % (name, lo, hi, v))
    return v


def _choice(name, v, table, none=0):
    if v is None:
        return none
    if not isinstance(v, str):
        raise TypeError("%s must be a str, not %s" % (name, type(v).__name__))
    if v not in table:
        raise ValueError("%s must be one of %s, not %r" % (name, " ".join(table), v))
    return table[v]


def _nogil(v):
    if v is None:
        return 0
    if not isinstance(v, bool):
        raise TypeError("nogil must be True, False or None, not %r" % (v,))
    return 1 if v else 2


def _mask(name, names, table):
    if names is None:
        return 0
    if isinstance(names, str):
        names = [names]
    mask = 0
    for v in names:
        mask |= 1 << _choice(name, v, table)
    return mask


def _thread_list(threads):
    if threads is None:
        return []
    if isinstance(threads, numbers.Integral):
        threads = [threads]
    out = [_int("threads", t, 1, U32) for t in threads]
    if len(out) > P.MAX_THREAD_COUNTS:
        raise ValueError("at most %d thread counts, not %d" % (P.MAX_THREAD_COUNTS, len(out)))
    return out


def _ranks(ranks):
    """SUBMIT's ranks: None (or 1) this daemon alone, "all" every rank of an MPI job, or a
    count of ranks, the asked one first (docs/mpi.md)."""
    if ranks is None:
        return 0
    if isinstance(ranks, str):
        if ranks != "all":
            raise ValueError('ranks must be "all" or a count of ranks, not %r' % (ranks,))
        return P.RANKS_ALL
    return _int("ranks", ranks, 1, P.RANKS_ALL - 1)


def _submit_msg(job, backend="native", threads=None, seed=1, nogil=None, repeat=None,
                device=None, mode=None, switch_interval_us=None, transport=None, warmup=None,
                ranks=None):
    return {"type": P.SUBMIT, "job": job, "ranks": _ranks(ranks),
            "backend": _choice("backend", backend, JOB_BACKENDS) if job <= P.JOB_SORT else 0,
            "device": _int("device", device, 0, U16 - 1, none=P.DEVICE_DEFAULT),
            "mode": _choice("mode", mode, P.MODES),
            "nogil": _nogil(nogil),
            "threads": _int("threads", threads, 1, U32, none=0) if job <= P.JOB_SORT else 0,
            "repeat": _int("repeat", repeat, 1, U32, none=0),
            "warmup": _int("warmup", warmup, 1, P.WARMUP_MAX, none=0),
            "switch_interval_us": _int("switch_interval_us", switch_interval_us, 1, U32,
                                       none=0),
            "seed": _int("seed", seed, 0, U64),
            "transport": _choice("transport", transport, P.TRANSPORTS),
            "array": P.ARRAY_NONE, "n": 0, "dtype": 0, "backends": 0, "threads_list": []}


def _sort_input(a):
    if not isinstance(a, np.ndarray):
        raise TypeError("sort needs a numpy.ndarray (see hybridd.asarray), not %s"
                        % type(a).__name__)
    name = wire_dtype(a.dtype)
    if a.ndim != 1:
        raise ValueError("sort needs a 1-D array, not %d-D" % a.ndim)
    if not a.flags.writeable:
        raise ValueError("sort sorts in place: the array is read-only")
    if a.size == 0:
        raise ValueError("sort needs at least one element")
    return name


def _progress(progress):
    """A PROGRESS callback: ``progress`` itself, or for True a tqdm bar when tqdm is
    installed (and none when it is not)."""
    if progress is None or progress is False:
        return None, None
    if progress is True:
        try:
            from tqdm import tqdm
        except ImportError:
            return None, None
        bar = tqdm(total=0, unit="it")

        def update(done, total, row):
            bar.total = total
            bar.n = done
            bar.refresh()
        return update, bar.close
    if not callable(progress):
        raise TypeError("progress must be callable(done, total, row), True or None")
    return progress, None


class JobMethods:
    """pi, sort, compare and submit, mixed into Client."""

    def _count_copy(self, nbytes):
        # callers' threads copy in, the reader thread copies back: += is not atomic
        with self._lock:
            self.bytes_copied += nbytes

    def _stage(self, a):
        """``a`` copied into a memfd array for one job, and the function that hands the memfd
        back when the job has ended.  The client keeps its largest idle staging memfd for the
        next job: a fresh memfd costs a page fault and a zeroed page per 4 KiB on the first
        write (about 10x the copy itself for 10^7 f64), a reused one only the copy.  Jobs at
        once each take their own; the daemon has unmapped a memfd before its job's answer
        (docs/protocol.md), so a memfd handed back is free to reuse."""
        with self._lock:
            idle, self._idle_memfd = getattr(self, "_idle_memfd", None), None
        owner = staging(a.nbytes, idle)
        tmp = view(owner, a.size, a.dtype)
        copy(tmp, a)                    # a is 1-D (_sort_input)
        self._count_copy(a.nbytes)

        def done():
            with self._lock:
                kept = getattr(self, "_idle_memfd", None)
                if kept is None or kept.size < owner.size:
                    self._idle_memfd = owner
        return tmp, done

    def _start(self, msg, finish, fds=(), progress=None, cleanup=None):
        callback, close_bar = _progress(progress)
        job = Job(self, finish, callback)
        # Run before the result is set, so the bar is closed when result() returns.
        job._cleanup = _both(cleanup, close_bar)
        return self._call(msg, job, fds)

    def submit(self, job, *args, **kwargs):
        """Starts a job and returns its :class:`Job` (a concurrent.futures.Future) at once:
        ``submit("pi", n, ...)``, ``submit("sort", a, ...)``, ``submit("compare", "pi",
        ...)`` take the arguments of :meth:`pi`, :meth:`sort` and :meth:`compare`.  Several
        jobs may run at once, up to WELCOME's ``max_jobs_per_client``."""
        starters = {"pi": self._pi, "sort": self._sort, "compare": self._compare}
        if job not in starters:
            raise ValueError("job must be pi, sort or compare, not %r" % (job,))
        return starters[job](*args, **kwargs)

    def pi(self, n, backend="native", threads=None, seed=1, nogil=None, repeat=None,
           device=None, mode=None, switch_interval_us=None, progress=None, timeout=None,
           warmup=None, ranks=None):
        """Estimates pi from ``n`` samples on ``backend``; returns a :class:`PiResult`.

        backend: a backend's name, or "auto": the daemon chooses the backend, threads,
        device and transport from its history (the result's ``auto``, ``explore`` and
        ``predicted_ns`` say what it chose and why; threads, device, nogil, transport and
        mode are then left to it).
        threads: the CPU threads (process: workers), None for the backend's pool.
        nogil: None the job's default (pi holds the lock), True release, False hold
        (locked backend).  repeat: timed runs (None: 1).  device: the OpenCL device index
        (None: the daemon's first usable one).  mode: "split" or "replicate".
        progress: callable(done, total, row), or True for a tqdm bar.
        warmup: untimed runs first, 1..100 (None: none; the row's warmup_ns is the first's).
        ranks: on a daemon started as ``mpirun hybridd --mpi``, "all" or a count runs the job
        across that many ranks (docs/mpi.md); the result's ``per_rank`` says what each did.
        Ctrl-C while it runs cancels the job."""
        return self._pi(n, backend, threads, seed, nogil, repeat, device, mode,
                        switch_interval_us, progress, warmup, ranks).wait(timeout)

    def _pi(self, n, backend="native", threads=None, seed=1, nogil=None, repeat=None,
            device=None, mode=None, switch_interval_us=None, progress=None, warmup=None,
            ranks=None):
        msg = _submit_msg(P.JOB_PI, backend, threads, seed, nogil, repeat, device, mode,
                          switch_interval_us, warmup=warmup, ranks=ranks)
        msg["n"] = _int("n", n, 1, U64, integral_float=True)

        def finish(m):
            return R.PiResult(_one_row(m), m["job_id"], per_rank=_per_rank(m, 0))
        return self._start(msg, finish, progress=progress)

    def sort(self, a, backend="native", threads=None, nogil=None, repeat=None, device=None,
             mode=None, switch_interval_us=None, transport=None, transfer="auto",
             progress=None, timeout=None, warmup=None, ranks=None):
        """Sorts the 1-D numpy array ``a`` in place on ``backend``; returns the
        :class:`SortResult` row.

        An array from :func:`hybridd.array`/:func:`hybridd.asarray` is sorted where it lies,
        in its memfd: nothing is copied.  Any other array is copied once into a memfd and
        once back (or, up to WELCOME's ``max_inline_bytes``, sent inline in the frame);
        ``bytes_copied`` counts those copies.  transfer: "auto", "memfd" or "inline" forces
        one way.  transport: "pipe" or "shm" for the process backend.  Other arguments as
        :meth:`pi`."""
        return self._sort(a, backend, threads, nogil, repeat, device, mode,
                          switch_interval_us, transport, transfer, progress,
                          warmup, ranks).wait(timeout)

    def _sort(self, a, backend="native", threads=None, nogil=None, repeat=None, device=None,
              mode=None, switch_interval_us=None, transport=None, transfer="auto",
              progress=None, warmup=None, ranks=None):
        msg = _submit_msg(P.JOB_SORT, backend, threads, 1, nogil, repeat, device, mode,
                          switch_interval_us, transport, warmup, ranks)
        name = _sort_input(a)
        _choice("transfer", transfer, {t: t for t in TRANSFERS})
        fds, finish, cleanup = self._sort_array(msg, a, name, transfer)

        def result(m):
            finish(m)
            return R.SortResult(_one_row(m), m["job_id"], name, per_rank=_per_rank(m, 0))
        return self._start(msg, result, fds, progress, cleanup)

    def _sort_array(self, msg, a, name, transfer):
        """Puts ``a`` into ``msg`` as the protocol's Arrays section says; returns the fds to
        send, what to do with the RESULT's array, and what to release at the end."""
        msg.update(n=a.size, dtype=P.DTYPES[name][0])
        w = self.welcome
        inline_ok = a.nbytes <= min(w["max_inline_bytes"], w["max_payload"] - 64)
        memfd_ok = bool(w["features"] & P.FEATURE_MEMFD)   # else only inline can work
        owner = memfd_of(a)
        if transfer == "inline" or (transfer == "auto" and
                                    (not memfd_ok or (owner is None and inline_ok))):
            msg.update(array=P.ARRAY_INLINE, array_data=np.ascontiguousarray(a).data.cast("B"))
            self._count_copy(a.nbytes)                  # into the frame

            def from_frame(m):
                if m["array_bytes"] != a.nbytes:
                    raise E.ProtocolError("RESULT carries %d array bytes, not %d"
                                          % (m["array_bytes"], a.nbytes))
                a[...] = np.frombuffer(m["array_data"], dtype=a.dtype)
                self._count_copy(a.nbytes)
            return (), from_frame, None
        msg["array"] = P.ARRAY_MEMFD
        if owner is not None:                           # sorted where it lies: no copy
            keep = [a]
            return [owner.fd], lambda m: None, keep.clear
        tmp, done = self._stage(a)

        def copy_back(m):
            copy(a, tmp)
            self._count_copy(a.nbytes)
        return [memfd_of(tmp).fd], copy_back, done

    def compare(self, job, a=None, n=None, dtype="f64", backends=None, threads=None, seed=1,
                nogil=None, repeat=None, device=None, mode=None, switch_interval_us=None,
                transports=None, progress=None, timeout=None, warmup=None):
        """Runs ``job`` ("pi" or "sort") on several backends and thread counts and returns a
        :class:`Comparison`.

        pi: ``n`` samples.  sort: the array ``a`` (copied into a memfd unless it is a
        memfd array, which then ends sorted), or ``n`` uniform random numbers of ``dtype``
        drawn with ``seed``.  backends: names (None: every backend the daemon can run);
        threads: thread counts (None: 1, 2, 4, ... up to the pools); transports: the
        process rows' transports ("pipe", "shm").  repeat: timed runs of each row (None:
        5, after one warm-up)."""
        return self._compare(job, a, n, dtype, backends, threads, seed, nogil, repeat,
                             device, mode, switch_interval_us, transports,
                             progress, warmup).wait(timeout)

    def _compare(self, job, a=None, n=None, dtype="f64", backends=None, threads=None, seed=1,
                 nogil=None, repeat=None, device=None, mode=None, switch_interval_us=None,
                 transports=None, progress=None, warmup=None):
        if job not in ("pi", "sort"):
            raise ValueError("compare needs \"pi\" or \"sort\", not %r" % (job,))
        kind = P.JOB_COMPARE_PI if job == "pi" else P.JOB_COMPARE_SORT
        msg = _submit_msg(kind, None, None, seed, nogil, repeat, device, mode,
                          switch_interval_us, warmup=warmup)
        msg.update(backends=_mask("backends", backends, P.BACKENDS),
                   threads_list=_thread_list(threads),
                   transports=_mask("transports", transports, P.TRANSPORTS))
        fds, name, done = (), None, None
        if job == "pi":
            msg["n"] = _int("n", n, 1, U64, integral_float=True)
        else:
            if a is None:
                count = _int("n", n, 1, U64, integral_float=True)
                a = _random_array(count, dtype, seed)
            name = _sort_input(a)
            owner = memfd_of(a)
            if owner is None:
                a, done = self._stage(a)
                owner = memfd_of(a)
            msg.update(array=P.ARRAY_MEMFD, n=a.size, dtype=P.DTYPES[name][0])
            fds = [owner.fd]
        keep = [a]

        def finish(m):
            rows = [R.Row(r, m["job_id"]) for r in m["rows"]]
            return R.Comparison(job, rows, m["job_id"], msg["n"], name)
        return self._start(msg, finish, fds, progress, _both(keep.clear, done))


def _both(f, g):
    if f is None or g is None:
        return f or g
    return lambda: (f(), g())


def _random_array(n, dtype, seed):
    dt = numpy_dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "f":
        out = memfd_array(n, dt)
        out[...] = rng.random(n)
        return out
    info = np.iinfo(dt)
    out = memfd_array(n, dt)
    out[...] = rng.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
    return out


def _per_rank(m, row):
    """The RESULT's per-rank records of row `row` (a job that spanned MPI ranks), in rank
    order; [] for a job that ran on one daemon."""
    keys = ("rank", "share", "compute_ns", "exchange_ns", "io_ns", "bytes_sent")
    return sorted(({k: r[k] for k in keys} for r in m.get("rank_rows", []) if r["row"] == row),
                  key=lambda r: r["rank"])


def _one_row(m):
    if m["nrows"] != 1:
        raise E.ProtocolError("a single job's RESULT has %d rows, not 1" % m["nrows"])
    return m["rows"][0]
