"""The temporal stream under hostile clients, against a real ``upscaler serve``: a client that stops reading
loses its slot, sizes the engines cannot take and absurd motion are refused (the history kept), bad UTF-8 is
a quiet 1007 with a reason, SIGTERM answers the frames in flight before its 1012, and memory is bounded by the
limits and given back when the streams close."""

from __future__ import annotations

import itertools
import signal
import threading

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.measure_streams import RawStream
from server.settings import Settings, stream_memory_bound
from tests.server_helpers import HANG_GUARD_S, metric, serve, wait_until
from tests.test_server_temporal_stream import close, error_of, frame_message, reference, reply_frame, sequence
from upscaler import TemporalUpscaler
from upscaler.client import StreamClient, stream_url
from upscaler.temporal import check_temporal_size

OPEN = "upscaler_temporal_streams_open"
W, H = 48, 32
SEND_TIMEOUT_S = 2  # the test server's --stream-send-timeout-s: short, so the test is too


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    args = ("--models", "x4-temporal", "--backend", "onnxruntime-cpu", "--threads", "1", "--max-streams", "2")
    limits = ("--stream-send-timeout-s", str(SEND_TIMEOUT_S), "--max-pixels", "2000000")
    with serve(tmp_path_factory.mktemp("hostile"), *args, *limits) as running:
        yield running


def _url(server, w: int = W, h: int = H) -> str:
    return stream_url(server.url, model="x4-temporal", width=w, height=h)


def _log(server) -> str:
    return server.log.read_text()


# -- 1. a client that never reads ------------------------------------------------------------------------


def test_a_client_that_stops_reading_loses_its_slot_and_the_others_go_on(server, photo):
    frames = sequence(photo, 8)
    hostage_frames = sequence(photo, 4, size=(64, 48))
    messages = itertools.cycle([frame_message(f.lr, f.jitter, f.motion) for f in hostage_frames])
    ref = reference()
    with server.client() as c, StreamClient(server.url, width=W, height=H) as normal:
        f = frames[0]
        assert close(normal.send(f.lr, f.jitter, f.motion), ref.upscale(f.lr, f.jitter, f.motion))
        hostage = RawStream(_url(server, 64, 48), rcvbuf=4096)
        try:
            # It sends frames and never reads their 147 kB replies, until the server stops taking its bytes
            # (its reader waits for slots, which wait for replies that cannot be sent).
            sent = sum(1 for _ in itertools.takewhile(lambda m: hostage.send_binary(m, timeout=5), messages))
            assert sent >= 1
            for f in frames[1:]:  # the other stream is not held up meanwhile
                assert close(normal.send(f.lr, f.jitter, f.motion), ref.upscale(f.lr, f.jitter, f.motion))
            wait_until(lambda: metric(c, OPEN) == 1, "the hostage's slot to be freed")
            with StreamClient(server.url, width=W, height=H) as fresh:  # its slot is free for a new stream
                assert fresh.send(frames[0].lr).shape == (H * 4, W * 4, 3)
            _, code, reason = hostage.read_until_closed()
        finally:
            hostage.close()
    # Dropped (a reset: its close frame could not get past the unread replies), or closed with the reason.
    assert code is None or (code == 1008 and "--stream-send-timeout-s" in reason), (code, reason)
    assert f"a reply waited {SEND_TIMEOUT_S} s for the client to read it" in _log(server)


# -- 2. sizes the engines cannot take --------------------------------------------------------------------


def _gray(w: int, h: int) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


@pytest.mark.parametrize("size", [(8192, 1), (65536, 1), (1, 8192)])
def test_sides_over_the_engines_limit_get_413_and_the_history_goes_on(server, photo, size):
    frames = sequence(photo, 2)
    ref = reference()
    with connect(_url(server), max_size=None) as ws:
        ws.send(frame_message(frames[0].lr, frames[0].jitter, frames[0].motion))
        assert close(reply_frame(ws.recv(timeout=HANG_GUARD_S)), ref.upscale(frames[0].lr, frames[0].jitter))
        ws.send(frame_message(_gray(*size), (0.0, 0.0)))
        assert "at most 32766 px" in error_of(ws.recv(timeout=HANG_GUARD_S), 413, "too_large")
        f = frames[1]
        ws.send(frame_message(f.lr, f.jitter, f.motion))  # from frame 0's history, as if nothing came between
        assert close(reply_frame(ws.recv(timeout=HANG_GUARD_S)), ref.upscale(f.lr, f.jitter, f.motion))
    assert "Traceback" not in _log(server)


