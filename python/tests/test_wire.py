"""The real daemon held to docs/protocol.md through this package's codec: frames a normal
client never sends (older and newer layouts, unknown types, broken headers), and the answers
the spec prescribes.  A second implementation checking the first."""
import os
import socket
import struct

import pytest

from hybridd import protocol as P


class Raw:
    """A bare connection: frames out, frames in, nothing else."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(60)
        self.s.connect(path)
        self.reader = P.FrameReader()
        self.queue = []

    def send(self, data, fds=()):
        if fds:
            socket.send_fds(self.s, [data], list(fds))
        else:
            self.s.sendall(data)

    def hello(self):
        self.send(P.frame({"type": P.HELLO, "min_version": 1, "max_version": 1,
                           "features": P.FEATURE_MEMFD, "name": "wire-test"}, 1))
        mtype, m, _ = self.next()
        assert mtype == P.WELCOME, m
        self.reader.max_payload = m["max_payload"]
        return m

    def next(self):
        """(type, message, request) of the next frame; (None, None, None) at EOF."""
        while not self.queue:
            data = self.s.recv(1 << 16)
            if not data:
                return None, None, None
            self.queue += self.reader.feed(data)
        mtype, _flags, request, payload, _fds = self.queue.pop(0)
        return mtype, P.decode(mtype, payload), request

    def until(self, want):
        while True:
            mtype, m, request = self.next()
            if mtype in (want, P.ERROR, None):
                return mtype, m, request

    def close(self):
        self.s.close()


@pytest.fixture
def raw(daemon):
    r = Raw(daemon.sock)
    yield r
    r.close()


def pi_submit(n=10 ** 5, **kw):
    m = {"type": P.SUBMIT, "job": P.JOB_PI, "backend": 2, "device": P.DEVICE_DEFAULT,
         "n": n, "seed": 3}
    m.update(kw)
    return m


def test_first_layout_submit_is_run(raw):
    raw.hello()
    raw.send(P.frame(pi_submit(), 2, body_size=56))
    assert raw.until(P.ACCEPTED)[0] == P.ACCEPTED
    mtype, m, request = raw.until(P.RESULT)
    assert (mtype, request, m["rows"][0]["n"]) == (P.RESULT, 2, 10 ** 5)


def test_a_newer_senders_longer_body_is_read_by_its_known_fields(raw):
    raw.hello()
    payload = bytearray(P.encode(pi_submit(job=P.JOB_COMPARE_PI, backends=1 << 2,
                                           threads_list=[1, 2], repeat=1), body_size=56))
    # an 88-byte body: this version's 72 (fields past 56 all 0), then 16 unknown (nonzero)
    # bytes, the thread list moved to 88
    body = payload[:56] + bytes(16) + b"\xee" * 16
    struct.pack_into("<I", body, 0, 88)
    raw.send(P.encode_header(P.SUBMIT, 88 + 8, 4) + bytes(body[:88]) +
             struct.pack("<2I", 1, 2))
    mtype, m, _ = raw.until(P.RESULT)
    assert mtype == P.RESULT, m
    # the serial baseline first, asked for or not (docs/daemon.md), then native 1 and 2
    assert [(r["backend"], r["threads"]) for r in m["rows"]] == [(1, 1), (2, 1), (2, 2)]


def test_unknown_type_is_answered_etype_and_the_stream_goes_on(raw):
    raw.hello()
    raw.send(P.encode_header(99, 8, 5) + struct.pack("<II", 8, 0))
    mtype, m, request = raw.next()
    assert (mtype, m["code"], request) == (P.ERROR, P.ETYPE, 5)
    raw.send(P.frame({"type": P.PING, "nonce": 77}, 6))
    mtype, m, request = raw.next()
    assert (mtype, m["nonce"], request) == (P.PONG, 77, 6)


def test_a_short_body_is_eproto_and_the_stream_goes_on(raw):
    raw.hello()
    raw.send(P.encode_header(P.PING, 16, 7) + struct.pack("<IIQ", 12, 0, 1))
    mtype, m, request = raw.next()
    assert (mtype, m["code"], request) == (P.ERROR, P.EPROTO, 7)
    raw.send(P.frame({"type": P.PING, "nonce": 1}, 8))
    assert raw.next()[0] == P.PONG


def test_fds_flag_without_fds_breaks_the_stream(raw):
    raw.hello()
    raw.send(P.frame(pi_submit(), 9, fds=True))
    mtype, m, _ = raw.next()
    assert (mtype, m["code"]) == (P.ERROR, P.EPROTO)
    assert raw.next()[0] is None                       # then the daemon closes


def test_a_memfd_without_seals_is_einval(raw):
    raw.hello()
    fd = os.memfd_create("unsealed", os.MFD_CLOEXEC)
    os.ftruncate(fd, 80)
    try:
        raw.send(P.frame({"type": P.SUBMIT, "job": P.JOB_SORT, "backend": 1, "dtype": 6,
                          "array": P.ARRAY_MEMFD, "n": 10, "device": P.DEVICE_DEFAULT}, 10,
                         fds=True), [fd])
    finally:
        os.close(fd)
    mtype, m, request = raw.next()
    assert (mtype, m["code"], request) == (P.ERROR, P.EINVAL, 10)


def test_message_before_hello_is_eproto_and_close(raw):
    raw.send(P.frame({"type": P.PING, "nonce": 1}, 1))
    mtype, m, _ = raw.next()
    assert (mtype, m["code"]) == (P.ERROR, P.EPROTO)
    assert raw.next()[0] is None


def test_second_hello_is_eproto(raw):
    raw.hello()
    raw.send(P.frame({"type": P.HELLO, "min_version": 1, "max_version": 1, "name": "x"}, 2))
    mtype, m, _ = raw.next()
    assert (mtype, m["code"]) == (P.ERROR, P.EPROTO)


def test_no_common_version_is_eversion_and_close(raw):
    raw.send(P.frame({"type": P.HELLO, "min_version": 2, "max_version": 3, "name": "x"}, 1))
    mtype, m, _ = raw.next()
    assert (mtype, m["code"]) == (P.ERROR, P.EVERSION)
    assert raw.next()[0] is None


def test_cancel_of_an_unknown_job_is_einval(raw):
    raw.hello()
    raw.send(P.frame({"type": P.CANCEL, "job_id": 1 << 60}, 11))
    mtype, m, request = raw.next()
    assert (mtype, m["code"], request) == (P.ERROR, P.EINVAL, 11)
