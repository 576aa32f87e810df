"""Temporal super-sampling over ``WS /v1/stream`` against a real ``upscaler serve``: the frame message layout as
documented, results equal to the in-process ``TemporalUpscaler``, one history per connection, bad frames
answered with JSON errors while the history goes on, ``--max-streams`` and streams freed on disconnect."""

from __future__ import annotations

import gc
import json
import struct
import weakref

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from server.settings import Settings
from server.temporal import TemporalModel
from tests.server_helpers import HANG_GUARD_S, abort, metric, serve, serve_in_thread, wait_until
from upscaler import TemporalUpscaler
from upscaler.client import StreamClient, StreamError, pack_frame, stream_url, unpack_frame
from upscaler.io import encode_image
from upscaler.sequences import Camera, SequenceSpec, make_sequence

W, H = 48, 32
OPEN = "upscaler_temporal_streams_open"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    args = ("--models", "x4-fast,x4-temporal", "--backend", "onnxruntime-cpu", "--threads", "1")
    # 100,000 output pixels: a 48x32 frame at x4 is 24,576; an 80x80 one (102,400) is over.
    limits = ("--max-streams", "2", "--max-pixels", "100000")
    with serve(tmp_path_factory.mktemp("temporal"), *args, *limits) as server:
        yield server


@pytest.fixture
def server(running):
    """The module's service, once every stream of the tests before has closed."""
    with running.client() as c:
        wait_until(lambda: metric(c, OPEN) == 0, "the earlier tests' temporal streams to close")
    return running


def reference() -> TemporalUpscaler:
    """In-process, as the service runs it: ONNX Runtime on the CPU, one thread."""
    return TemporalUpscaler("x4-temporal", "onnxruntime-cpu", threads=1)


def sequence(photo: np.ndarray, n: int, *, size=(W, H), velocity=(1.3, 0.6), center=(128.0, 128.0)):
    """A rendered sequence: a camera panning over the photo, Halton jitter, exact motion vectors."""
    spec = SequenceSpec(scale=4, size=size, frames=n, camera=Camera(center=center, zoom=0.7, velocity=velocity))
    return make_sequence(photo, spec, supersamples=1)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal within one grey level (thread scheduling may reorder float sums; here both run one thread)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def frame_message(frame, jitter, motion=None, reset=False, *, magic=b"UPTF", version=1, flags=None) -> bytes:
    """A frame message written field by field from the documented table (not with the client's packer)."""
    h, w = frame.shape[:2]
    header = bytearray(24)
    header[0:4] = magic  # offset 0: magic
    header[4] = version  # offset 4: uint8 version
    header[5] = ((1 if reset else 0) | (2 if motion is not None else 0)) if flags is None else flags  # flags
    struct.pack_into("<H", header, 6, 0)  # reserved
    struct.pack_into("<I", header, 8, w)
    struct.pack_into("<I", header, 12, h)
    struct.pack_into("<f", header, 16, jitter[0])
    struct.pack_into("<f", header, 20, jitter[1])
    body = bytes(header) + frame.astype(np.uint8).tobytes()
    return body + (motion.astype("<f4").tobytes() if motion is not None else b"")


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (48, 32)])
def test_a_frame_message_unpacks_to_what_was_packed(size):
    rng = np.random.default_rng(size[0])
    frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    motion = rng.normal(size=(size[1], size[0], 2)).astype(np.float32)
    for m, reset in ((motion, False), (None, True)):
        got = unpack_frame(pack_frame(frame, (0.25, -0.5), m, reset))
        assert np.array_equal(got.frame, frame) and got.jitter == (0.25, -0.5) and got.reset == reset
        assert (got.motion is None) if m is None else np.array_equal(got.motion, m)
    depth = rng.uniform(1, 50, (size[1], size[0])).astype(np.float32)
    for m in (motion, None):  # the depth plane after the motion, or straight after the pixels
        got = unpack_frame(pack_frame(frame, (0.0, 0.0), m, False, depth))
        assert np.array_equal(got.depth, depth) and (
            (got.motion is None) if m is None else np.array_equal(got.motion, m)
        )
    assert unpack_frame(pack_frame(frame)).depth is None


def raw_stream(server, **query):
    query = {"model": "x4-temporal", "width": W, "height": H, **query}
    return connect(stream_url(server.url, **query), compression=None, max_size=None)


def reply_frame(reply, w: int = W, h: int = H) -> np.ndarray:
    assert isinstance(reply, bytes), f"expected a frame, got {reply!r}"
    return np.frombuffer(reply, np.uint8).reshape(h * 4, w * 4, 3)


