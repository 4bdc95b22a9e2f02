"""The hybridd wire protocol, version 1: frames and messages, as docs/protocol.md specifies.

This module is a second implementation of the specification, written from docs/protocol.md
alone (not from ipc/msg.c), so that the two can be held against each other and against the
spec's golden examples.  It knows nothing of sockets: it turns bytes into messages and
messages into bytes.  A message is a plain ``dict`` with a ``"type"`` key (the type's number)
and one key per field; variable items (strings, lists, arrays) are ``bytes``/``memoryview``
or lists.  Reserved fields are never in the dict: they are written as 0 and ignored on read.

Every malformed input raises :class:`CodecError` carrying the protocol's error code
(``EPROTO``, ``ELIMIT``, ...), the same answer a receiver gives in the spec.
"""
import struct

MAGIC = b"HYD1"
VERSION = 1
HEADER = struct.Struct("<4sHHIIQ")   # magic, version, type, flags, length, request
HEADER_SIZE = HEADER.size            # 24
F_FDS = 0x1
MAX_FDS = 4
MAX_PAYLOAD_BEFORE_WELCOME = 1 << 20
MAX_NAME = 64
MAX_SENTENCE = 1024
MAX_THREAD_COUNTS = 32
MAX_ROWS = 256
MAX_DEVICES = 64
MAX_JOB_RECORDS = 256
MAX_CELLS = 2048
MAX_RANKS = 64            # rank records in a RANKS_REPLY
MAX_RANK_DEVICES = 128    # device records in a RANKS_REPLY, every rank's together
RANKS_FLAG_ALL = 0x1      # RANKS: every rank of the MPI job, else the answering rank alone
RANKS_MPI = 0x1           # RANKS_REPLY: the daemon runs under MPI (hybridd --mpi)
RANKS_REPLY_ALL = 0x2     # RANKS_REPLY: the records cover every rank of the job
CELL_TRUSTED = 0x1
JOBS_ALL = 0x1
JOB_STATES = {1: "queued", 2: "running"}

FEATURE_MEMFD = 0x1
FEATURE_PROGRESS = 0x2
FEATURE_KEEP_MAP = 0x4     # the daemon may keep a memfd's mapping between this connection's jobs

# Message types.
HELLO, WELCOME, PING, PONG, SUBMIT, ACCEPTED, PROGRESS, RESULT, ERROR, CANCEL, \
    STATUS, STATUS_REPLY, DEVICES, DEVICES_REPLY, JOBS, JOBS_REPLY, MODEL, \
    MODEL_REPLY, RANKS, RANKS_REPLY = range(1, 21)
TYPE_NAMES = {1: "HELLO", 2: "WELCOME", 3: "PING", 4: "PONG", 5: "SUBMIT", 6: "ACCEPTED",
              7: "PROGRESS", 8: "RESULT", 9: "ERROR", 10: "CANCEL", 11: "STATUS",
              12: "STATUS_REPLY", 13: "DEVICES", 14: "DEVICES_REPLY", 15: "JOBS",
              16: "JOBS_REPLY", 17: "MODEL", 18: "MODEL_REPLY", 19: "RANKS",
              20: "RANKS_REPLY"}

# Error codes (fixed forever; new ones are appended).
OK, EINVAL, ENOMEM, ECANCELED, ELIMIT, EDTYPE, ESYS, EBACKEND, EINTERNAL, EPROTO, \
    EVERSION, ETYPE, EBUSY, EPERM, EWORKER = 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, \
    -10, -11, -12, -13, -14
ERROR_NAMES = {0: "OK", -1: "EINVAL", -2: "ENOMEM", -3: "ECANCELED", -4: "ELIMIT",
               -5: "EDTYPE", -6: "ESYS", -7: "EBACKEND", -8: "EINTERNAL", -9: "EPROTO",
               -10: "EVERSION", -11: "ETYPE", -12: "EBUSY", -13: "EPERM", -14: "EWORKER"}

# Jobs, backends, transports, dtypes, modes, array places.
JOB_PI, JOB_SORT, JOB_COMPARE_PI, JOB_COMPARE_SORT = 1, 2, 3, 4
BACKENDS = {"serial": 1, "native": 2, "locked": 3, "opencl": 4, "process": 5,
            "hybrid": 6}
BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}
BACKEND_MASK = 0x7E
TRANSPORTS = {"pipe": 1, "shm": 2}
TRANSPORT_NAMES = {0: None, 1: "pipe", 2: "shm"}
TRANSPORT_MASK = 0x6
DTYPES = {"i32": (1, 4), "u32": (2, 4), "i64": (3, 8), "u64": (4, 8), "f32": (5, 4),
          "f64": (6, 8)}                      # name -> (wire value, element size)
DTYPE_NAMES = {v[0]: k for k, v in DTYPES.items()}
DTYPE_SIZES = {v[0]: v[1] for v in DTYPES.values()}
MODES = {"split": 1, "replicate": 2}
MODE_NAMES = {0: None, 1: "split", 2: "replicate"}
ARRAY_NONE, ARRAY_INLINE, ARRAY_MEMFD = 0, 1, 2
DEVICE_DEFAULT = 0xFFFF
ROW_FLAG_NOGIL, ROW_FLAG_POCL_CPU, ROW_FLAG_GPU = 0x1, 0x2, 0x4
ROW_FLAG_AUTO, ROW_FLAG_EXPLORE = 0x8, 0x10    # the daemon chose the backend (and explored)
ROW_FLAG_SHARED_CORES, ROW_FLAG_NO_GAIN = 0x20, 0x40  # hybrid: CPU devices left out; no split
ROW_FLAG_WHOLE = 0x80                          # hybrid: a split the pool sorted whole
BACKEND_AUTO = 0xFF                            # SUBMIT only: the daemon chooses
RANKS_ALL = 0xFFFF                             # SUBMIT ranks: every rank of an MPI job
DEVICE_FLAG_USABLE, DEVICE_FLAG_POCL_CPU = 0x1, 0x2


class CodecError(Exception):
    """A frame or message that breaks the spec; ``code`` is the protocol's answer to it."""

    def __init__(self, code, sentence):
        super().__init__(sentence)
        self.code = code
        self.sentence = sentence


def align8(n):
    return (n + 7) & ~7


# --------------------------------------------------------------------- frames

def encode_header(mtype, length, request, flags=0, version=VERSION):
    return HEADER.pack(MAGIC, version, mtype, flags, length, request)


def decode_header(data, max_payload):
    """(type, flags, length, request) of a 24-byte header, checked as the spec's table says."""
    magic, version, mtype, flags, length, request = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CodecError(EPROTO, "bad magic %r" % bytes(magic))
    if flags & ~F_FDS:
        raise CodecError(EPROTO, "unknown flag bits 0x%x" % (flags & ~F_FDS))
    if version != VERSION:
        raise CodecError(EVERSION, "frame version %d (this client speaks 1)" % version)
    if length > max_payload:
        raise CodecError(ELIMIT, "payload of %d bytes, above the maximum %d"
                         % (length, max_payload))
    return mtype, flags, length, request


class FrameReader:
    """Splits a received byte stream into frames and matches fds to them by range.

    ``feed(data, fds)`` takes the bytes and fds of one receive and returns the frames it
    completed as ``(type, flags, request, payload, fds)``.  The fds of one receive belong to
    the frame that says F_FDS and whose first byte is within that receive's bytes
    (docs/protocol.md, Transport).  Fds whose receive holds no such frame start, or an F_FDS
    frame without fds, break the stream: CodecError EPROTO, and the fds nobody took are in
    ``.orphans`` for the caller to close.
    """

    def __init__(self, max_payload=MAX_PAYLOAD_BEFORE_WELCOME):
        self.max_payload = max_payload
        self._buf = bytearray()
        self._base = 0             # stream offset of _buf[0]
        self._header = None        # (type, flags, length, request) of the frame being read
        self._fds = []             # fds matched to the frame being read
        self._fdsets = []          # [start, end, fds] of receives whose fds are not taken
        self.orphans = []

    def _fail(self, sentence):
        self.orphans = [fd for s in self._fdsets for fd in s[2]] + self._fds
        self._fdsets, self._fds = [], []
        raise CodecError(EPROTO, sentence)

    def _take_fds(self, frame_start):
        for i, (start, end, fds) in enumerate(self._fdsets):
            if start <= frame_start < end:
                del self._fdsets[i]
                if len(fds) > MAX_FDS:
                    self._fds = fds
                    self._fail("%d fds with one frame (at most %d)" % (len(fds), MAX_FDS))
                return fds
        self._fail("a frame says F_FDS but no fds came with its first byte")

    def feed(self, data, fds=()):
        start = self._base + len(self._buf)
        self._buf += data
        if fds:
            self._fdsets.append([start, start + len(data), list(fds)])
        frames = []
        while True:
            if self._header is None:
                if len(self._buf) < HEADER_SIZE:
                    break
                self._header = decode_header(self._buf, self.max_payload)
                if self._header[1] & F_FDS:
                    self._fds = self._take_fds(self._base)
                del self._buf[:HEADER_SIZE]
                self._base += HEADER_SIZE
            mtype, flags, length, request = self._header
            if len(self._buf) < length:
                break
            payload = bytes(self._buf[:length])
            del self._buf[:length]
            self._base += length
            frames.append((mtype, flags, request, payload, self._fds))
            self._header, self._fds = None, []
        # A receive's fds are orphans once every frame starting in its bytes has been read.
        next_start = self._base + (self._header[2] if self._header else 0)
        if any(end <= next_start for _, end, _ in self._fdsets):
            self._fail("fds came with bytes in which no F_FDS frame starts")
        return frames


