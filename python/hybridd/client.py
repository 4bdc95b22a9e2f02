"""The connection to hybridd: HELLO, a reader thread, jobs as futures.

One socket per Client.  Any thread may call any method: sends are serialised by a lock, and
one reader thread receives every frame and hands it to the call it answers (matched by
request id, as docs/protocol.md's conversation says).  A job is a
``concurrent.futures.Future`` (:class:`Job`) that the reader completes with its RESULT or
ERROR; the blocking methods (``pi``, ``sort``, ``compare``) wait on one and cancel the job
when the wait is interrupted (Ctrl-C).
"""
import array as _array
import concurrent.futures
import os
import socket as _socket
import threading
import time
import warnings

from . import errors as E
from . import protocol as P
from ._jobs import JobMethods

CLIENT_NAME = "hybridd-python"
RECV_BYTES = 1 << 18


def default_socket():
    """The socket hybridctl would use (client/hybridctl.c, default_socket): $HYBRIDD_SOCKET;
    else, for a user other than root, the daemon's per-user default when a socket is there
    ($XDG_RUNTIME_DIR/hybridd.sock, or /tmp/hybridd-UID/hybridd.sock without a usable
    XDG_RUNTIME_DIR); else the system daemon's /run/hybridd/hybridd.sock."""
    env = os.environ.get("HYBRIDD_SOCKET")
    if env:
        return env
    if os.geteuid() != 0:
        xdg = os.environ.get("XDG_RUNTIME_DIR", "")
        # sun_path holds 108 bytes with the NUL, as in the C client.
        if xdg.startswith("/") and len(xdg.encode()) + len("/hybridd.sock") + 1 <= 108:
            path = xdg + "/hybridd.sock"
        else:
            path = "/tmp/hybridd-%d/hybridd.sock" % os.geteuid()
        try:
            os.stat(path)
            return path
        except OSError:
            pass
    return "/run/hybridd/hybridd.sock"


def connect(socket=None, timeout=30.0, name=CLIENT_NAME):
    """A :class:`Client` connected to the daemon on ``socket`` (default: hybridctl's search,
    :func:`default_socket`), its HELLO answered.  Raises DaemonNotRunning when nothing
    listens there, and the daemon's ERROR (VersionError, AccessError, BusyError...) when it
    refuses the HELLO."""
    return Client(socket, timeout=timeout, name=name)


class _Reply(concurrent.futures.Future):
    """A PING, STATUS or DEVICES waiting for its one answer of type ``want``."""

    def __init__(self, want):
        super().__init__()
        self.set_running_or_notify_cancel()
        self.want = want