def error_of(reply, status: int, code: str) -> str:
    """The message of a JSON error reply, after checking its shape, status and code."""
    assert isinstance(reply, str), f"expected a JSON error, got {len(reply)} bytes"
    body = json.loads(reply)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "status", "message"}, body
    assert (body["error"]["status"], body["error"]["code"]) == (status, code), body
    return body["error"]["message"]


# -- results -------------------------------------------------------------------------------------------------


def test_a_jittered_sequence_with_motion_equals_in_process(server, photo):
    frames = sequence(photo, 8)
    ref = reference()
    with StreamClient(server.url, "x4-temporal", width=W, height=H) as stream:
        for i, f in enumerate(frames):
            motion = None if i == 5 else f.motion  # one frame without: both estimate it, the same way
            got = stream.send(f.lr, jitter=f.jitter, motion=motion)
            want = ref.upscale(f.lr, f.jitter, motion)
            assert got.shape == (H * 4, W * 4, 3) and got.dtype == np.uint8
            assert close(got, want), f"frame {i} differs from in-process by {np.abs(got.astype(int) - want).max()}"
    # The history matters: the last frame is not what a fresh stream makes of it.
    assert not close(want, reference().upscale(frames[-1].lr, frames[-1].jitter, frames[-1].motion))


def test_the_message_layout_is_the_documented_table(server, photo):
    frames = sequence(photo, 6)
    ref = reference()
    assert pack_frame(frames[1].lr, frames[1].jitter, frames[1].motion, True) == frame_message(
        frames[1].lr, frames[1].jitter, frames[1].motion, True
    )
    with raw_stream(server) as ws:
        for i, f in enumerate(frames):
            reset = i == 3  # a cut the game signals: the history is dropped here
            motion = f.motion if i % 2 == 0 else None  # the motion flag, on and off
            ws.send(frame_message(f.lr, f.jitter, motion, reset))
            got = reply_frame(ws.recv(timeout=HANG_GUARD_S))
            assert close(got, ref.upscale(f.lr, f.jitter, motion, reset=reset)), f"frame {i}"
            if reset:  # what a fresh stream makes of this frame
                assert close(got, reference().upscale(f.lr, f.jitter, motion))


def test_frames_sent_ahead_run_in_the_order_sent(server, photo):
    """Several frames in flight at once (the service reads ahead) still enter the history one by one, in order,
    and a bad one among them is answered in its place."""
    frames = sequence(photo, 6)
    messages = [frame_message(f.lr, f.jitter, f.motion) for f in frames]
    messages.insert(3, b"UPTF")
    with raw_stream(server) as ws:
        for message in messages:
            ws.send(message)
        replies = [ws.recv(timeout=HANG_GUARD_S) for _ in messages]
    assert "truncated header" in error_of(replies.pop(3), 400, "bad_request")
    ref = reference()
    for i, (f, reply) in enumerate(zip(frames, replies)):
        assert close(reply_frame(reply), ref.upscale(f.lr, f.jitter, f.motion)), f"frame {i}"


def test_interleaved_streams_keep_their_own_histories(server, photo):
    """Streams share the loaded network, never a history."""
    first, second = sequence(photo, 5), sequence(photo, 5, velocity=(-0.8, 1.1), center=(100.0, 140.0))
    refs = reference(), reference()
    with StreamClient(server.url, width=W, height=H) as a, StreamClient(server.url, width=W, height=H) as b:
        for fa, fb in zip(first, second):
            got_a = a.send(fa.lr, fa.jitter, fa.motion)
            got_b = b.send(fb.lr, fb.jitter, fb.motion)
            assert close(got_a, refs[0].upscale(fa.lr, fa.jitter, fa.motion))
            assert close(got_b, refs[1].upscale(fb.lr, fb.jitter, fb.motion))


def test_a_size_change_mid_stream_starts_a_new_history(server, photo):
    big, small = sequence(photo, 3), sequence(photo, 3, size=(40, 24))
    ref = reference()
    with StreamClient(server.url, width=W, height=H) as stream:
        for f in big:
            assert close(stream.send(f.lr, f.jitter, f.motion), ref.upscale(f.lr, f.jitter, f.motion))
        for i, f in enumerate(small):
            got = stream.send(f.lr, f.jitter, f.motion)
            assert got.shape == (24 * 4, 40 * 4, 3)
            assert close(got, ref.upscale(f.lr, f.jitter, f.motion)), f"frame {i} after the change"
            if i == 0:
                assert close(got, reference().upscale(f.lr, f.jitter, f.motion))


# -- bad input -----------------------------------------------------------------------------------------------


