"""``upscaler video --model x4-temporal`` on real clips made with PyAV: each segment one stream, resets at cuts.

The clip: two real photos (Set5) seen through a 64x48 window that pans a pixel a frame, with a hard cut
from one to the other inside the second of three one-second segments. Outputs are encoded losslessly
(``--crf 0``), so the decoded YUV planes are compared exactly with an in-process ``TemporalUpscaler`` run
whose frames went through the same colour conversion.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.video_helpers import (
    decoded_frames,
    frame_times,
    frames_native,
    make_clip,
    make_clip_from,
    panned,
    ray_cluster,
)
from upscaler import TemporalUpscaler
from upscaler.temporal.cuts import CutDetector, find_cuts, shifted_difference, thumbnail
from upscaler.video.probe import packet_times, probe
from upscaler.video.segments import plan_segments
from upscaler.video.transcode import choose_pix_fmt, encodable_frame

LAUNCHER = Path(__file__).with_name("video_launcher.py")
HOLD_TIMEOUT = 300  #: only a guard against a hang: the launcher holds the job at a known point
FPS, GOP, FRAMES, CUT = 12, 6, 36, 16  #: three 1 s segments (frames 0, 12, 24 start them); the cut inside the 2nd
SIZE = (64, 48)
LOSSLESS = ["--segment-seconds", "1", "--crf", "0", "-q"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, set5) -> Path:
    """Butterfly panning for ``CUT`` frames, then a hard cut to the bird, panning on."""
    first = panned(set5["butterfly"], SIZE, CUT, step=(1, 1))
    second = panned(set5["bird"], SIZE, FRAMES - CUT, step=(1, 0))
    return make_clip_from(tmp_path_factory.mktemp("clip") / "cut.mp4", first + second, fps=FPS, gop=GOP)


def _segment_starts(source: Path, segment_s: float = 1.0) -> set[int]:
    """The frames (display indices) that start a segment, as the job plans them."""
    info = probe(source)
    _, keys = packet_times(source)
    plan = plan_segments(keys, info.time_base, segment_s)
    stamps = [pts for pts, _ in decoded_frames(source)]
    return {next(i for i, pts in enumerate(stamps) if pts >= max(s.start, stamps[0])) for s in plan}


def _in_process(frames: list[np.ndarray], resets: set[int]) -> list[np.ndarray]:
    """One ``TemporalUpscaler`` over the frames, as the video path feeds it: zero jitter, estimated motion."""
    ts = TemporalUpscaler("x4-temporal")
    return [ts.upscale(f, jitter=(0.0, 0.0), motion=None, reset=i in resets) for i, f in enumerate(frames)]


def _through_codec(images: list[np.ndarray], source: Path) -> list[np.ndarray]:
    """What a lossless encode of ``images`` decodes to: the pipeline's RGB to YUV conversion, planes as arrays."""
    info = probe(source)
    pix_fmt = choose_pix_fmt("libx264", info.pix_fmt, info.bit_depth, None)
    return [encodable_frame(image, info, pix_fmt).to_ndarray() for image in images]


def _differing(a: list[np.ndarray], b: list[np.ndarray]) -> list[int]:
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b)) if not np.array_equal(x, y)]


@pytest.fixture(scope="module")
def expected(clip) -> list[np.ndarray]:
    """The clip through one in-process stream reset at the segment starts and at the cut, through the codec."""
    frames = [image for _, image in decoded_frames(clip)]
    starts = _segment_starts(clip)
    assert starts == {0, 12, 24}  # the plan the test is built on: the cut lies inside a segment
    return _through_codec(_in_process(frames, starts | {CUT}), clip)


# --- the cut detector ---------------------------------------------------------------------------------------


def test_the_cut_detector_finds_the_real_cut_and_nothing_in_pans(clip, set5):
    frames = [image for _, image in decoded_frames(clip)]  # through H.264 and back, as the pipeline sees them
    assert find_cuts(frames) == [CUT]
    for step in [(1, 0), (2, 1), (3, 3), (-2, 0)]:  # pans, diagonal ones and faster ones too, on another photo
        photo = set5["baby"] if step[0] >= 0 else set5["baby"][:, ::-1]
        assert find_cuts(panned(photo, SIZE, 20, step=(abs(step[0]), step[1]))) == [], step
    detector = CutDetector()
    scores = []
    for frame in frames:
        detector.is_cut(frame)
        scores.append(detector.last_score)
    assert scores[0] is None and max(s for i, s in enumerate(scores) if i not in (0, CUT)) < 5
    assert scores[CUT] > 40  # the cut stands far above the threshold (20 grey levels)