# ------------------------------------------------------------------- messages
#
# One table per message type: (field, struct format, offset, body size that introduced it).
# A field whose "since" is above the received body_size reads as 0 (docs/protocol.md,
# Messages: common rules).

class Spec:
    def __init__(self, size, fields, minimum=None):
        self.size = size                         # encoder size
        self.minimum = minimum or size           # decoder minimum
        self.fields = [(f[0], f[1], f[2], f[3] if len(f) > 3 else self.minimum)
                       for f in fields]


SPECS = {
    HELLO: Spec(16, [("min_version", "H", 4), ("max_version", "H", 6), ("features", "I", 8),
                     ("name_len", "I", 12)]),
    WELCOME: Spec(48, [("version", "H", 4), ("features", "I", 8), ("max_payload", "I", 12),
                       ("max_inline_bytes", "I", 16), ("max_jobs_per_client", "I", 20),
                       ("max_samples", "Q", 24), ("max_sort_elements", "Q", 32),
                       ("server_len", "I", 40)]),
    PING: Spec(16, [("nonce", "Q", 8)]),
    PONG: Spec(16, [("nonce", "Q", 8)]),
    SUBMIT: Spec(72, [("job", "H", 4), ("backend", "H", 6), ("device", "H", 8),
                      ("mode", "H", 10), ("nogil", "H", 12), ("dtype", "H", 14),
                      ("threads", "I", 16), ("repeat", "I", 20),
                      ("switch_interval_us", "I", 24), ("array", "I", 28), ("n", "Q", 32),
                      ("seed", "Q", 40), ("backends", "I", 48), ("nthreads_list", "I", 52),
                      ("transport", "H", 56, 64), ("warmup", "H", 58, 64),
                      ("transports", "I", 60, 64), ("ranks", "H", 64, 72)], minimum=56),
    ACCEPTED: Spec(32, [("queue_position", "I", 4), ("job_id", "Q", 8),
                        ("nrows", "H", 16, 32), ("threads", "I", 20, 32),
                        ("repeat", "I", 24, 32), ("warmup", "I", 28, 32)], minimum=16),
    PROGRESS: Spec(32, [("row", "I", 4), ("job_id", "Q", 8), ("done", "Q", 16),
                        ("total", "Q", 24)]),
    RESULT: Spec(32, [("job", "H", 4), ("nrows", "H", 6), ("row_size", "I", 8),
                      ("array_bytes", "I", 12), ("job_id", "Q", 16),
                      ("nrank_rows", "I", 24, 32), ("rank_row_size", "I", 28, 32)],
                 minimum=24),
    ERROR: Spec(24, [("code", "i", 4), ("job_id", "Q", 8), ("message_len", "I", 16)]),
    CANCEL: Spec(16, [("job_id", "Q", 8)]),
    STATUS: Spec(8, []),
    DEVICES: Spec(8, []),
    STATUS_REPLY: Spec(168, [("clients", "I", 4), ("uptime_ns", "Q", 8),
                             ("jobs_queued", "Q", 16), ("jobs_running", "Q", 24),
                             ("jobs_done", "Q", 32), ("jobs_failed", "Q", 40),
                             ("jobs_cancelled", "Q", 48), ("devices", "I", 56),
                             ("devices_usable", "I", 60), ("version_len", "I", 128)],
                       minimum=136),
    DEVICES_REPLY: Spec(32, [("ndevices", "I", 4), ("record_size", "I", 8),
                             ("cpu_online", "I", 12), ("native_threads", "I", 16),
                             ("locked_threads", "I", 20), ("switch_interval_us", "I", 24),
                             ("process_workers", "I", 28)]),
    JOBS: Spec(16, [("flags", "I", 4)]),
    MODEL: Spec(8, []),
    MODEL_REPLY: Spec(32, [("ncells", "I", 4), ("record_size", "I", 8), ("total", "I", 12),
                           ("trust", "I", 16), ("ring", "I", 20)]),
    JOBS_REPLY: Spec(32, [("njobs", "I", 4), ("record_size", "I", 8), ("flags", "I", 12),
                          ("others_queued", "I", 16), ("others_running", "I", 20)]),
    RANKS: Spec(8, [("flags", "I", 4)]),
    RANKS_REPLY: Spec(32, [("nranks", "I", 4), ("rank_size", "I", 8),
                           ("device_size", "I", 12), ("rank", "I", 16), ("size", "I", 20),
                           ("flags", "I", 24), ("ndevices", "I", 28)]),
}

