"""The codec against docs/protocol.md: its golden examples byte for byte, the first layouts a
decoder must still read, and the receiver's checks.  No daemon needed."""
import os
import re
import struct

import pytest

from hybridd import protocol as P

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                    "protocol.md")


def golden_examples():
    """The hex blocks of the spec's "Golden examples" section, in order, as bytes."""
    with open(SPEC, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Golden examples"):text.index("## Performance")]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    return [bytes.fromhex(b.replace("|", " ")) for b in blocks]


GOLDEN = golden_examples()


def split(frame_bytes):
    mtype, flags, length, request = P.decode_header(frame_bytes, P.MAX_PAYLOAD_BEFORE_WELCOME)
    payload = frame_bytes[P.HEADER_SIZE:]
    assert length == len(payload)
    return mtype, flags, request, payload


def roundtrip(frame_bytes, **kw):
    """Decodes a golden frame, re-encodes it, and requires the same bytes."""
    mtype, flags, request, payload = split(frame_bytes)
    m = P.decode(mtype, payload)
    again = P.frame(m, request, body_size=m["body_size"], **kw)
    assert again == frame_bytes
    return m, request


def golden(mtype, k=0):
    """The k-th golden example of type mtype (skips when the spec has none)."""
    found = [g for g in GOLDEN if split(g)[0] == mtype]
    if len(found) <= k:
        pytest.skip("the spec has no golden %s #%d" % (P.TYPE_NAMES[mtype], k + 1))
    return found[k]


def test_every_golden_example_round_trips():
    assert len(GOLDEN) >= 6
    for g in GOLDEN:
        roundtrip(g)


def test_golden_ping():
    m, req = roundtrip(golden(P.PING))
    assert req == 7 and m["nonce"] == 0x0102030405060708


def test_golden_hello():
    m, req = roundtrip(golden(P.HELLO))
    assert req == 1
    assert (m["min_version"], m["max_version"]) == (1, 1)
    assert m["features"] == P.FEATURE_MEMFD | P.FEATURE_PROGRESS
    assert m["name"] == b"hybridctl"
    # and an encoder of its own, from the fields alone, writes the same bytes
    assert P.frame({"type": P.HELLO, "min_version": 1, "max_version": 1, "features": 3,
                    "name": "hybridctl"}, 1) == golden(P.HELLO)


def test_golden_welcome():
    m, req = roundtrip(golden(P.WELCOME))
    assert req == 1 and m["version"] == 1 and m["features"] == 3
    assert m["max_payload"] == 1 << 20 and m["max_inline_bytes"] == 64 << 10
    assert m["max_jobs_per_client"] == 8
    assert m["max_samples"] == 10 ** 10 and m["max_sort_elements"] == 1 << 28
    assert m["server"] == b"hybridd"


def test_golden_submit():
    m, req = roundtrip(golden(P.SUBMIT))
    assert req == 2 and m["body_size"] == 72
    assert (m["job"], m["backend"], m["mode"], m["threads"], m["repeat"]) == (1, 2, 1, 2, 1)
    assert (m["n"], m["seed"], m["array"]) == (1000000, 42, P.ARRAY_NONE)
    assert (m["transport"], m["transports"], m["threads_list"], m["ranks"]) == (0, 0, [], 0)


def test_golden_error():
    m, req = roundtrip(golden(P.ERROR))
    assert req == 2 and m["code"] == P.ELIMIT and m["job_id"] == 5
    assert m["message"] == b"n too large"


def test_golden_first_layout_submit():
    m, req = roundtrip(golden(P.SUBMIT, 1))
    assert req == 3 and m["body_size"] == 56
    assert m["job"] == P.JOB_COMPARE_PI and m["backends"] == 0x28
    assert m["threads_list"] == [2, 8]
    assert (m["n"], m["seed"], m["repeat"]) == (10 ** 8, 7, 3)
    assert (m["transport"], m["transports"]) == (0, 0)


def test_golden_second_layout_submit():
    m, req = roundtrip(golden(P.SUBMIT, 2))
    assert req == 5 and m["body_size"] == 64
    assert (m["job"], m["backends"], m["warmup"]) == (P.JOB_COMPARE_PI, 0x6, 2)
    assert m["threads_list"] == [1, 2] and m["ranks"] == 0
    # held to the same exactness as the current layout: 8 bytes more are left over
    payload = split(golden(P.SUBMIT, 2))[3]
    with pytest.raises(P.CodecError) as e:
        P.decode(P.SUBMIT, payload + bytes(8))
    assert e.value.code == P.EPROTO
    # re-encoded in the current layout, the list moves to 72
    current = P.encode(m)
    assert len(current) == 72 + 8 and struct.unpack_from("<2I", current, 72) == (1, 2)


def test_submit_auto_backend_and_ranks_round_trip():
    m = {"type": P.SUBMIT, "job": P.JOB_PI, "backend": P.BACKEND_AUTO, "n": 10,
         "ranks": P.RANKS_ALL}
    payload = P.encode(m)
    assert payload[6] == 0xFF and payload[64:66] == b"\xff\xff"
    got = P.decode(P.SUBMIT, payload)
    assert (got["backend"], got["ranks"]) == (P.BACKEND_AUTO, P.RANKS_ALL)


def test_an_odd_thread_list_ends_the_payload_unpadded():
    # docs/protocol.md: an empty item takes no bytes, not even padding, so a compare whose
    # thread list ends 4 bytes short of a multiple of 8 ends there, and decodes back.
    m = {"type": P.SUBMIT, "job": P.JOB_COMPARE_PI, "n": 10, "threads_list": [1, 2, 4]}
    payload = P.encode(m)
    assert len(payload) == 72 + 3 * 4
    assert list(P.decode(P.SUBMIT, payload)["threads_list"]) == [1, 2, 4]


def test_golden_jobs_and_jobs_reply():
    m, req = roundtrip(golden(P.JOBS))
    assert req == 9 and m["flags"] == P.JOBS_ALL
    m, req = roundtrip(golden(P.JOBS_REPLY))
    assert (m["njobs"], m["others_queued"], m["others_running"]) == (1, 3, 1)
    j = m["jobs"][0]
    assert (j["job_id"], j["uid"], j["job"], j["state"], j["backend"]) == (7, 1000, 2, 2, 2)
    assert (j["device"], j["dtype"], j["threads"], j["n"]) == (0xFFFF, 6, 2, 10 ** 6)
    assert (j["queued_ns"], j["running_ns"], j["done"], j["total"]) == \
        (2 * 10 ** 9, 15 * 10 ** 8, 500, 1000)


def test_first_layout_sort_submit_with_inline_array():
    arr = struct.pack("<3d", 3.0, 1.0, 2.0)
    m = {"type": P.SUBMIT, "job": P.JOB_SORT, "backend": 1, "dtype": 6, "array": 1, "n": 3,
         "array_data": arr, "transport": 2}
    payload = P.encode(m, body_size=56)
    assert len(payload) == 56 + 24                 # array at 56, first-layout place
    got = P.decode(P.SUBMIT, payload)
    assert bytes(got["array_data"]) == arr and got["transport"] == 0
    current = P.decode(P.SUBMIT, P.encode(m))
    assert current["transport"] == 2 and bytes(current["array_data"]) == arr


def row(**kw):
    r = {name: 0 for name, _, _, _ in P.ROW_FIELDS}
    r.update(backend=5, mode=1, threads=2, copies=1, n=100, estimate=3.0, median_ns=9,
             bytes_moved=77, startup_ns=5, merge_ns=6, transport=2, workers_started=1,
             mean_ns=10, stddev_ns=2, q1_ns=8, q3_ns=11, warmup_ns=40, predicted_ns=12,
             ranks=3, passes=5, cpu_items=60, cpu_busy_ns=7, dev_busy_ns=8, cpu_chunks=4,
             dev_chunks=6, balance_ppm=900000, devices_used=1, overlap_ns=33)
    r.update(kw)
    return r


def test_result_rows_of_128_160_200_216_and_264_bytes():
    for size in (128, 160, 200, 216, 264):
        m = P.decode(P.RESULT, P.encode({"type": P.RESULT, "job": 2, "job_id": 9,
                                         "rows": [row(), row(threads=3)]}, row_size=size))
        assert m["nrows"] == 2 and m["row_size"] == size
        assert [r["threads"] for r in m["rows"]] == [2, 3]
        process = [m["rows"][0][k] for k in ("bytes_moved", "startup_ns", "merge_ns",
                                               "transport", "workers_started")]
        assert process == ([0] * 5 if size == 128 else [77, 5, 6, 2, 1])
        spread = [m["rows"][0][k] for k in ("mean_ns", "stddev_ns", "q1_ns", "q3_ns",
                                             "warmup_ns")]
        assert spread == ([0] * 5 if size < 200 else [10, 2, 8, 11, 40])
        later = [m["rows"][0][k] for k in ("predicted_ns", "ranks", "passes")]
        assert later == ([0, 0, 0] if size < 216 else [12, 3, 5])
        hybrid = [m["rows"][0][k] for k in ("cpu_items", "cpu_busy_ns", "dev_busy_ns",
                                             "cpu_chunks", "dev_chunks", "balance_ppm",
                                             "devices_used", "overlap_ns")]
        assert hybrid == ([0] * 8 if size < 264 else [60, 7, 8, 4, 6, 900000, 1, 33])
    small = bytearray(P.encode({"type": P.RESULT, "rows": [row()]}, row_size=128))
    struct.pack_into("<I", small, 8, 120)            # a row_size below the least one
    assert code_of(P.decode, P.RESULT, bytes(small)) == P.EPROTO


def test_result_with_inline_array():
    arr = bytes(range(12))
    m = P.decode(P.RESULT, P.encode({"type": P.RESULT, "job": 2, "rows": [row()],
                                     "array_data": arr}))
    assert bytes(m["array_data"]) == arr and m["array_bytes"] == 12


def test_status_reply_of_136_152_and_168_bytes():
    m = {"type": P.STATUS_REPLY, "clients": 3, "backend_jobs": [1, 2, 3, 4, 5, 11],
         "backend_busy_ns": [6, 7, 8, 9, 10, 12], "version": "hybridd 0.1.0"}
    old = P.decode(P.STATUS_REPLY, P.encode(m, body_size=136))
    assert old["backend_jobs"] == [1, 2, 3, 4, 0, 0] and old["version"] == b"hybridd 0.1.0"
    mid = P.decode(P.STATUS_REPLY, P.encode(m, body_size=152))
    assert mid["backend_jobs"] == [1, 2, 3, 4, 5, 0] and mid["version"] == b"hybridd 0.1.0"
    new_payload = P.encode(m)
    assert new_payload[168:] == b"hybridd 0.1.0"
    new = P.decode(P.STATUS_REPLY, new_payload)
    assert new["backend_jobs"] == [1, 2, 3, 4, 5, 11] and new["backend_busy_ns"][5] == 12


def test_devices_reply_records_of_352_and_416_bytes():
    dev = {"index": 0, "type": 2, "flags": 3, "name": "cpu", "problem": "",
           "platform": "Portable Computing Language"}
    for size, platform in ((352, ""), (416, "Portable Computing Language"), (480, dev["platform"])):
        m = P.decode(P.DEVICES_REPLY, P.encode({"type": P.DEVICES_REPLY, "devices": [dev, dev],
                                                "process_workers": 4}, record_size=size))
        assert [d["name"] for d in m["devices"]] == ["cpu", "cpu"]
        assert m["devices"][1]["platform"] == platform and m["process_workers"] == 4


def test_golden_ranks_and_ranks_reply():
    m, req = roundtrip(golden(P.RANKS))
    assert (req, m["flags"]) == (5, P.RANKS_FLAG_ALL)
    m, req = roundtrip(golden(P.RANKS_REPLY))
    assert (req, m["nranks"], m["rank"], m["size"], m["ndevices"]) == (4, 1, 1, 2, 0)
    assert m["flags"] == P.RANKS_MPI | P.RANKS_REPLY_ALL
    r = m["ranks"][0]
    assert (r["rank"], r["host"], r["native_threads"], r["process_workers"]) == (0, "n0", 8, 2)
    assert (r["uptime_ns"], r["jobs_done"], r["jobs_cancelled"]) == (5 * 10**9, 3, 5)


def test_ranks_reply_two_record_lists():
    """Each list is sized by its own word: device records of 352 (the first layout) or 416
    bytes after rank records of 144, or of a newer 160 whose tail is skipped."""
    dev = {"index": 0, "type": 2, "name": "cpu", "platform": "Portable Computing Language"}
    ranks = [{"rank": 0, "ndevices": 2, "host": "a", "native_threads": 4},
             {"rank": 1, "ndevices": 0, "host": "b"},
             {"rank": 2, "ndevices": 1, "host": "c" * 64}]
    m = {"type": P.RANKS_REPLY, "rank": 2, "size": 3, "flags": 3, "ranks": ranks,
         "devices": [dev, dev, dict(dev, name="gpu")]}
    for size, platform in ((352, ""), (416, dev["platform"])):
        got = P.decode(P.RANKS_REPLY, P.encode(m, record_size=size))
        assert [r["rank"] for r in got["ranks"]] == [0, 1, 2]
        assert got["ranks"][2]["host"] == "c" * 64 and got["ranks"][0]["native_threads"] == 4
        assert [d["name"] for d in got["devices"]] == ["cpu", "cpu", "gpu"]
        assert got["devices"][2]["platform"] == platform
    payload = bytearray(P.encode(m))
    struct.pack_into("<I", payload, 8, 143)                     # rank_size below 144
    assert code_of(P.decode, P.RANKS_REPLY, bytes(payload)) == P.EPROTO
    struct.pack_into("<I", payload, 8, 144)
    struct.pack_into("<I", payload, 12, 351)                    # device_size below 352
    assert code_of(P.decode, P.RANKS_REPLY, bytes(payload)) == P.EPROTO
    struct.pack_into("<I", payload, 12, 416)
    struct.pack_into("<I", payload, 4, P.MAX_RANKS + 1)
    assert code_of(P.decode, P.RANKS_REPLY, bytes(payload)) == P.ELIMIT
    struct.pack_into("<I", payload, 4, 3)
    struct.pack_into("<I", payload, 28, P.MAX_RANK_DEVICES + 1)
    assert code_of(P.decode, P.RANKS_REPLY, bytes(payload)) == P.ELIMIT
    struct.pack_into("<I", payload, 28, 4)                      # one record more than sent
    assert code_of(P.decode, P.RANKS_REPLY, bytes(payload)) == P.EPROTO


def test_first_layout_accepted():
    payload = struct.pack("<IIQ", 16, 0, 5)
    m = P.decode(P.ACCEPTED, payload)
    assert m["job_id"] == 5 and (m["nrows"], m["threads"], m["repeat"]) == (0, 0, 0)


def code_of(fn, *args):
    with pytest.raises(P.CodecError) as e:
        fn(*args)
    return e.value.code


def test_header_checks():
    good = P.encode_header(P.PING, 16, 1)
    assert code_of(P.decode_header, b"HYD2" + good[4:], 1 << 20) == P.EPROTO
    assert code_of(P.decode_header, P.encode_header(P.PING, 16, 1, flags=2), 1 << 20) == P.EPROTO
    assert code_of(P.decode_header, P.encode_header(P.PING, 16, 1, version=2), 1 << 20) == \
        P.EVERSION
    assert code_of(P.decode_header, P.encode_header(P.PING, 1 << 20, 1), 1 << 10) == P.ELIMIT
    assert code_of(P.decode, 99, b"\x08\0\0\0\0\0\0\0") == P.ETYPE


def test_body_checks():
    ping = P.encode({"type": P.PING, "nonce": 1})
    assert code_of(P.decode, P.PING, struct.pack("<I", 12) + ping[4:]) == P.EPROTO   # short
    assert code_of(P.decode, P.PING, struct.pack("<I", 20) + ping[4:]) == P.EPROTO   # > payload
    assert code_of(P.decode, P.PING, ping + b"\0" * 8) == P.EPROTO          # bytes left over
    newer = struct.pack("<I", 24) + ping[4:] + b"\xff" * 8                  # a newer sender
    assert P.decode(P.PING, newer)["nonce"] == 1
    hello = P.encode({"type": P.HELLO, "min_version": 1, "max_version": 1, "name": "x" * 65})
    assert code_of(P.decode, P.HELLO, hello) == P.ELIMIT
    err = P.encode({"type": P.ERROR, "code": -1, "message": "abc"})
    assert code_of(P.decode, P.ERROR, err[:-1]) == P.EPROTO                 # runs past the end
    sub = P.encode({"type": P.SUBMIT, "job": 3, "threads_list": list(range(1, 34))})
    assert code_of(P.decode, P.SUBMIT, sub) == P.ELIMIT                     # 33 thread counts


def frames_of(reader, chunks):
    out = []
    for data, fds in chunks:
        out += reader.feed(data, fds)
    return out


def test_frame_reader_byte_by_byte_and_merged():
    ping = P.frame({"type": P.PING, "nonce": 5}, 3)
    stream = ping + ping
    one = frames_of(P.FrameReader(), [(stream[i:i + 1], []) for i in range(len(stream))])
    merged = P.FrameReader().feed(stream)
    assert [(f[0], f[2]) for f in one] == [(P.PING, 3)] * 2 == [(f[0], f[2]) for f in merged]


def test_frame_reader_matches_fds_by_range():
    sub = P.frame({"type": P.SUBMIT, "job": 2, "array": 2, "n": 1, "dtype": 1}, 4, fds=True)
    ping = P.frame({"type": P.PING}, 5)
    # the fd came with a receive that ends the PING and starts the SUBMIT
    stream = ping + sub
    r = P.FrameReader()
    got = frames_of(r, [(stream[:10], []), (stream[10:len(ping) + 1], [99]),
                        (stream[len(ping) + 1:], [])])
    assert [(f[2], f[4]) for f in got] == [(5, []), (4, [99])]


def test_frame_reader_refuses_fds_without_a_frame_and_a_frame_without_fds():
    sub = P.frame({"type": P.SUBMIT, "job": 2, "array": 2, "n": 1, "dtype": 1}, 4, fds=True)
    r = P.FrameReader()
    with pytest.raises(P.CodecError) as e:
        r.feed(sub[:3])
        r.feed(sub[3:], [42])             # the frame started in the receive before
    assert e.value.code == P.EPROTO and r.orphans == [42]
    with pytest.raises(P.CodecError):
        P.FrameReader().feed(sub, [])
    with pytest.raises(P.CodecError):
        P.FrameReader().feed(P.frame({"type": P.PING}, 1), [7])


def test_golden_result_with_rank_records():
    m, req = roundtrip(golden(P.RESULT))
    assert req == 6 and m["job_id"] == 3 and m["body_size"] == 32
    assert m["rows"][0]["ranks"] == 2 and m["rows"][0]["hits"] == 785398
    assert [r["rank"] for r in m["rank_rows"]] == [0, 1]
    assert sum(r["share"] for r in m["rank_rows"]) == m["rows"][0]["n"]
    assert m["rank_rows"][1]["compute_ns"] == 1400000
    assert m["rank_rows"][0]["bytes_sent"] == 320
    assert m["array_data"] == b""


def test_result_rank_records_and_older_layouts():
    rr = [{"rank": r, "share": 10 + r, "compute_ns": 1, "exchange_ns": 2, "io_ns": 3,
           "bytes_sent": 4} for r in range(3)]
    m = P.decode(P.RESULT, P.encode({"type": P.RESULT, "job": 2, "rows": [row()],
                                     "rank_rows": rr}))
    assert [r["share"] for r in m["rank_rows"]] == [10, 11, 12]
    # the first layout (an older daemon): no rank records, and none expected
    old = P.encode({"type": P.RESULT, "job": 2, "rows": [row()]}, body_size=24)
    m = P.decode(P.RESULT, old)
    assert m["body_size"] == 24 and m["rank_rows"] == [] and m["nrank_rows"] == 0
    # records shorter than 48 bytes, or too many, are refused
    bad = bytearray(P.encode({"type": P.RESULT, "job": 2, "rows": [row()], "rank_rows": rr}))
    struct.pack_into("<I", bad, 28, 40)
    assert code_of(P.decode, P.RESULT, bytes(bad)) == P.EPROTO
    struct.pack_into("<II", bad, 24, P.MAX_RANK_ROWS + 1, 48)
    assert code_of(P.decode, P.RESULT, bytes(bad)) == P.ELIMIT