def test_bad_frames_get_json_errors_and_the_history_goes_on(server, photo):
    frames = sequence(photo, 3)
    ref = reference()
    good = [frame_message(f.lr, f.jitter, f.motion) for f in frames]
    f = frames[1]
    nan = f.motion.copy()
    nan[3, 4, 0] = np.nan
    bad = {
        "wrong-size motion": (frame_message(f.lr, f.jitter, f.motion[:, :-1]), 400, "bad_request", "bytes"),
        "NaN motion": (frame_message(f.lr, f.jitter, nan), 422, "invalid_parameters", "NaN"),
        "jitter out of range": (frame_message(f.lr, (0.5, 0.0), f.motion), 422, "invalid_parameters", "jitter jx"),
        "text": ("hello", 400, "bad_request", "binary"),
        "truncated header": (good[1][:10], 400, "bad_request", "truncated header"),
        "bad magic": (frame_message(f.lr, f.jitter, f.motion, magic=b"RIFF"), 400, "bad_request", "magic"),
        "unknown version": (frame_message(f.lr, f.jitter, f.motion, version=2), 400, "bad_request", "version 2"),
        "unknown flag": (frame_message(f.lr, f.jitter, f.motion, flags=2 | 8), 400, "bad_request", "flags"),
        "depth flagged, not sent": (
            frame_message(f.lr, f.jitter, f.motion, flags=2 | 4),
            400,
            "bad_request",
            "(depth)",
        ),
        "negative depth": (
            frame_message(f.lr, f.jitter, f.motion, flags=2 | 4) + np.full(f.lr.shape[:2], -1.0, "<f4").tobytes(),
            422,
            "invalid_parameters",
            "depth",
        ),
        "too many pixels": (frame_message(np.zeros((80, 80, 3), np.uint8), (0, 0)), 413, "too_large", "100000"),
    }
    with raw_stream(server) as ws:
        ws.send(good[0])
        assert close(reply_frame(ws.recv(timeout=HANG_GUARD_S)), ref.upscale(frames[0].lr, frames[0].jitter))
        for name, (message, status, code, says) in bad.items():
            ws.send(message)
            assert says in error_of(ws.recv(timeout=HANG_GUARD_S), status, code), name
        for f, message in zip(frames[1:], good[1:]):  # from the history of frame 0, as if nothing came between
            ws.send(message)
            assert close(reply_frame(ws.recv(timeout=HANG_GUARD_S)), ref.upscale(f.lr, f.jitter, f.motion))


def test_the_client_raises_the_service_errors_and_goes_on(server, photo):
    f = sequence(photo, 2)
    ref = reference()
    with StreamClient(server.url, width=W, height=H) as stream:
        assert close(stream.send(f[0].lr, f[0].jitter), ref.upscale(f[0].lr, f[0].jitter))
        with pytest.raises(StreamError) as bad:
            stream.send(f[1].lr, (float("nan"), 0.0), f[1].motion)
        assert (bad.value.status, bad.value.code) == (422, "invalid_parameters") and "jitter" in bad.value.message
        with pytest.raises(ValueError, match="motion must be"):  # the wrong shape never leaves the client
            stream.send(f[1].lr, f[1].jitter, f[1].motion[:-1])
        assert close(stream.send(f[1].lr, f[1].jitter, f[1].motion), ref.upscale(f[1].lr, f[1].jitter, f[1].motion))


def test_submitted_frames_come_back_in_order_with_errors_in_their_place(server, photo):
    frames = sequence(photo, 7)
    ref = reference()
    inputs = [(f.lr, f.jitter, f.motion) for f in frames]
    inputs.insert(3, (frames[3].lr, (float("nan"), 0.0), frames[3].motion))  # refused in its place
    got = []
    with StreamClient(server.url, width=W, height=H, max_pending=3) as stream:

        def collect() -> None:
            try:
                got.append(stream.result())
            except StreamError as exc:
                assert exc.status == 422 and "jitter" in exc.message
                got.append(None)

        for i, args in enumerate(inputs):
            if stream.pending == 3:
                if i == 3:
                    with pytest.raises(RuntimeError, match="3 frames are pending"):  # more would stall both ends
                        stream.submit(*args)
                    with pytest.raises(RuntimeError, match="still to be collected"):  # its reply is another's
                        stream.send(*args)
                collect()
            stream.submit(*args)
        while stream.pending:
            collect()
        with pytest.raises(RuntimeError, match="no submitted frame"):
            stream.result()
    assert [g is None for g in got] == [False, False, False, True, False, False, False, False]
    replies = [g for g in got if g is not None]
    for i, (f, reply) in enumerate(zip(frames, replies)):  # the refused frame left the history alone
        assert close(reply, ref.upscale(f.lr, f.jitter, f.motion)), f"frame {i}"