def test_the_measure_lines_up_shifted_frames_and_spikes_only_once(set5):
    photo = set5["woman"]
    a, b = thumbnail(photo[10:58, 10:74]), thumbnail(photo[12:60, 13:77])  # the same scene, moved (3, 2)
    assert shifted_difference(a, b) == 0.0 and float(np.abs(a - b).mean()) > 5
    big = thumbnail(np.repeat(np.repeat(photo, 4, 0), 4, 1))  # large frames are compared 64 pixels wide
    assert big.shape == (round(photo.shape[0] * 64 / photo.shape[1]), 64) and big.dtype == np.float32
    deep = thumbnail(photo[..., :3].astype(np.uint16) * 257)  # 16-bit frames on the same grey scale
    assert np.allclose(deep, thumbnail(photo[..., :3]), atol=0.5)  # 8-bit averages round to whole levels
    # footage that changes wholly on every frame (noise): one spike at most, never a reset on every frame
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(10)]
    assert len(find_cuts(noise)) <= 1


# --- the video command --------------------------------------------------------------------------------------


def test_temporal_video_equals_an_in_process_stream_reset_at_segment_starts_and_the_cut(tmp_path, clip, expected):
    out = tmp_path / "out.mkv"
    summary = tmp_path / "summary.json"
    result = run_cli("video", str(clip), "-o", str(out), "--model", "x4-temporal", *LOSSLESS, "--json", str(summary))
    assert result.returncode == 0, result.stderr
    report = json.loads(summary.read_text())
    entry = report["files"][0]
    assert entry["status"] == "done" and entry["segments"] == 3 and entry["frames"] == FRAMES
    assert entry["cuts"] == 1 and entry["engine"] and entry["precision"] == "fp32"
    assert report["settings"]["temporal"]["motion"] == "estimated"
    b = probe(out)
    assert (b.width, b.height) == (SIZE[0] * 4, SIZE[1] * 4)
    assert frame_times(out) == pytest.approx(frame_times(clip), abs=0.001)
    got = frames_native(out)
    assert not _differing(got, expected), "frames differ from the in-process stream"
    # the cut reset the history: from the cut to the segment's end the frames are a fresh stream's
    frames = [image for _, image in decoded_frames(clip)]
    fresh = _through_codec(_in_process(frames[CUT:24], set()), clip)
    assert not _differing(got[CUT:24], fresh)
    # ... which is not what the stream would have made had it kept its history (so the check means something)
    kept = _through_codec(_in_process(frames[12:24], set()), clip)
    assert not np.array_equal(kept[CUT - 12], got[CUT])


def _launch(marker: Path, segments: int, args: list[str]) -> list[str]:
    return [sys.executable, str(LAUNCHER), str(marker), str(segments), "--", *args]


def _held(tmp_path: Path, args: list[str], segments: int, env: dict | None = None) -> subprocess.Popen:
    """``upscaler ARGS`` holding once ``segments`` segments are finished (``video_launcher``)."""
    marker, log = tmp_path / "run.held", tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_launch(marker, segments, args), stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})  # fmt: skip
    deadline = time.monotonic() + HOLD_TIMEOUT
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode} before holding:\n{log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never held within {HOLD_TIMEOUT} s:\n{log.read_text()}")
        time.sleep(0.02)
    return proc


def test_an_interrupted_temporal_job_resumes_to_the_same_frames_and_refuses_other_settings(tmp_path, clip, expected):
    out = tmp_path / "out.mkv"
    work = tmp_path / ".out.mkv.upscaler"
    job = ["video", str(clip), "-o", str(out), "--model", "x4-temporal", *LOSSLESS]
    proc = _held(tmp_path, job, segments=1)  # held in the first engine call of the second segment
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=HOLD_TIMEOUT) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sorted(p.name for p in work.glob("seg-*[0-9].mp4")) == ["seg-00000.mp4"] and not out.exists()
    record = json.loads((work / "job.json").read_text())
    assert record["model"] == "x4-temporal" and record["temporal"]["motion"] == "estimated"
    for other, says in (
        (["--model", "x4-fast"], "--model x4-temporal"),  # a single-frame model cannot continue it
        (["--backend", "torch-cpu"], "--backend onnxruntime-cpu --precision fp32"),  # nor another engine
    ):
        refused = run_cli(*job, *other, "--resume")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert says in refused.stderr and "--restart" in refused.stderr
    summary = tmp_path / "summary.json"
    resumed = run_cli(*job, "--json", str(summary))  # the same command goes on
    assert resumed.returncode == 0, resumed.stderr
    entry = json.loads(summary.read_text())["files"][0]
    assert entry["resumed_segments"] == 1 and entry["reused_frames"] == 12 and entry["frames"] == FRAMES
    assert entry["cuts"] == 1  # in the frames this run made
    assert not _differing(frames_native(out), expected) and not work.exists()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--batch-size", "4"], "--batch-size 4: x4-temporal is a temporal model"),
        (["--precision", "int8"], "--precision int8: x4-temporal is a temporal model and runs in fp32 only"),
        (["--backend", None], "--backend {}: x4-temporal is a temporal model; it runs on auto"),
    ],
    ids=["batch", "precision", "backend"],
)
def test_options_a_temporal_model_cannot_honour_are_refused_in_one_line(tmp_path, clip, options, says):
    if None in options:  # a single-frame backend no temporal engine runs on (the list grows with the engines)
        from upscaler.models import get_model
        from upscaler.runtime import BACKENDS
        from upscaler.runtime.select import backends_for

        others = [b for b in BACKENDS if b not in backends_for(get_model("x4-temporal"))]
        if not others:
            pytest.skip("every backend runs temporal models")
        options, says = [options[0], others[0]], says.format(others[0])
    out = tmp_path / "out.mkv"
    result = run_cli("video", str(clip), "-o", str(out), "--model", "x4-temporal", *options, "-q")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"upscaler: error: {says}"), result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_a_ten_bit_clip_goes_through_the_temporal_model_in_8_bits_and_stays_ten_bit(tmp_path, set5):
    source = make_clip(tmp_path / "in.mkv", frames=6, size=SIZE, pix_fmt="yuv420p10le", audio=False)
    out = tmp_path / "out.mkv"
    result = run_cli("video", str(source), "-o", str(out), "--model", "x4-temporal", "-q")
    assert result.returncode == 0, result.stderr
    assert "temporal models take 8-bit frames" in result.stderr  # said, not silently done
    b = probe(out)
    assert b.bit_depth == 10 and (b.width, b.height) == (SIZE[0] * 4, SIZE[1] * 4)
    assert len(frame_times(out)) == 6


