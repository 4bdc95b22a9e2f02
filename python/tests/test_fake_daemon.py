"""The client against a scripted peer on a Unix socket: what a real daemon never sends
(fds, truncated control data, a version it does not speak, a broken stream)."""
import os
import socket
import threading

import pytest

import hybridd
from hybridd import protocol as P

WELCOME = {"type": P.WELCOME, "version": 1, "features": 3, "max_payload": 1 << 20,
           "max_inline_bytes": 1 << 16, "max_jobs_per_client": 8, "max_samples": 10 ** 10,
           "max_sort_elements": 1 << 28, "server": "fake"}


class Fake:
    """Listens on a socket; for one client, reads frames and answers with ``script``."""

    def __init__(self, path, script):
        self.path, self.script = path, script
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            conn, _ = self.srv.accept()
            with conn:
                self.reader = P.FrameReader()
                self.conn = conn
                self.script(self)
        except BaseException as e:       # noqa: B902 - shown by the test
            self.error = e

    def next_frame(self):
        while True:
            data = self.conn.recv(65536)
            if not data:
                return None
            frames = self.reader.feed(data)
            if frames:
                return frames[0]

    def send(self, msg, request, fds=()):
        data = P.frame(msg, request, fds=bool(fds))
        if fds:
            socket.send_fds(self.conn, [data], list(fds))
        else:
            self.conn.sendall(data)

    def welcome(self, **kw):
        hello = self.next_frame()
        assert hello[0] == P.HELLO
        m = dict(WELCOME)
        m.update(kw)
        self.send(m, hello[2])

    def close(self):
        self.srv.close()
        self.thread.join(10)


def fds_to(target):
    """How many of this process's fds point to ``target`` (as /proc/self/fd shows it)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink("/proc/self/fd/" + fd) == target
        except OSError:
            pass                    # the listing's own fd, gone by now
    return n


@pytest.fixture
def fake(tmp_path):
    made = []

    def make(script):
        f = Fake(str(tmp_path / "fake.sock"), script)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def test_unexpected_fds_are_closed(fake):
    def script(f):
        f.welcome()
        ping = f.next_frame()
        r, w = os.pipe()
        pipe.append("pipe:[%d]" % os.fstat(r).st_ino)
        f.send({"type": P.PONG, "nonce": P.decode(P.PING, ping[3])["nonce"]}, ping[2],
               fds=[r, w])
        os.close(r)
        os.close(w)
        ping = f.next_frame()                 # the connection goes on
        f.send({"type": P.PONG, "nonce": P.decode(P.PING, ping[3])["nonce"]}, ping[2])
        f.next_frame()                        # until the client goes
    pipe = []
    f = fake(script)
    with hybridd.connect(f.path) as c:
        c.ping()                              # its pong carries both ends of a pipe
        c.ping()                              # answered after the fake closed its own copies
        assert fds_to(pipe[0]) == 0           # so any copy left is one the client kept
    assert f.error is None


def test_truncated_fds_break_the_connection_and_are_closed(fake):
    def script(f):
        f.welcome()
        ping = f.next_frame()
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(P.MAX_FDS + 2)]
        f.send({"type": P.PONG, "nonce": 1}, ping[2], fds=fds)
        for fd in fds:
            os.close(fd)
        f.next_frame()
    f = fake(script)
    before = fds_to("/dev/null")
    c = hybridd.connect(f.path)
    with pytest.raises(hybridd.ProtocolError) as e:
        c.ping()
    assert "MSG_CTRUNC" in str(e.value)
    c.close()
    f.thread.join(10)                         # the fake has closed its own
    assert fds_to("/dev/null") == before


def test_version_refused(fake):
    def script(f):
        hello = f.next_frame()
        m = P.decode(P.HELLO, hello[3])
        assert (m["min_version"], m["max_version"], m["name"]) == (1, 1, b"hybridd-python")
        f.send({"type": P.ERROR, "code": P.EVERSION, "message": "no version in common"},
               hello[2])
    with pytest.raises(hybridd.VersionError) as e:
        hybridd.connect(fake(script).path)
    assert e.value.sentence == "no version in common" and e.value.code == -10


def test_a_welcome_of_another_version_is_refused(fake):
    with pytest.raises(hybridd.VersionError):
        hybridd.connect(fake(lambda f: f.welcome(version=2)).path)


def test_a_broken_stream_fails_every_waiting_call(fake):
    def script(f):
        f.welcome()
        f.next_frame()                                      # the SUBMIT
        f.send({"type": P.ACCEPTED, "job_id": 4}, 2)
        f.conn.sendall(b"XXXX" + bytes(20))                 # bad magic: the stream breaks
        f.next_frame()
    c = hybridd.connect(fake(script).path)
    job = c.submit("pi", 10 ** 6)
    with pytest.raises(hybridd.ProtocolError):
        job.result(30)
    with pytest.raises(hybridd.ProtocolError):
        c.ping()
    c.close()


def test_a_daemon_that_closes_gives_connection_lost(fake):
    def script(f):
        f.welcome()
        f.next_frame()                                      # the SUBMIT, then hang up
    c = hybridd.connect(fake(script).path)
    job = c.submit("pi", 10 ** 6)
    with pytest.raises(hybridd.ConnectionLost) as e:
        job.result(30)
    assert isinstance(e.value, ConnectionError)
    c.close()


def test_first_layout_accepted_and_result_rows(fake):
    """A daemon of the first layout: a 16-byte ACCEPTED and 128-byte rows."""
    def script(f):
        f.welcome()
        sub = f.next_frame()
        f.conn.sendall(P.encode_header(P.ACCEPTED, 16, sub[2]) +
                       P.encode({"type": P.ACCEPTED, "job_id": 9}, body_size=16))
        row = {"backend": 2, "mode": 1, "threads": 4, "copies": 1, "n": 100, "hits": 78,
               "estimate": 3.12, "median_ns": 1000, "repeat": 1}
        f.conn.sendall(P.frame({"type": P.RESULT, "job": 1, "job_id": 9, "rows": [row]},
                               sub[2], row_size=128))
        f.next_frame()
    with hybridd.connect(fake(script).path) as c:
        r = c.pi(100)
        assert (r.hits, r.threads, r.job_id, r.bytes_moved, r.transport) == (78, 4, 9, 0, None)


def test_without_memfd_granted_arrays_travel_inline(fake):
    """A daemon that does not grant MEMFD gets even a memfd array inline, and the sorted
    elements come back from the RESULT."""
    import numpy as np

    def script(f):
        f.welcome(features=P.FEATURE_PROGRESS)
        mtype, flags, req, payload, fds = f.next_frame()
        m = P.decode(mtype, payload)
        seen.append((m["array"], flags, fds))
        out = np.sort(np.frombuffer(m["array_data"], dtype="<i4"))
        row = {"backend": 2, "mode": 1, "threads": 1, "copies": 1, "n": m["n"], "repeat": 1}
        f.send({"type": P.ACCEPTED, "job_id": 3}, req)
        f.send({"type": P.RESULT, "job": 2, "job_id": 3, "rows": [row],
                "array_data": out.tobytes()}, req)
        f.next_frame()
    seen = []
    with hybridd.connect(fake(script).path) as c:
        a = hybridd.asarray(np.array([5, -1, 3], dtype=np.int32))
        c.sort(a)
        assert a.tolist() == [-1, 3, 5]
    assert seen == [(P.ARRAY_INLINE, 0, [])]
