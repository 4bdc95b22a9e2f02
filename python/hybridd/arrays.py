"""numpy arrays whose memory is a sealed memfd, so the daemon sorts them where they lie.

``array(n, dtype)`` creates one, ``asarray(x)`` returns ``x`` itself when it already is one
and a memfd-backed copy otherwise.  The memfd is created with ``MFD_ALLOW_SEALING``, sized,
and sealed against shrinking and growing (so the daemon's mapping can never fault) and
against further seals, as docs/protocol.md (Arrays) requires; the array is a shared mapping
of it, so what the daemon writes into the memfd is the array's contents.
"""
import concurrent.futures
import fcntl
import mmap
import os
import threading
import weakref

import numpy as np

from . import protocol as P

# numpy dtype -> protocol dtype name; only native (little-endian) byte order travels.
NUMPY_DTYPES = {np.dtype("<i4"): "i32", np.dtype("<u4"): "u32", np.dtype("<i8"): "i64",
                np.dtype("<u8"): "u64", np.dtype("<f4"): "f32", np.dtype("<f8"): "f64"}
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def numpy_dtype(dtype):
    """The numpy dtype for ``dtype``: a numpy dtype or its name, or the protocol's names
    (``"i32"`` ... ``"f64"``); TypeError for any of another kind or byte order."""
    if isinstance(dtype, str) and dtype in P.DTYPES:
        dtype = {"i": "<i", "u": "<u", "f": "<f"}[dtype[0]] + str(P.DTYPES[dtype][1])
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError("dtype %r: %s" % (dtype, e)) from None
    if dt not in NUMPY_DTYPES:
        raise TypeError("dtype %s is not one of int32 uint32 int64 uint64 float32 float64 "
                        "(little-endian)" % dt)
    return dt


def wire_dtype(dtype):
    """The protocol's dtype name (``"f64"``...) for ``dtype`` (see numpy_dtype)."""
    return NUMPY_DTYPES[numpy_dtype(dtype)]


class _Memfd:
    """Owns one memfd and its shared mapping; closes both when the last array goes."""

    def __init__(self, nbytes):
        # mmap cannot map 0 bytes: an empty array still gets one byte of memfd.
        self.size = max(nbytes, 1)
        self.fd = os.memfd_create("hybridd-array", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(self.fd, self.size)
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, SEALS)
            self.map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            # Huge pages where shmem allows them on request (shmem_enabled = advise): the
            # daemon maps the array on every job, and 4 KiB pages make that cost ~1 us each.
            if hasattr(mmap, "MADV_HUGEPAGE"):
                try:
                    self.map.madvise(mmap.MADV_HUGEPAGE)
                except OSError:
                    pass  # a hint: without it only the mapping is slower
        except BaseException:
            os.close(self.fd)
            raise
        self.address = np.frombuffer(self.map, np.uint8).ctypes.data
        weakref.finalize(self, os.close, self.fd)


class MemfdArray(np.ndarray):
    """A numpy array in a memfd.  Views and slices are plain arrays into the same memory;
    only an array that starts at the memfd's first byte and is contiguous is sorted in place
    by the daemon (a slice is copied like any other array)."""

    def __array_finalize__(self, obj):
        self._hy_memfd = getattr(obj, "_hy_memfd", None)

    @property
    def memfd(self):
        """The memfd's file descriptor (owned by the array: do not close it)."""
        return self._hy_memfd.fd if self._hy_memfd else None


def array(n, dtype="f8"):
    """A zero-filled 1-D array of ``n`` elements of ``dtype`` in a fresh sealed memfd."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError("n must be an int, not %s" % type(n).__name__)
    if n < 0:
        raise ValueError("n must be >= 0, not %d" % n)
    dt = numpy_dtype(dtype)
    return view(_Memfd(int(n) * dt.itemsize), n, dt)


# A plain array's copies into and out of its staging memfd are split over a few threads above
# this size: numpy releases the GIL while it copies, and on the 2-vCPU machine two threads
# copy 80 MB in 4.7 ms where one takes 11.7 (docs/benchmarks.md, mem-bench), so the copy in
# and the copy back together cost about what one copy on one thread would.
PARALLEL_COPY_BYTES = 8 << 20
_copy_pool = None
_copy_pool_lock = threading.Lock()


def _copy_threads():
    return max(1, min(4, os.cpu_count() or 1))


def copy(dst, src):
    """``dst[...] = src`` for 1-D arrays of the same length and dtype, split over up to 4
    threads when large (PARALLEL_COPY_BYTES)."""
    global _copy_pool
    parts = _copy_threads()
    if dst.nbytes < PARALLEL_COPY_BYTES or parts < 2:
        dst[...] = src
        return
    with _copy_pool_lock:
        if _copy_pool is None:
            _copy_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=parts - 1, thread_name_prefix="hybridd-copy")
    step = -(-dst.size // parts)
    cuts = [(i, min(i + step, dst.size)) for i in range(0, dst.size, step)]

    def part(lo, hi):
        dst[lo:hi] = src[lo:hi]
    pending = [_copy_pool.submit(part, lo, hi) for lo, hi in cuts[1:]]
    part(*cuts[0])                      # this thread's share, while the others copy theirs
    for f in pending:
        f.result()


def staging(nbytes, reuse=None):
    """A memfd owner of at least ``nbytes``: ``reuse`` when it is that large, else a new one."""
    if reuse is not None and reuse.size >= max(nbytes, 1):
        return reuse
    return _Memfd(nbytes)


def view(owner, n, dtype):
    """The first ``n`` elements of ``owner``'s memfd as a MemfdArray of ``dtype``: what the
    daemon sorts in place (a memfd may be larger than the job's array)."""
    dt = numpy_dtype(dtype)
    a = np.frombuffer(owner.map, dtype=dt, count=int(n)).view(MemfdArray)
    a._hy_memfd = owner
    return a


def asarray(x, dtype=None):
    """``x`` as a memfd-backed array: ``x`` itself if it is one already (and of ``dtype``),
    else a new one holding a copy of ``x``'s elements (flattened)."""
    if memfd_of(x) is not None and (dtype is None or numpy_dtype(dtype) == x.dtype):
        return x
    src = np.asarray(x, dtype=None if dtype is None else numpy_dtype(dtype))
    a = array(src.size, src.dtype)
    a[...] = src.reshape(-1)
    return a


def memfd_of(a):
    """The memfd owner of ``a`` when the daemon can sort ``a`` in place in it: a contiguous
    1-D MemfdArray starting at the memfd's first byte.  None otherwise."""
    owner = getattr(a, "_hy_memfd", None)
    if owner is None or a.ndim != 1 or not a.flags.c_contiguous or not a.flags.writeable:
        return None
    if a.ctypes.data != owner.address or a.nbytes > owner.size:
        return None
    return owner


def dtype_value(name):
    return P.DTYPES[name][0]