# Warm-up runs a SUBMIT may ask for, per row.
WARMUP_MAX = 100

# A RESULT row: 264 bytes written, 128 the least a reader takes.
ROW_SIZE, ROW_MIN = 264, 128
ROW_FIELDS = [("backend", "H", 0, 0), ("device", "H", 2, 0), ("mode", "H", 4, 0),
              ("flags", "H", 6, 0), ("threads", "I", 8, 0), ("copies", "I", 12, 0),
              ("n", "Q", 16, 0), ("hits", "Q", 24, 0), ("estimate", "d", 32, 0),
              ("std_error", "d", 40, 0), ("median_ns", "Q", 48, 0), ("min_ns", "Q", 56, 0),
              ("max_ns", "Q", 64, 0), ("lock_handoffs", "Q", 72, 0),
              ("lock_wait_ns", "Q", 80, 0), ("lock_hold_ns", "Q", 88, 0),
              ("h2d_ns", "Q", 96, 0), ("kernel_ns", "Q", 104, 0), ("d2h_ns", "Q", 112, 0),
              ("launches", "I", 120, 0), ("repeat", "I", 124, 0),
              ("bytes_moved", "Q", 128, 160), ("startup_ns", "Q", 136, 160),
              ("merge_ns", "Q", 144, 160), ("transport", "H", 152, 160),
              ("workers_started", "I", 156, 160),
              ("mean_ns", "Q", 160, 200), ("stddev_ns", "Q", 168, 200),
              ("q1_ns", "Q", 176, 200), ("q3_ns", "Q", 184, 200),
              ("warmup_ns", "Q", 192, 200),
              ("predicted_ns", "Q", 200, 216), ("ranks", "I", 208, 216),
              ("passes", "I", 212, 216),
              ("cpu_items", "Q", 216, 264), ("cpu_busy_ns", "Q", 224, 264),
              ("dev_busy_ns", "Q", 232, 264), ("cpu_chunks", "I", 240, 264),
              ("dev_chunks", "I", 244, 264), ("balance_ppm", "I", 248, 264),
              ("devices_used", "I", 252, 264), ("overlap_ns", "Q", 256, 264)]

# A DEVICES_REPLY record: 416 bytes written, 352 the least a reader takes.
RECORD_SIZE, RECORD_MIN = 416, 352
RECORD_FIELDS = [("index", "I", 0, 0), ("type", "H", 4, 0), ("flags", "H", 6, 0),
                 ("compute_units", "I", 8, 0), ("global_mem", "Q", 16, 0),
                 ("max_alloc", "Q", 24, 0), ("name", "96s", 32, 0), ("vendor", "64s", 128, 0),
                 ("driver", "32s", 192, 0), ("problem", "128s", 224, 0),
                 ("platform", "64s", 352, 416)]