@pytest.mark.parametrize("size", [(4, 2048), (1, 2048), (2, 4096)])
def test_tall_frames_are_upscaled_as_in_process(server, size):
    """OpenCV's remap takes fewer than 32767 rows: the folded reprojection (16 rows per input row at x4) runs in
    blocks, so a tall frame is no limit."""
    w, h = size
    rng = np.random.default_rng(w)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)]
    motion = np.full((h, w, 2), 0.25, np.float32)
    ref = TemporalUpscaler("x4-temporal", "onnxruntime-cpu", threads=1)
    with StreamClient(server.url, width=w, height=h) as stream:
        for frame in frames:
            got = stream.send(frame, (0.1, -0.2), motion)
            assert got.shape == (h * 4, w * 4, 3)
            assert close(got, ref.upscale(frame, (0.1, -0.2), motion))


def test_the_stream_refuses_a_query_size_the_engines_cannot_take(server):
    with connect(_url(server, 8192, 1)) as ws:
        assert "32766" in error_of(ws.recv(timeout=HANG_GUARD_S), 413, "too_large")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=HANG_GUARD_S)
    assert closed.value.rcvd.code == 1008 and "32766" in closed.value.rcvd.reason


def test_the_library_refuses_those_sizes_with_a_value_error_and_keeps_its_history(photo):
    frames = sequence(photo, 2)
    ups, ref = (TemporalUpscaler("x4-temporal", "onnxruntime-cpu", threads=1) for _ in range(2))
    ups.upscale(frames[0].lr, frames[0].jitter, frames[0].motion)
    ref.upscale(frames[0].lr, frames[0].jitter, frames[0].motion)
    for w, h in ((8192, 1), (1, 8192), (65536, 1)):
        with pytest.raises(ValueError, match="at most 32766 px"):
            ups.upscale(_gray(w, h))
    f = frames[1]
    assert np.array_equal(ups.upscale(f.lr, f.jitter, f.motion), ref.upscale(f.lr, f.jitter, f.motion))
    check_temporal_size(8191, 1, 4)  # 32764 px: the largest side taken at x4
    with pytest.raises(ValueError):
        check_temporal_size(16384, 1, 2)


# -- 3. huge finite motion -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1e30, 3e38, -1e6, 4 * W + 1])
def test_motion_beyond_the_bound_gets_422_and_the_history_goes_on(server, photo, value):
    frames = sequence(photo, 2)
    ref = reference()
    wild = frames[1].motion.copy()
    wild[5, 7, 1] = value
    with connect(_url(server), max_size=None) as ws:
        ws.send(frame_message(frames[0].lr, frames[0].jitter, frames[0].motion))
        ref.upscale(frames[0].lr, frames[0].jitter, frames[0].motion)
        ws.recv(timeout=HANG_GUARD_S)
        ws.send(frame_message(frames[1].lr, frames[1].jitter, wild))
        message = error_of(ws.recv(timeout=HANG_GUARD_S), 422, "invalid_parameters")
        assert "motion reaches" in message and f"at most {4 * W}" in message
        f = frames[1]
        ws.send(frame_message(f.lr, f.jitter, f.motion))
        assert close(reply_frame(ws.recv(timeout=HANG_GUARD_S)), ref.upscale(f.lr, f.jitter, f.motion))
    assert "RuntimeWarning" not in _log(server)


def test_motion_within_the_bound_is_taken(server, photo):
    f = sequence(photo, 1)[0]
    far = np.full((H, W, 2), -4.0 * W, np.float32)  # the whole frame, four widths away: refused by nobody
    with StreamClient(server.url, width=W, height=H) as stream:
        assert stream.send(f.lr, f.jitter, far).shape == (H * 4, W * 4, 3)


# -- 4. bad UTF-8 ----------------------------------------------------------------------------------------


def test_a_text_message_that_is_not_utf8_is_closed_with_a_reason_and_logged_quietly(server):
    client = RawStream(_url(server))
    try:
        client.send_text_bytes(b"\xff\xfe\xfd")
        frames, code, reason = client.read_until_closed()
    finally:
        client.close()
    assert (frames, code, reason) == ([], 1007, "text messages must be valid UTF-8")
    log = _log(server)
    assert "Invalid UTF-8" not in log and "Traceback" not in log and "ERROR" not in log
    assert "closed: text messages must be valid UTF-8 (1007)" in log
    with server.client() as c:  # and nothing else changed
        wait_until(lambda: metric(c, OPEN) == 0, "the stream to be freed")