def test_temporal_models_serve_streams_only(server, photo):
    frame = np.ascontiguousarray(photo[:H, :W])
    png = encode_image(frame, "png")
    with server.client() as c:
        upscale = c.post("/v1/upscale", params={"model": "x4-temporal"}, content=png)
        frames = c.post(
            "/v1/frames",
            params={"model": "x4-temporal"},
            content=frame.tobytes(),
            headers={"X-Width": str(W), "X-Height": str(H)},
        )
        models = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        single = c.post("/v1/upscale", content=png)
    for r in (upscale, frames):
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "temporal model" in message and "/v1/stream" in message and "x4-fast" in message
    assert models["x4-temporal"]["temporal"] and not models["x4-fast"]["temporal"]
    assert single.status_code == 200  # the single-frame model beside it is served as before
    with raw_stream(server, format="bgr24") as ws:
        assert "rgb24" in error_of(ws.recv(timeout=HANG_GUARD_S), 422, "invalid_parameters")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=HANG_GUARD_S)
    for model, status, says in (("x2-temporal", 404, "not served"), ("x4-fast", 400, "single-frame model")):
        with StreamClient(server.url, model, width=W, height=H) as stream, pytest.raises(StreamError) as refused:
            stream.send(frame)
        assert refused.value.status == status and says in refused.value.message, refused.value


# -- streams open --------------------------------------------------------------------------------------------


def test_more_streams_than_max_streams_get_503_in_the_handshake(server, photo):
    f = sequence(photo, 1)[0]
    with StreamClient(server.url, width=W, height=H) as a, StreamClient(server.url, width=W, height=H):
        with pytest.raises(StreamError) as refused:
            StreamClient(server.url, width=W, height=H)
        with pytest.raises(InvalidStatus) as raw:
            raw_stream(server)
        assert close(a.send(f.lr, f.jitter), reference().upscale(f.lr, f.jitter))  # the open ones go on
    assert (refused.value.status, refused.value.code) == (
        503,
        "overloaded",
    ) and "--max-streams" in refused.value.message
    response = raw.value.response
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert json.loads(response.body)["error"]["code"] == "overloaded"


def test_a_client_that_goes_away_frees_its_stream(server, photo):
    frames = sequence(photo, 3)
    with server.client() as c, StreamClient(server.url, width=W, height=H) as kept:
        kept.send(frames[0].lr, frames[0].jitter)
        with raw_stream(server) as gone:
            for f in frames:  # frames in flight when it goes
                gone.send(frame_message(f.lr, f.jitter, f.motion))
            with pytest.raises(StreamError):  # both streams are open: the limit
                StreamClient(server.url, width=W, height=H)
            abort(gone.socket)  # a reset, as a client that crashes
        wait_until(lambda: metric(c, OPEN) == 1, "the aborted stream to be freed")
        with StreamClient(server.url, width=W, height=H) as fresh:  # its place is free, with a new history
            got = fresh.send(frames[2].lr, frames[2].jitter, frames[2].motion)
        assert close(got, reference().upscale(frames[2].lr, frames[2].jitter, frames[2].motion))
        wait_until(lambda: metric(c, OPEN) == 1, "the closed stream to be freed")
        assert c.get("/healthz").status_code == 200
    assert "Traceback" not in server.log.read_text()


def test_a_closed_stream_leaves_no_history_behind(photo, monkeypatch):
    """In the service's own process: once its streams have ended (closed, or aborted with frames in flight),
    nothing holds their histories; not even the engine thread, which keeps no reference to its last job."""
    histories: list[weakref.ref] = []
    open_stream = TemporalModel.open

    def tracked(self):
        stream = open_stream(self)
        histories.append(weakref.ref(stream))
        return stream

    monkeypatch.setattr(TemporalModel, "open", tracked)
    frames = sequence(photo, 3)
    settings = Settings(models=["x4-temporal"], backend="onnxruntime-cpu", threads=1, warmup=False)
    with serve_in_thread(settings) as server, server.client() as c:
        with StreamClient(server.url, width=W, height=H) as stream:
            for f in frames:
                stream.send(f.lr, f.jitter, f.motion)
        with raw_stream(server) as ws:
            for f in frames:
                ws.send(frame_message(f.lr, f.jitter, f.motion))
            abort(ws.socket)
        wait_until(lambda: metric(c, OPEN) == 0, "both streams to end")
        assert len(histories) == 2
        wait_until(lambda: gc.collect() >= 0 and all(ref() is None for ref in histories), "the histories to go")