# A MODEL_REPLY cell: 40 bytes.
CELL_SIZE = 40
CELL_FIELDS = [("job", "H", 0, 0), ("dtype", "H", 2, 0), ("backend", "H", 4, 0),
               ("transport", "H", 6, 0), ("device", "I", 8, 0), ("threads", "I", 12, 0),
               ("log2n", "I", 16, 0), ("samples", "I", 20, 0), ("median_ns", "Q", 24, 0),
               ("flags", "I", 32, 0)]

# A JOBS_REPLY record: 88 bytes.
JOB_RECORD_SIZE = 88
JOB_RECORD_FIELDS = [("job_id", "Q", 0, 0), ("uid", "I", 8, 0), ("job", "H", 12, 0),
                     ("state", "H", 14, 0), ("backend", "H", 16, 0), ("device", "H", 18, 0),
                     ("dtype", "H", 20, 0), ("nrows", "H", 22, 0), ("threads", "I", 24, 0),
                     ("row", "I", 28, 0), ("n", "Q", 32, 0), ("queued_ns", "Q", 40, 0),
                     ("running_ns", "Q", 48, 0), ("done", "Q", 56, 0), ("total", "Q", 64, 0),
                     ("predicted_ns", "Q", 72, 0), ("wait_ns", "Q", 80, 0)]


# A RANKS_REPLY rank record: 144 bytes (its devices follow all the rank records, in order).
# A RESULT's rank record: one MPI rank's part of a row that spanned ranks.
RANK_ROW_SIZE, MAX_RANK_ROWS = 48, 64
RANK_ROW_FIELDS = [("rank", "I", 0, 0), ("row", "I", 4, 0), ("share", "Q", 8, 0),
                   ("compute_ns", "Q", 16, 0), ("exchange_ns", "Q", 24, 0),
                   ("io_ns", "Q", 32, 0), ("bytes_sent", "Q", 40, 0)]

RANK_SIZE = 144
RANK_FIELDS = [("rank", "I", 0, 0), ("ndevices", "I", 4, 0), ("cpu_online", "I", 8, 0),
               ("native_threads", "I", 12, 0), ("locked_threads", "I", 16, 0),
               ("process_workers", "I", 20, 0), ("devices_usable", "I", 24, 0),
               ("clients", "I", 28, 0), ("uptime_ns", "Q", 32, 0), ("jobs_queued", "Q", 40, 0),
               ("jobs_running", "Q", 48, 0), ("jobs_done", "Q", 56, 0),
               ("jobs_failed", "Q", 64, 0), ("jobs_cancelled", "Q", 72, 0),
               ("host", "64s", 80, 0)]


def _get(fields, data, base, size, into):
    for name, fmt, off, since in fields:
        if size >= since:
            (v,) = struct.unpack_from("<" + fmt, data, base + off)
            if fmt.endswith("s"):
                v = v.split(b"\0", 1)[0].decode("utf-8", "replace")
        else:
            v = "" if fmt.endswith("s") else 0
        into[name] = v
    return into


def _put(fields, buf, base, size, values):
    for name, fmt, off, since in fields:
        if size >= since:
            v = values.get(name, b"" if fmt.endswith("s") else 0)
            if fmt.endswith("s") and isinstance(v, str):
                v = v.encode("utf-8")
            try:
                struct.pack_into("<" + fmt, buf, base + off, v)
            except struct.error as e:
                raise ValueError("field %s = %r does not fit %s: %s" % (name, v, fmt, e))


class _Items:
    """Walks a payload's variable items: each starts at the next multiple of 8."""

    def __init__(self, payload, body_size):
        self.payload, self.pos = payload, align8(body_size)
        self.end = align8(body_size)        # end of the last item read

    def take(self, nbytes, what):
        if nbytes == 0:                     # an empty item occupies no bytes, no padding
            return memoryview(b"")
        start = self.pos
        if start + nbytes > len(self.payload):
            raise CodecError(EPROTO, "%s of %d bytes runs past the payload (%d bytes)"
                             % (what, nbytes, len(self.payload)))
        self.end = start + nbytes
        self.pos = align8(self.end)
        return memoryview(self.payload)[start:self.end]


def _limit(value, limit, what):
    if value > limit:
        raise CodecError(ELIMIT, "%s %d is above the limit %d" % (what, value, limit))