# -- 5. SIGTERM ------------------------------------------------------------------------------------------


def test_sigterm_answers_the_frames_in_flight_then_closes_with_a_reason(tmp_path, photo):
    frames = sequence(photo, 3, size=(192, 128))
    ref = reference()
    args = ("--models", "x4-temporal", "--backend", "onnxruntime-cpu", "--threads", "1", "--shutdown-timeout-s", "30")
    with serve(tmp_path, *args) as server:
        with connect(_url(server, 192, 128), max_size=None) as ws:
            for f in frames:
                ws.send(frame_message(f.lr, f.jitter, f.motion))
            server.proc.send_signal(signal.SIGTERM)
            replies = [ws.recv(timeout=HANG_GUARD_S) for _ in frames]
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=HANG_GUARD_S)
        assert server.proc.wait(timeout=HANG_GUARD_S) in (0, -signal.SIGTERM)  # uvicorn re-raises it, drained
    for i, (f, reply) in enumerate(zip(frames, replies)):
        assert close(reply_frame(reply, 192, 128), ref.upscale(f.lr, f.jitter, f.motion)), f"frame {i}"
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1012, "the service is shutting down")
    assert "Traceback" not in server.log.read_text()


# -- 6. memory -------------------------------------------------------------------------------------------


def _memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), MB."""
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def test_streams_stay_within_the_stated_bound_and_give_their_memory_back(tmp_path, photo):
    side, streams, in_flight = 256, 2, 2
    settings = Settings(max_pixels=(side * 4) ** 2, max_streams=streams, max_in_flight=in_flight)
    args = ("--models", "x4-temporal", "--backend", "onnxruntime-cpu", "--threads", "2")
    limits = ("--max-pixels", str(settings.max_pixels), "--max-streams", str(streams), "--max-in-flight", "2")
    frames = sequence(photo, 3, size=(side, side), center=(256.0, 256.0), velocity=(0.6, 0.3))
    with serve(tmp_path, *args, *limits) as server, server.client() as c:
        ready = _memory_mb(server.proc.pid)
        clients = [StreamClient(server.url, width=side, height=side, max_pending=in_flight) for _ in range(streams)]

        def run(stream: StreamClient) -> None:
            for f in frames:
                stream.submit(f.lr, f.jitter, f.motion)
                if stream.pending == in_flight:
                    stream.result()
            while stream.pending:
                stream.result()

        threads = [threading.Thread(target=run, args=(s,)) for s in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD_S)
        peak = _memory_mb(server.proc.pid)["VmHWM"]
        assert metric(c, OPEN) == streams
        for s in clients:
            s.close()
        # a closed stream's slot frees once the service's side of it has ended, a moment after the close handshake
        wait_until(lambda: metric(c, OPEN) == 0, "the closed streams' slots to free")
        with connect(_url(server, 8, 8), max_size=None) as ws:
            for _ in range(3):  # garbage as large as a message may be: refused, and its memory goes back too
                ws.send(b"\x00" * (30 << 20))
                error_of(ws.recv(timeout=HANG_GUARD_S), 400, "bad_request")
        wait_until(lambda: metric(c, OPEN) == 0, "every stream to close")
        wait_until(
            lambda: _memory_mb(server.proc.pid)["VmRSS"] <= 1.2 * ready["VmRSS"],
            f"resident memory back within 20% of the ready service's {ready['VmRSS']:.0f} MB",
        )
    bound_mb = stream_memory_bound(settings, [4]) / (1 << 20)
    assert peak - ready["VmRSS"] <= bound_mb, f"peak {peak:.0f} MB, ready {ready['VmRSS']:.0f} MB, bound {bound_mb:.0f}"


def test_the_uvicorn_protocol_server_wsprotocol_extends_has_what_it_relies_on():
    """``server.wsprotocol`` subclasses uvicorn's sans-I/O WebSocket protocol (no public hook exists): the methods
    it overrides and calls are there; the tests above check each behaviour it gives (pyproject pins the range)."""
    import inspect

    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    for name in ("shutdown", "send_receive_event_to_app", "handle_parser_exception"):
        assert not inspect.iscoroutinefunction(getattr(WebSocketsSansIOProtocol, name)), name
    assert inspect.iscoroutinefunction(WebSocketsSansIOProtocol.run_asgi)
    source = inspect.getsource(WebSocketsSansIOProtocol)
    for attribute in ("self.scope", "self.transport", "self.frames", "self.curr_msg_data_type", "self.close_sent"):
        assert attribute in source, attribute
