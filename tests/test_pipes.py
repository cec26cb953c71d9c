"""Reading worker results in bulk: the frames Connection.send writes, split by hand."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading

from alphaloop.execution._pipes import FrameReader, widen


def test_reads_every_waiting_message_in_order() -> None:
    r, w = mp.Pipe(duplex=False)
    reader = FrameReader(r)
    assert reader.read() == []
    msgs = [("t1", 1, True, "x" * 10), ("t2", 1, False, "y" * 40_000), {"n": 3}, None]
    for m in msgs:
        w.send(m)  # the 40 kB body goes as two writes (header, then payload)
    assert reader.read() == msgs
    assert reader.read() == [] and not reader.eof
    w.close()
    assert reader.read() == [] and reader.eof


def test_frames_split_across_reads_are_reassembled() -> None:
    r, w = mp.Pipe(duplex=False)
    reader = FrameReader(r)
    frame = mp.reduction.ForkingPickler.dumps(("big", "z" * 300_000))
    raw = len(frame).to_bytes(4, "big") + bytes(frame)
    got: list[object] = []
    # larger than the pipe and than one read: arrives in pieces while the reader polls
    t = threading.Thread(target=lambda: os.write(w.fileno(), raw) and w.close())
    t.start()
    while not reader.eof:
        got += reader.read()
    t.join()
    assert got == [("big", "z" * 300_000)]


def test_a_frame_cut_short_by_the_writers_death_is_not_delivered() -> None:
    r, w = mp.Pipe(duplex=False)
    reader = FrameReader(r)
    w.send("whole")
    frame = bytes(mp.reduction.ForkingPickler.dumps("cut"))
    os.write(w.fileno(), len(frame).to_bytes(4, "big") + frame[:3])
    w.close()
    assert reader.read() == ["whole"]
    assert reader.read() == [] and reader.eof


def test_a_garbled_frame_is_skipped_and_the_stream_stays_in_step() -> None:
    r, w = mp.Pipe(duplex=False)
    reader = FrameReader(r)
    w.send_bytes(b"not a pickle")
    w.send(("after", 1))
    assert reader.read() == [("after", 1)]


def test_widen_grows_the_pipe_buffer() -> None:
    import fcntl

    _r, w = mp.Pipe(duplex=False)
    widen(w, 1 << 18)
    assert fcntl.fcntl(w.fileno(), fcntl.F_GETPIPE_SZ) >= 1 << 18