def decode(mtype, payload):
    """The message of one frame's payload, checked as docs/protocol.md says."""
    spec = SPECS.get(mtype)
    if spec is None:
        raise CodecError(ETYPE, "unknown message type %d" % mtype)
    if len(payload) < 4:
        raise CodecError(EPROTO, "%s payload of %d bytes has no body_size"
                         % (TYPE_NAMES[mtype], len(payload)))
    (body_size,) = struct.unpack_from("<I", payload)
    if body_size < spec.minimum or body_size > len(payload):
        raise CodecError(EPROTO, "%s body_size %d (at least %d, at most the payload's %d)"
                         % (TYPE_NAMES[mtype], body_size, spec.minimum, len(payload)))
    m = _get(spec.fields, payload, 0, body_size, {"type": mtype, "body_size": body_size})
    items = _Items(payload, body_size)
    _VARIABLE.get(mtype, lambda m, it: None)(m, items)
    # every layout this version knows (the first, each appended field's, the current) is exact
    exact = body_size in {spec.size, spec.minimum} | {f[3] for f in spec.fields}
    if exact and len(payload) != (items.end if mtype in _VARIABLE else body_size):
        raise CodecError(EPROTO, "%s has %d bytes past its last item"
                         % (TYPE_NAMES[mtype], len(payload) - items.end))
    return m


def _var_hello(m, it):
    _limit(m["name_len"], MAX_NAME, "name_len")
    m["name"] = bytes(it.take(m["name_len"], "name"))


def _var_welcome(m, it):
    _limit(m["server_len"], MAX_NAME, "server_len")
    m["server"] = bytes(it.take(m["server_len"], "server"))


def _var_error(m, it):
    _limit(m["message_len"], MAX_SENTENCE, "message_len")
    m["message"] = bytes(it.take(m["message_len"], "message"))


def _var_submit(m, it):
    count = m["nthreads_list"]
    _limit(count, MAX_THREAD_COUNTS, "nthreads_list")
    m["threads_list"] = list(struct.unpack("<%dI" % count,
                                           it.take(4 * count, "threads_list")))
    m["array_data"] = None
    if m["array"] == ARRAY_INLINE:
        size = DTYPE_SIZES.get(m["dtype"])
        if size is None:
            raise CodecError(EDTYPE, "dtype %d is not one of 1..6" % m["dtype"])
        left = len(it.payload) - it.pos
        if m["n"] > left // size + 1:    # bound n before multiplying
            raise CodecError(ELIMIT, "inline array of %d elements cannot fit a frame" % m["n"])
        m["array_data"] = it.take(m["n"] * size, "array")


def _var_result(m, it):
    _limit(m["nrows"], MAX_ROWS, "nrows")
    if m["row_size"] < ROW_MIN:
        raise CodecError(EPROTO, "row_size %d is below 128" % m["row_size"])
    rows = it.take(m["nrows"] * m["row_size"], "rows")
    m["rows"] = [_get(ROW_FIELDS, rows, i * m["row_size"], m["row_size"], {})
                 for i in range(m["nrows"])]
    # the rank records (from bodies of 32; an older sender's RESULT has none), then the array
    count, size = m["nrank_rows"], m["rank_row_size"]
    _limit(count, MAX_RANK_ROWS, "nrank_rows")
    if count and size < RANK_ROW_SIZE:
        raise CodecError(EPROTO, "rank_row_size %d is below %d" % (size, RANK_ROW_SIZE))
    recs = it.take(count * size, "rank records")
    m["rank_rows"] = [_get(RANK_ROW_FIELDS, recs, i * size, size, {}) for i in range(count)]
    m["array_data"] = it.take(m["array_bytes"], "array")


def _var_status_reply(m, it):
    body, payload = m["body_size"], it.payload
    _limit(m["version_len"], MAX_NAME, "version_len")
    pairs = (body - 136) // 16
    jobs = list(struct.unpack_from("<4Q", payload, 64))
    busy = list(struct.unpack_from("<4Q", payload, 96))
    for i in range(pairs):
        j, b = struct.unpack_from("<QQ", payload, 136 + 16 * i)
        jobs.append(j)
        busy.append(b)
    while len(jobs) < len(BACKENDS):     # backends the sender's body did not reach: 0
        jobs.append(0)
        busy.append(0)
    m["backend_jobs"], m["backend_busy_ns"] = jobs, busy
    m["version"] = bytes(it.take(m["version_len"], "version"))


