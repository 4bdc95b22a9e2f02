"""hybridd: a Python client for the hybridd daemon (docs/python.md).

    import hybridd
    with hybridd.connect() as c:
        a = hybridd.asarray(np.random.default_rng(1).random(10**7))
        row = c.sort(a, backend="native")     # sorted in place, in its memfd: no copy

The wire protocol (docs/protocol.md) is implemented in :mod:`hybridd.protocol`.
"""
from ._version import __version__
from .arrays import MemfdArray, array, asarray
from .client import Client, connect, default_socket
from ._jobs import Job
from .errors import (AccessError, BackendError, BusyError, CancelledError, ConnectionLost,
                     DaemonConnectionError, DaemonNotRunning, DtypeError, Error, InternalError,
                     InvalidError, LimitError, OutOfMemoryError, ProtocolError,
                     SystemCallError, UnknownTypeError, VersionError, WorkerError)
from .results import Comparison, PiResult, Row, SortResult

__all__ = ["__version__", "MemfdArray", "array", "asarray", "Client", "connect",
           "default_socket", "Job", "AccessError", "BackendError", "BusyError",
           "CancelledError", "ConnectionLost", "DaemonConnectionError", "DaemonNotRunning",
           "DtypeError", "Error", "InternalError", "InvalidError", "LimitError",
           "OutOfMemoryError", "ProtocolError", "SystemCallError", "UnknownTypeError",
           "VersionError", "WorkerError", "Comparison", "PiResult", "Row", "SortResult"]