@pytest.fixture(scope="module")
def ray_head():
    """A real local Ray cluster, stopped afterwards."""
    pytest.importorskip("ray")
    with ray_cluster() as head:
        yield head


def test_ray_workers_make_the_frames_of_a_local_temporal_run(tmp_path, clip, ray_head):
    local_out, ray_out = tmp_path / "local.mkv", tmp_path / "ray.mkv"
    common = ["--model", "x4-temporal", "--threads", "1", *LOSSLESS]  # Ray's workers run one thread each
    local = run_cli("video", str(clip), "-o", str(local_out), *common)
    assert local.returncode == 0, local.stderr
    address, auth = ray_head
    summary = tmp_path / "ray.json"
    spread = run_cli("video", str(clip), "-o", str(ray_out), *common, "--ray", address, "--json", str(summary),
                     env=auth, timeout=600)  # fmt: skip
    assert spread.returncode == 0, spread.stderr
    entry = json.loads(summary.read_text())["files"][0]
    assert entry["segments"] == 3 and entry["cuts"] == 1 and entry["precision"] == "fp32"
    assert not _differing(frames_native(local_out), frames_native(ray_out)), "Ray's frames differ from the local run's"
    assert frame_times(local_out) == frame_times(ray_out)


def test_a_job_fed_to_the_temporal_model_otherwise_is_refused_naming_why(tmp_path):
    from upscaler.models import get_model
    from upscaler.video.job import job_identity
    from upscaler.video.probe import VideoError
    from upscaler.video.provenance import MadeBy, write_made_by
    from upscaler.video.workdir import claim

    identity = job_identity(get_model("x4-temporal"))
    assert identity["temporal"]["motion"] == "estimated" and "temporal" not in job_identity(get_model("x4-fast"))
    assert identity["temporal"]["flow"] == "dis-medium"  # frames made with another preset are not mixed in
    record = {"version": 3, "input": "/v/in.mp4", "size": 1, "mtime_ns": 1, **identity, "segments": [[0, None]]}
    older = {**record, "temporal": {**identity["temporal"], "cuts": {"method": "an older detector"}}}
    folder = tmp_path / ".out.mkv.upscaler"
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps(older))
    write_made_by(folder, MadeBy("onnxruntime-cpu", "fp32"))
    (folder / "seg-00000.mp4").write_bytes(b"finished work")
    with pytest.raises(VideoError, match=r"another temporal setup .* of another version of upscaler"):
        claim(folder, record, tmp_path / "out.mkv", made_by=MadeBy("onnxruntime-cpu", "fp32"))
    assert (folder / "seg-00000.mp4").read_bytes() == b"finished work"


def test_a_video_wider_than_the_temporal_engines_take_is_refused_before_any_work(tmp_path):
    """8192 px wide makes a 32768 px wide output at x4: over the side the temporal engines take (the same limit
    as the library's and the stream's), refused in one line with nothing written."""
    wide = [np.full((16, 8192, 3), 40 * i, np.uint8) for i in range(2)]
    source = make_clip_from(tmp_path / "wide.mp4", wide)
    out = tmp_path / "out.mkv"
    result = run_cli("video", str(source), "-o", str(out), "--model", "x4-temporal", "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "8192x16 frame at x4 makes a 32768x64 output" in result.stderr and "at most 32766 px" in result.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name not in ("wide.mp4",)]