def _records(m, it, count, limit, least, fields, name):
    """A list of fixed-size records after the body: ``m[count]`` of them, each
    ``m["record_size"]`` bytes apart (at least ``least``), into ``m[name]``."""
    _limit(m[count], limit, count)
    if m["record_size"] < least:
        raise CodecError(EPROTO, "record_size %d is below %d" % (m["record_size"], least))
    recs = it.take(m[count] * m["record_size"], name)
    m[name] = [_get(fields, recs, i * m["record_size"], m["record_size"], {})
               for i in range(m[count])]


def _var_devices_reply(m, it):
    _records(m, it, "ndevices", MAX_DEVICES, RECORD_MIN, RECORD_FIELDS, "devices")


def _var_jobs_reply(m, it):
    _records(m, it, "njobs", MAX_JOB_RECORDS, JOB_RECORD_SIZE, JOB_RECORD_FIELDS, "jobs")


def _var_model_reply(m, it):
    _records(m, it, "ncells", MAX_CELLS, CELL_SIZE, CELL_FIELDS, "cells")


def _var_ranks_reply(m, it):
    """Two record lists, each with its own size: the ranks, then every rank's devices."""
    _limit(m["nranks"], MAX_RANKS, "nranks")
    _limit(m["ndevices"], MAX_RANK_DEVICES, "ndevices")
    for key, least in (("rank_size", RANK_SIZE), ("device_size", RECORD_MIN)):
        if m[key] < least:
            raise CodecError(EPROTO, "%s %d is below %d" % (key, m[key], least))
    for count, size, fields, name in (("nranks", "rank_size", RANK_FIELDS, "ranks"),
                                      ("ndevices", "device_size", RECORD_FIELDS, "devices")):
        recs = it.take(m[count] * m[size], name)
        m[name] = [_get(fields, recs, i * m[size], m[size], {}) for i in range(m[count])]


_VARIABLE = {HELLO: _var_hello, WELCOME: _var_welcome, ERROR: _var_error,
             SUBMIT: _var_submit, RESULT: _var_result, STATUS_REPLY: _var_status_reply,
             DEVICES_REPLY: _var_devices_reply, JOBS_REPLY: _var_jobs_reply,
             MODEL_REPLY: _var_model_reply, RANKS_REPLY: _var_ranks_reply}


def encode(m, body_size=None, row_size=ROW_SIZE, record_size=RECORD_SIZE):
    """The payload of message ``m`` (a dict as :func:`decode` returns).

    A client writes the encoder size; ``body_size``, ``row_size`` and ``record_size`` only
    exist so tests can build the first layouts a decoder must still read.
    """
    mtype = m["type"]
    spec = SPECS[mtype]
    size = spec.size if body_size is None else body_size
    items = _items_of(m, size, row_size, record_size)
    m = dict(m)
    _fill_counts(m, items, row_size, record_size)
    buf = bytearray(align8(size))
    struct.pack_into("<I", buf, 0, size)
    _put(spec.fields, buf, 0, size, m)
    if mtype == STATUS_REPLY:
        _put_status_counters(buf, size, m)
    del buf[size:]
    for item in items:
        if not len(item):                   # an empty item: no bytes, no padding
            continue
        buf += bytes(align8(len(buf)) - len(buf))
        buf += item
    return bytes(buf)


def _fill_counts(m, items, row_size, record_size):
    """Sets the fields that count a message's items from the items themselves."""
    t = m["type"]
    key = {HELLO: "name_len", WELCOME: "server_len", ERROR: "message_len",
           STATUS_REPLY: "version_len"}.get(t)
    if key:
        m[key] = len(items[0])
    elif t == SUBMIT:
        m["nthreads_list"] = len(items[0]) // 4
    elif t == RESULT:
        m.update(nrows=len(m.get("rows", [])), row_size=row_size,
                 nrank_rows=len(m.get("rank_rows", [])), rank_row_size=RANK_ROW_SIZE,
                 array_bytes=len(items[2]))
    elif t == DEVICES_REPLY:
        m.update(ndevices=len(m.get("devices", [])), record_size=record_size)
    elif t == JOBS_REPLY:
        m.update(njobs=len(m.get("jobs", [])), record_size=JOB_RECORD_SIZE)
    elif t == MODEL_REPLY:
        m.update(ncells=len(m.get("cells", [])), record_size=CELL_SIZE)
    elif t == RANKS_REPLY:
        m.update(nranks=len(m.get("ranks", [])), rank_size=RANK_SIZE,
                 ndevices=len(m.get("devices", [])), device_size=record_size)


