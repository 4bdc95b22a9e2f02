"""Exceptions: one class per protocol error code, and the connection's own failures."""
from . import protocol as P


class Error(Exception):
    """An ERROR from the daemon (or a protocol failure found here).

    ``code`` is the protocol's negative code (``hybridd.protocol.ELIMIT`` ...), ``name`` its
    name (``"ELIMIT"``), ``sentence`` the daemon's sentence, ``job_id`` the job it ended
    (0 when it answered a frame, not a job).
    """

    code = None

    def __init__(self, sentence, code=None, job_id=0):
        if code is not None:
            self.code = code
        self.sentence = sentence
        self.job_id = job_id
        self.name = P.ERROR_NAMES.get(self.code, str(self.code))
        super().__init__("%s: %s" % (self.name, sentence) if self.code is not None
                         else sentence)


class InvalidError(Error):
    """EINVAL: a field is out of its documented range."""
    code = P.EINVAL


class OutOfMemoryError(Error):
    """ENOMEM: the daemon could not allocate what the job needs."""
    code = P.ENOMEM


class CancelledError(Error):
    """ECANCELED: the job was cancelled (by cancel(), Ctrl-C, or the daemon stopping)."""
    code = P.ECANCELED


class LimitError(Error):
    """ELIMIT: a size or count is above a limit; the request will never fit."""
    code = P.ELIMIT


class DtypeError(Error):
    """EDTYPE: unknown or unsupported dtype."""
    code = P.EDTYPE


class SystemCallError(Error):
    """ESYS: a system call failed in the daemon."""
    code = P.ESYS


class BackendError(Error):
    """EBACKEND: the backend cannot run this job here (no usable device, no process pool)."""
    code = P.EBACKEND


class InternalError(Error):
    """EINTERNAL: a bug in hybridd."""
    code = P.EINTERNAL


class ProtocolError(Error):
    """EPROTO: a malformed frame or message (on either side)."""
    code = P.EPROTO


class VersionError(Error):
    """EVERSION: no protocol version in common."""
    code = P.EVERSION


class UnknownTypeError(Error):
    """ETYPE: a message type the daemon does not know."""
    code = P.ETYPE


class BusyError(Error):
    """EBUSY: the daemon's queue or client limit is full, or it is shutting down."""
    code = P.EBUSY


class AccessError(Error):
    """EPERM: this user may not use the daemon (access.uids / access.gids)."""
    code = P.EPERM


class WorkerError(Error):
    """EWORKER: a process-backend worker died during the job; it has been replaced."""
    code = P.EWORKER


class DaemonConnectionError(Error, ConnectionError):
    """The daemon cannot be reached, or went away: no protocol code."""
    code = None


class DaemonNotRunning(DaemonConnectionError):
    """Nothing listens on the socket (it is missing, or refuses connections)."""


class ConnectionLost(DaemonConnectionError):
    """The daemon closed the connection (it stopped, or broke the stream)."""


_BY_CODE = {c.code: c for c in (InvalidError, OutOfMemoryError, CancelledError, LimitError,
                                DtypeError, SystemCallError, BackendError, InternalError,
                                ProtocolError, VersionError, UnknownTypeError, BusyError,
                                AccessError, WorkerError)}


def from_code(code, sentence, job_id=0):
    """The exception for protocol code ``code``; an unknown code gives a plain Error."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return Error(sentence, code=code, job_id=job_id)
    return cls(sentence, job_id=job_id)