class Client(JobMethods):
    """A connection to hybridd; see :func:`connect`.  Use it as a context manager, or call
    :meth:`close`.  ``welcome`` holds the daemon's WELCOME: its limits and its name."""

    def __init__(self, socket=None, timeout=30.0, name=CLIENT_NAME):
        self.path = socket if socket is not None else default_socket()
        self.timeout = timeout
        self._lock = threading.Lock()       # pending, the request counter, closed
        self._send_lock = threading.Lock()  # one frame on the stream at a time
        self._pending = {}
        self._next_request = 1
        self._closed = None                 # the exception that ended the connection
        self.bytes_copied = 0               # array bytes this client copied (memfd in/out)
        self._reader = P.FrameReader()
        self._sock = self._open(self.path, timeout)
        try:
            self.welcome = self._hello(name, timeout)
        except BaseException:
            self._sock.close()
            raise
        self._reader.max_payload = self.welcome["max_payload"]
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._read_loop, name="hybridd-reader",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ connection

    @staticmethod
    def _open(path, timeout):
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError("socket must be a path, not %s" % type(path).__name__)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            raise E.DaemonNotRunning("cannot reach hybridd at %s: %s (is it running?)"
                                     % (path, e.strerror)) from None
        except OSError as e:
            sock.close()
            raise E.DaemonConnectionError("cannot reach hybridd at %s: %s"
                                          % (path, e.strerror or e)) from None
        return sock

    def _hello(self, name, timeout):
        """Sends HELLO and reads frames until WELCOME (or ERROR) on this thread: the reader
        thread starts only once the limits are known."""
        name = name.encode("utf-8")[:P.MAX_NAME]
        self._request()                      # request 1
        self._send_frame(P.frame({"type": P.HELLO, "min_version": P.VERSION,
                                  "max_version": P.VERSION,
                                  "features": P.FEATURE_MEMFD | P.FEATURE_PROGRESS |
                                  P.FEATURE_KEEP_MAP,
                                  "name": name}, 1))
        deadline = time.monotonic() + timeout
        while True:
            for mtype, _flags, _req, payload, fds in self._receive(deadline):
                _close_fds(fds)
                m = self._decode(mtype, payload)
                if mtype == P.ERROR:
                    raise E.from_code(m["code"], _text(m["message"]))
                if mtype != P.WELCOME:
                    raise E.ProtocolError("hybridd answered HELLO with %s, not WELCOME"
                                          % P.TYPE_NAMES.get(mtype, mtype))
                if m["version"] != P.VERSION:
                    raise E.VersionError("hybridd chose protocol version %d; this client "
                                         "speaks 1" % m["version"])
                m["server"] = _text(m["server"])
                return m

    def _receive(self, deadline=None):
        """The frames of one receive (blocking).  Fds come with MSG_CMSG_CLOEXEC so a fork
        in another thread cannot inherit them; a truncated control message breaks the stream
        (fds were lost), and its fds are closed."""
        if deadline is not None:
            self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            data, anc, flags, _ = self._sock.recvmsg(
                RECV_BYTES, _socket.CMSG_SPACE(P.MAX_FDS * 4), _socket.MSG_CMSG_CLOEXEC)
        except _socket.timeout:
            raise E.DaemonConnectionError("hybridd did not answer within %.0f s"
                                          % self.timeout) from None
        except OSError as e:
            raise E.ConnectionLost("connection to hybridd failed: %s" % e) from None
        fds = _fds_of(anc)
        if flags & _socket.MSG_CTRUNC:
            _close_fds(fds)
            raise E.ProtocolError("fds from hybridd were truncated (MSG_CTRUNC)")
        if not data:
            _close_fds(fds)
            raise E.ConnectionLost("hybridd closed the connection")
        try:
            return self._reader.feed(data, fds)
        except P.CodecError as e:
            _close_fds(self._reader.orphans)
            raise E.from_code(e.code, "from hybridd: %s" % e.sentence) from None

    @staticmethod
    def _decode(mtype, payload):
        try:
            return P.decode(mtype, payload)
        except P.CodecError as e:
            raise E.from_code(e.code, "%s from hybridd: %s"
                              % (P.TYPE_NAMES.get(mtype, mtype), e.sentence)) from None

    def _request(self):
        with self._lock:
            if self._closed is not None:
                raise self._closed_error()
            r = self._next_request
            self._next_request += 1
            return r

    def _send_frame(self, data, fds=()):
        """Sends one frame; its fds ride on the sendmsg that carries its first byte."""
        with self._send_lock:
            try:
                sent = _socket.send_fds(self._sock, [data], list(fds)) if fds else 0
                self._sock.sendall(memoryview(data)[sent:])
            except OSError as e:
                raise E.ConnectionLost("cannot send to hybridd: %s" % e) from None

    def _closed_error(self):
        """A fresh exception like the one that ended the connection (each raise gets its
        own traceback)."""
        return _again(self._closed)

    def close(self):
        """Closes the connection; jobs still running are cancelled by the daemon and their
        futures fail with ConnectionLost."""
        with self._lock:
            if self._closed is None:
                self._closed = E.ConnectionLost("the client was closed")
            self._idle_memfd = None         # the staging memfd kept for plain arrays
        try:
            self._sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._sock.close()

    def __repr__(self):
        state = "closed" if self._closed is not None else "connected"
        return "<hybridd.Client %s to %s (%s)>" % (state, self.path,
                                                   self.welcome.get("server", "?"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ the reader

    def _read_loop(self):
        try:
            while True:
                for mtype, _flags, request, payload, fds in self._receive():
                    _close_fds(fds)          # hybridd sends no fds: none is expected
                    self._dispatch(mtype, request, payload)
        except E.Error as e:
            err = e
        except Exception as e:                # a bug here must still end every wait
            err = E.ConnectionLost("the reader failed: %r" % e)
        with self._lock:
            if self._closed is None:
                self._closed = err
            pending, self._pending = self._pending, {}
            err = self._closed
        for call in pending.values():
            if not call.done():
                _complete(call, exc=_again(err))

    def _dispatch(self, mtype, request, payload):
        with self._lock:
            call = self._pending.get(request)
        if mtype not in P.SPECS:
            return                              # a newer daemon's message: not ours
        m = self._decode(mtype, payload)
        if call is None:
            if mtype == P.ERROR and request == 0:           # the daemon broke the stream
                raise E.ConnectionLost("hybridd ended the connection: %s"
                                       % _text(m["message"]), code=m["code"])
            return      # e.g. the EINVAL answering a CANCEL of a job that had just ended
        if mtype == P.ERROR:
            self._end(request, call, exc=E.from_code(m["code"], _text(m["message"]),
                                                     m["job_id"]))
        elif isinstance(call, _Reply):
            if mtype == call.want:
                self._end(request, call, value=m)
        elif mtype == P.ACCEPTED:
            self._accepted(call, m)
        elif mtype == P.PROGRESS:
            if call.progress is not None:
                try:
                    call.progress(m["done"], m["total"], m["row"])
                except Exception as e:     # the user's callback must not end the connection
                    warnings.warn("hybridd: the progress callback raised %r" % (e,),
                                  RuntimeWarning)
        elif mtype == P.RESULT:
            try:
                value = call._finish(m)
            except Exception as e:                  # decoding the job's result failed
                self._end(request, call, exc=e)
            else:
                self._end(request, call, value=value)

    def _accepted(self, job, m):
        with self._lock:
            job.job_id, job.accepted = m["job_id"], m
            cancel = job._cancel_wanted
        if cancel:
            self._cancel(job.job_id)

    def _end(self, request, call, value=None, exc=None):
        with self._lock:
            self._pending.pop(request, None)
        _complete(call, value, exc)

    # ------------------------------------------------------------ requests

    def _call(self, msg, call, fds=()):
        """Registers ``call`` under a new request id, then sends ``msg`` with it."""
        request = self._request()
        with self._lock:
            if self._closed is not None:
                raise self._closed_error()
            self._pending[request] = call
        try:
            self._send_frame(P.frame(msg, request, fds=bool(fds)), fds)
        except BaseException:
            with self._lock:
                self._pending.pop(request, None)
            raise
        return call

    def _ask(self, msg, want, timeout):
        reply = self._call(msg, _Reply(want))
        try:
            return reply.result(self.timeout if timeout is None else timeout)
        except concurrent.futures.TimeoutError:
            with self._lock:
                self._pending = {r: c for r, c in self._pending.items() if c is not reply}
            raise E.DaemonConnectionError("hybridd did not answer %s within %s s"
                                          % (P.TYPE_NAMES[msg["type"]], timeout)) from None

    def _cancel(self, job_id):
        try:
            self._send_frame(P.frame({"type": P.CANCEL, "job_id": job_id}, self._request()))
        except E.DaemonConnectionError:
            pass    # the connection is gone: the daemon cancels the job itself

    def ping(self, timeout=None):
        """Round trip of a PING, in seconds."""
        nonce = int.from_bytes(os.urandom(8), "little")
        t0 = time.perf_counter()
        m = self._ask({"type": P.PING, "nonce": nonce}, P.PONG, timeout)
        if m["nonce"] != nonce:
            raise E.ProtocolError("PONG nonce %#x does not echo the PING's %#x"
                                  % (m["nonce"], nonce))
        return time.perf_counter() - t0

    def status(self, timeout=None):
        """The daemon's STATUS_REPLY as a dict (clients, jobs_*, backend_jobs by name...)."""
        m = self._ask({"type": P.STATUS}, P.STATUS_REPLY, timeout)
        out = {k: v for k, v in m.items() if k not in ("type", "body_size", "version_len")}
        out["version"] = _text(m["version"])
        for key in ("backend_jobs", "backend_busy_ns"):
            out[key] = {P.BACKEND_NAMES.get(i + 1, str(i + 1)): v
                        for i, v in enumerate(m[key])}
        return out

    def model(self, timeout=None):
        """The daemon's performance history (MODEL_REPLY) as a dict: ``cells``, one dict per
        configuration and size bucket (job, dtype, backend, threads, transport, device,
        log2n, samples, median_ns, trusted), ``total`` (cells the daemon has; more than
        listed when they did not fit a frame), ``trust`` and ``ring``."""
        m = self._ask({"type": P.MODEL}, P.MODEL_REPLY, timeout)
        for c in m["cells"]:
            c["job"] = "pi" if c["job"] == P.JOB_PI else "sort"
            c["backend"] = P.BACKEND_NAMES.get(c["backend"])
            c["dtype"] = P.DTYPE_NAMES.get(c["dtype"])
            c["transport"] = P.TRANSPORT_NAMES.get(c["transport"])
            c["trusted"] = bool(c.pop("flags") & P.CELL_TRUSTED)
        return {k: m[k] for k in ("cells", "total", "trust", "ring")}

    def jobs(self, all=False, timeout=None):
        """The daemon's queued and running jobs (JOBS_REPLY) as a dict: ``jobs``, one dict per
        job of this user (every user's with ``all=True``, for root and the daemon's user),
        and ``others_queued``/``others_running``, the jobs not listed.  A daemon older than
        the message raises UnknownTypeError."""
        if not isinstance(all, bool):
            raise TypeError("all must be True or False, not %r" % (all,))
        m = self._ask({"type": P.JOBS, "flags": P.JOBS_ALL if all else 0}, P.JOBS_REPLY,
                      timeout)
        for j in m["jobs"]:
            j["state"] = P.JOB_STATES.get(j["state"], str(j["state"]))
            j["backend"] = P.BACKEND_NAMES.get(j["backend"])
            j["dtype"] = P.DTYPE_NAMES.get(j["dtype"])
        return {"all": bool(m["flags"] & P.JOBS_ALL), "jobs": m["jobs"],
                "others_queued": m["others_queued"], "others_running": m["others_running"]}

    def ranks(self, all=True, timeout=None):
        """Every MPI rank's node, pools, devices and counters (RANKS_REPLY) as a dict: ``mpi``
        (the daemon runs under ``hybridd --mpi``), ``rank`` (its own), ``size``, ``complete``
        (every rank is listed) and ``ranks``, one dict per rank in rank order with its
        ``devices``.  ``all=False`` asks for the answering rank alone; a daemon not under MPI
        lists itself, as rank 0 of 1.  A daemon older than the message raises
        UnknownTypeError."""
        if not isinstance(all, bool):
            raise TypeError("all must be True or False, not %r" % (all,))
        m = self._ask({"type": P.RANKS, "flags": P.RANKS_FLAG_ALL if all else 0},
                      P.RANKS_REPLY, timeout)
        at, out = 0, []
        for r in m["ranks"]:
            r = dict(r, devices=m["devices"][at:at + r["ndevices"]])
            at += r.pop("ndevices")
            for d in r["devices"]:
                d["usable"] = bool(d["flags"] & P.DEVICE_FLAG_USABLE)
            out.append(r)
        return {"mpi": bool(m["flags"] & P.RANKS_MPI), "rank": m["rank"], "size": m["size"],
                "complete": bool(m["flags"] & P.RANKS_REPLY_ALL), "ranks": out}

    def devices(self, timeout=None):
        """The daemon's DEVICES_REPLY as a dict: the CPU pools, and ``devices``, one dict per
        OpenCL device (``usable`` and ``pocl_cpu`` from its flags)."""
        m = self._ask({"type": P.DEVICES}, P.DEVICES_REPLY, timeout)
        out = {k: v for k, v in m.items()
               if k not in ("type", "body_size", "ndevices", "record_size")}
        for d in out["devices"]:
            d["usable"] = bool(d["flags"] & P.DEVICE_FLAG_USABLE)
            d["pocl_cpu"] = bool(d["flags"] & P.DEVICE_FLAG_POCL_CPU)
        return out


def _complete(call, value=None, exc=None):
    """Releases what the call held (its memfd, its progress bar), then ends it."""
    cleanup = getattr(call, "_cleanup", None)
    if cleanup:
        cleanup()
    if exc is not None:
        call.set_exception(exc)
    else:
        call.set_result(value)


def _again(e):
    if isinstance(e, E.Error):
        return type(e)(e.sentence, code=e.code, job_id=e.job_id)
    return E.ConnectionLost(str(e))


def _text(b):
    return bytes(b).decode("utf-8", "replace")


def _fds_of(ancdata):
    fds = _array.array("i")
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds)


def _close_fds(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