def _bytes(v):
    return v.encode("utf-8") if isinstance(v, str) else bytes(v or b"")


def _items_of(m, size, row_size, record_size):
    t = m["type"]
    if t == HELLO:
        return [_bytes(m.get("name"))]
    if t == WELCOME:
        return [_bytes(m.get("server"))]
    if t == ERROR:
        return [_bytes(m.get("message"))]
    if t == STATUS_REPLY:
        return [_bytes(m.get("version"))]
    if t == SUBMIT:
        tl = list(m.get("threads_list") or [])
        if len(tl) != m.get("nthreads_list", len(tl)):
            raise ValueError("nthreads_list %d but %d thread counts"
                             % (m["nthreads_list"], len(tl)))
        items = [struct.pack("<%dI" % len(tl), *tl)]
        if m.get("array") == ARRAY_INLINE:
            items.append(m["array_data"])
        return items
    if t == RESULT:
        rows = bytearray(len(m.get("rows", [])) * row_size)
        for i, r in enumerate(m.get("rows", [])):
            _put(ROW_FIELDS, rows, i * row_size, row_size, r)
        ranks = bytearray(len(m.get("rank_rows", [])) * RANK_ROW_SIZE)
        for i, r in enumerate(m.get("rank_rows", [])):
            _put(RANK_ROW_FIELDS, ranks, i * RANK_ROW_SIZE, RANK_ROW_SIZE, r)
        return [bytes(rows), bytes(ranks), m.get("array_data") or b""]
    if t == DEVICES_REPLY:
        recs = bytearray(len(m.get("devices", [])) * record_size)
        for i, d in enumerate(m.get("devices", [])):
            _put(RECORD_FIELDS, recs, i * record_size, record_size, d)
        return [bytes(recs)]
    if t == JOBS_REPLY:
        recs = bytearray(len(m.get("jobs", [])) * JOB_RECORD_SIZE)
        for i, j in enumerate(m.get("jobs", [])):
            _put(JOB_RECORD_FIELDS, recs, i * JOB_RECORD_SIZE, JOB_RECORD_SIZE, j)
        return [bytes(recs)]
    if t == RANKS_REPLY:
        ranks = bytearray(len(m.get("ranks", [])) * RANK_SIZE)
        for i, r in enumerate(m.get("ranks", [])):
            _put(RANK_FIELDS, ranks, i * RANK_SIZE, RANK_SIZE, r)
        devs = bytearray(len(m.get("devices", [])) * record_size)
        for i, d in enumerate(m.get("devices", [])):
            _put(RECORD_FIELDS, devs, i * record_size, record_size, d)
        return [bytes(ranks), bytes(devs)]
    if t == MODEL_REPLY:
        recs = bytearray(len(m.get("cells", [])) * CELL_SIZE)
        for i, c in enumerate(m.get("cells", [])):
            _put(CELL_FIELDS, recs, i * CELL_SIZE, CELL_SIZE, c)
        return [bytes(recs)]
    return []


def _put_status_counters(buf, size, m):
    jobs = list(m.get("backend_jobs", [])) + [0] * len(BACKENDS)
    busy = list(m.get("backend_busy_ns", [])) + [0] * len(BACKENDS)
    struct.pack_into("<4Q", buf, 64, *jobs[:4])
    struct.pack_into("<4Q", buf, 96, *busy[:4])
    for i in range((size - 136) // 16):
        struct.pack_into("<QQ", buf, 136 + 16 * i, jobs[4 + i], busy[4 + i])


def frame(m, request, fds=False, **kw):
    """Header and payload of message ``m`` as one bytes object."""
    payload = encode(m, **kw)
    return encode_header(m["type"], len(payload), request, F_FDS if fds else 0) + payload
