"""The video CLI on real clips made with PyAV: fidelity, resume after kill -9 and Ctrl-C, Ray, bad inputs.

No test here depends on how fast the machine is: a job to interrupt runs under ``video_launcher``,
which holds it at a known point (after N finished segments) until the test's signal arrives.
"""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.video_helpers import (
    audio_payloads,
    frame_times,
    frames_rgb,
    make_audio_only,
    make_clip,
    ray_cluster,
    subtitle_cues,
    subtitle_payloads,
    video_packets,
    video_span,
)
from upscaler.video.probe import VideoError, constant_rate, probe
from upscaler.video.provenance import MadeBy, MixedEngines, write_made_by
from upscaler.video.segments import plan_segments
from upscaler.video.workdir import claim

LAUNCHER = Path(__file__).with_name("video_launcher.py")
#: How long a held job may take to reach its hold: only a guard against a hang, never a race
HOLD_TIMEOUT = 300
#: Pinned in every child process (and the Ray cluster): left to the engine, the CPU precision is chosen by
#: measuring, which varies with load and with --threads (a local run and Ray's one-thread workers), and
#: these tests compare frames across runs.
PINNED = {"UPSCALER_CPU_PRECISION": "fp32"}


@pytest.fixture(scope="module", autouse=True)
def pinned_precision():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in PINNED.items():
            patch.setenv(name, value)
        yield


def _check_faithful(source: Path, output: Path, scale: int = 4) -> None:
    a, b = probe(source), probe(output)
    assert (b.width, b.height) == (a.width * scale, a.height * scale)
    times_in, times_out = frame_times(source), frame_times(output)
    assert len(times_in) == len(times_out)
    assert max(abs(x - y) for x, y in zip(times_in, times_out)) < 0.001  # Matroska keeps milliseconds
    assert audio_payloads(source) == audio_payloads(output)
    frame = 1 / float(a.rate or 25)
    assert abs(video_span(source) - video_span(output)) <= frame + 1e-6
    dts = [d for _, d in video_packets(output) if d is not None]
    assert all(x < y for x, y in itertools.pairwise(dts))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_clip_with_audio_comes_out_4x_with_every_frame_time_and_audio_packet(tmp_path, suffix):
    source = make_clip(tmp_path / f"in{suffix}", frames=30, vfr=True)
    out = tmp_path / f"out{suffix}"
    batch = "--batch" if suffix == ".mp4" else "--batch-size"  # one option, two names
    result = run_cli("video", str(source), "-o", str(out), "--segment-seconds", "1", batch, "2", "-q")
    assert result.returncode == 0, result.stderr
    _check_faithful(source, out)
    sr, lr = frames_rgb(out)[5].astype(float), frames_rgb(source)[5].astype(float)
    assert abs(sr.mean() - lr.mean()) < 4  # the same picture, 4x larger
    assert not list(tmp_path.glob(".*"))  # no work folder or partial file left


def test_ten_bit_rotation_colour_tags_and_subtitles_are_kept(tmp_path):
    source = make_clip(tmp_path / "in.mkv", frames=20, pix_fmt="yuv420p10le", rotation=90, colour=(1, 1, 1, 1),
                       subtitles=True)  # fmt: skip
    out = tmp_path / "out.mkv"
    assert run_cli("video", str(source), "-o", str(out), "-q").returncode == 0
    b = probe(out)
    assert b.pix_fmt == "yuv420p10le" and b.bit_depth == 10
    assert b.rotation == 90 and (b.color_primaries, b.color_trc, b.colorspace, b.color_range) == (1, 1, 1, 1)
    assert subtitle_payloads(out) == subtitle_payloads(source) and len(subtitle_payloads(out)) == 3
    _check_faithful(source, out)


def test_segments_are_keyframe_aligned_and_cover_everything():
    keys = [0, 10, 20, 30, 45, 60]
    plan = plan_segments(keys, Fraction(1, 10), 2.0)  # 2 s at 10 ticks a second: cut every 20 ticks or more
    assert [(s.start, s.end) for s in plan[1:]] == [(20, 45), (45, None)]
    assert plan[0].end == 20 and plan[0].start < 0  # the first also takes frames before the first keyframe
    assert [s.seek for s in plan] == [0, 10, 30]  # decoding starts one keyframe early (open GOPs)
    assert len(plan_segments([], Fraction(1, 10), 2.0)) == 1
    with pytest.raises(ValueError):
        plan_segments(keys, Fraction(1, 10), 0)


def test_constant_rate_is_told_from_the_frame_times_not_the_header():
    assert constant_rate([0, 2, 4, 6], Fraction(1, 48), Fraction(24))
    assert constant_rate([0, 42, 83, 125, 167], Fraction(1, 1000), Fraction(24))  # a millisecond clock rounds
    assert not constant_rate([0, 1, 3, 4, 6], Fraction(1, 48), Fraction(24))  # what Matroska may call 24 fps
    assert not constant_rate([0, 2, 4, 6], Fraction(1, 48), None) and not constant_rate([0], Fraction(1, 48), 24)


#: A job record as ``prepare_job`` writes it
RECORD = {"version": 3, "input": "/videos/in.mp4", "size": 1000, "mtime_ns": 1, "model": "x4-fast",
          "encode": {"codec": "libx264", "crf": 18, "preset": None, "pix_fmt": None, "threads": 1},
          "segment_s": 10.0, "segments": [[0, 240], [240, None]]}  # fmt: skip
ENGINE = MadeBy("onnxruntime-cpu", "fp32")


def _unfinished_job(folder: Path, record: dict = RECORD, engine: MadeBy | None = ENGINE) -> bytes:
    """A work folder as an interrupted run leaves it: its record, its engine, one finished segment, one partial."""
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps(record))
    if engine:
        write_made_by(folder, engine)
    (folder / "seg-00000.mp4").write_bytes(b"two minutes of work")
    (folder / "seg-00001.part.mp4").write_bytes(b"half")
    return (folder / "job.json").read_bytes()


def test_an_unfinished_job_is_continued_refused_or_discarded_only_as_asked(tmp_path):
    target = tmp_path / "out.mp4"
    folder = tmp_path / ".out.mp4.upscaler"
    record = _unfinished_job(folder)
    for unfinished in ("keep", "replace"):  # it matches: continued, --overwrite or not
        kept = claim(folder, RECORD, target, unfinished=unfinished, made_by=ENGINE)
        assert kept.made_by == ENGINE and _finished(folder) == ["seg-00000.mp4"]
        assert kept.notes == [f"{target}: continuing the unfinished job there, 1 of 2 segments are finished "
                              "(add --restart to discard them)"]  # fmt: skip
    assert claim(folder, RECORD, target).made_by == ENGINE  # a Ray driver: the workers' engines are checked later
    assert claim(folder, RECORD, target, unfinished="resume", made_by=ENGINE).notes == []  # asked for: no news
    other = {**RECORD, "encode": {**RECORD["encode"], "crf": 30, "preset": "slow"}, "segment_s": 2.0}
    with pytest.raises(VideoError, match="--restart to discard"):
        claim(folder, other, target, unfinished="resume", made_by=ENGINE)  # --resume never discards either
    with pytest.raises(VideoError) as refused:
        claim(folder, other, target, made_by=ENGINE)
    assert "1 of 2 segments finished" in str(refused.value) and "--restart to discard" in str(refused.value)
    assert "(--crf 18, --preset default, --segment-seconds 10)" in str(refused.value)  # what continues it
    for changed, why in ((dict(mtime_ns=2), "input has changed"), (dict(version=2), "another version"),
                         (dict(model="x2-fast"), "--model x4-fast")):  # fmt: skip
        with pytest.raises(VideoError, match=why):
            claim(folder, {**RECORD, **changed}, target, made_by=ENGINE)
    with pytest.raises(MixedEngines, match=r"--backend onnxruntime-cpu --precision fp32.*--restart"):
        claim(folder, RECORD, target, made_by=MadeBy("torch-cpu", "fp32"))
    assert _finished(folder) == ["seg-00000.mp4"] and (folder / "job.json").read_bytes() == record  # nothing lost
    replaced = claim(folder, other, target, unfinished="replace", made_by=ENGINE)  # --overwrite: it cannot go on
    assert replaced.made_by is None and not _finished(folder) and json.loads((folder / "job.json").read_text()) == other
    note = replaced.notes[0]
    assert "discarded the unfinished job there, 1 of 2 segments finished (--overwrite: it was made with" in note
    shutil.rmtree(folder)
    _unfinished_job(folder)
    restarted = claim(folder, RECORD, target, unfinished="restart", made_by=ENGINE)  # --restart: even a match
    assert not list(folder.glob("seg-*")) and "(--restart)" in restarted.notes[0]


def test_work_folders_without_finished_segments_or_records_are_handled_without_loss(tmp_path):
    target = tmp_path / "out.mp4"
    folder = tmp_path / ".out.mp4.upscaler"
    _unfinished_job(folder, engine=None)  # segments with no record of their engine: never joined blindly
    with pytest.raises(VideoError, match="does not record which engine"):
        claim(folder, RECORD, target, made_by=ENGINE)
    (folder / "job.json").write_text("{truncated")
    with pytest.raises(VideoError, match="missing or unreadable"):
        claim(folder, RECORD, target)
    assert _finished(folder) == ["seg-00000.mp4"]
    (folder / "seg-00000.mp4").unlink()  # nothing finished: nothing to lose, so a stale folder is reset quietly
    fresh = claim(folder, {**RECORD, "model": "x2-fast"}, target)
    assert fresh.notes == [] and json.loads((folder / "job.json").read_text())["model"] == "x2-fast"


def _launch(marker: Path, segments: int, args: list[str], worker_pythonpath: Path | None = None) -> list[str]:
    """The command that runs ``upscaler ARGS`` held after ``segments`` finished segments (``video_launcher``)."""
    extra = ["--worker-pythonpath", str(worker_pythonpath)] if worker_pythonpath else []
    return [sys.executable, str(LAUNCHER), str(marker), str(segments), *extra, "--", *args]


@pytest.fixture
def start_held(tmp_path):
    """``start_held(args, segments=N, log="run")``: start ``upscaler ARGS`` and return once it holds with N segments
    finished (its output in ``tmp_path/<log>.log``); any process still there at the end is killed."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], *, segments: int, env: dict | None = None, log: str = "run") -> subprocess.Popen:
        marker, log_path = tmp_path / f"{log}.held", tmp_path / f"{log}.log"
        with open(log_path, "w") as out:
            proc = subprocess.Popen(_launch(marker, segments, args), stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})})  # fmt: skip
        started.append(proc)
        deadline = time.monotonic() + HOLD_TIMEOUT
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"exited with {proc.returncode} before holding:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"never held within {HOLD_TIMEOUT} s:\n{log_path.read_text()}")
            time.sleep(0.02)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _finished(work: Path) -> list[str]:
    return sorted(p.name for p in work.glob("seg-*[0-9].mp4"))


def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path, start_held):
    source = make_clip(tmp_path / "in.mp4", frames=360, size=(96, 64), fps=24, gop=12)
    # lossless (--crf 0): frames must then be equal exactly, whatever choices a lossy encoder makes
    common = ["--segment-seconds", "1", "--preset", "medium", "--crf", "0", "-q"]
    whole = tmp_path / "whole.mkv"
    assert run_cli("video", str(source), "-o", str(whole), *common).returncode == 0
    out = tmp_path / "out.mkv"
    work = tmp_path / ".out.mkv.upscaler"
    proc = start_held(["video", str(source), "-o", str(out), *common], segments=2)
    os.kill(proc.pid, signal.SIGKILL)  # mid-way through the third segment
    proc.wait()
    assert _finished(work) == ["seg-00000.mp4", "seg-00001.mp4"] and not out.exists()  # whole segments only
    summary = tmp_path / "summary.json"
    result = run_cli("video", str(source), "-o", str(out), *common, "--resume", "--json", str(summary))
    assert result.returncode == 0, result.stderr
    entry = json.loads(summary.read_text())["files"][0]
    assert entry["status"] == "done" and entry["resumed_segments"] == 2 and entry["frames"] == 360
    # fps counts only the frames this run made: the reused ones (two 1 s segments at 24 fps) are reported apart
    assert entry["reused_frames"] == 48
    assert entry["fps"] == round((360 - 48) / entry["seconds"], 2)
    first, second = frames_rgb(whole), frames_rgb(out)
    assert len(first) == len(second) == 360
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
    assert frame_times(whole) == frame_times(out) and not work.exists()


def test_bad_inputs_fail_one_line_each_and_the_rest_still_run(tmp_path):
    good = make_clip(tmp_path / "good.mp4", frames=12)
    (tmp_path / "text.mp4").write_text("not a video")
    audio_only = make_audio_only(tmp_path / "tone.m4a")
    out = tmp_path / "out"
    summary = tmp_path / "s.json"
    inputs = [str(good), str(tmp_path / "text.mp4"), str(audio_only), str(tmp_path / "missing.mp4")]
    result = run_cli("video", *inputs, "-o", str(out), "-q", "--json", str(summary))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert any("not a video file" in line for line in lines) and any("no video stream" in line for line in lines)
    assert any("no such file" in line for line in lines)
    statuses = [f["status"] for f in json.loads(summary.read_text())["files"]]
    assert statuses == ["done", "failed", "failed", "failed"] and (out / "good.mp4").is_file()


def test_unsupported_codec_unwritable_output_and_the_input_itself_are_refused(tmp_path):
    good = make_clip(tmp_path / "good.mp4", frames=8)
    result = run_cli("video", str(good), "-o", str(tmp_path / "x.mp4"), "--codec", "no-such-codec", "-q")
    assert result.returncode == 1 and "unsupported codec" in result.stderr and not (tmp_path / "x.mp4").exists()
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = run_cli("video", str(good), "-o", str(blocker / "sub"), "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    before = good.read_bytes()
    result = run_cli("video", str(good), "-o", str(good), "--overwrite", "-q")
    assert result.returncode == 1 and "overwrite the input" in result.stderr and good.read_bytes() == before
    result = run_cli("video", str(good), "-o", str(tmp_path / "y.mp4"), "-q")
    again = run_cli("video", str(good), "-o", str(tmp_path / "y.mp4"))
    assert result.returncode == 0 and again.returncode == 0 and "skipped" in again.stdout


def test_avi_frames_get_their_display_times_in_order(tmp_path):
    """AVI stores no presentation order: decoded frame stamps come out permuted; ours are sorted."""
    source = make_clip(tmp_path / "in.avi", frames=20)
    stamps = frame_times(source)
    assert stamps != sorted(stamps)  # the container really lacks the order
    out = tmp_path / "out.mkv"
    result = run_cli("video", str(source), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert max(abs(x - y) for x, y in zip(sorted(stamps), frame_times(out))) < 0.001
    assert audio_payloads(source) == audio_payloads(out) and len(frame_times(out)) == 20


@pytest.fixture(scope="module")
def ray_head(pinned_precision):
    """A real local Ray cluster, started with the pinned precision in its environment; stopped afterwards."""
    with ray_cluster() as head:
        yield head


def test_ray_spreads_segments_of_several_videos_and_matches_one_process(tmp_path, ray_head):
    a = make_clip(tmp_path / "a.mp4", frames=40, gop=6)
    b = make_clip(tmp_path / "b.mkv", frames=30, subtitles=True, gop=6)
    common = ["--segment-seconds", "1", "--crf", "0", "-q"]  # lossless: equal frames mean the same pipeline
    local = run_cli("video", str(a), str(b), "-o", str(tmp_path / "local"), "--threads", "1", *common)
    assert local.returncode == 0, local.stderr
    summary = tmp_path / "ray.json"
    address, auth = ray_head
    spread = run_cli("video", str(a), str(b), "-o", str(tmp_path / "ray"), "--ray", address, "--json", str(summary),
                     *common, env=auth, timeout=600)  # fmt: skip
    assert spread.returncode == 0, spread.stderr
    files = json.loads(summary.read_text())["files"]
    assert [f["status"] for f in files] == ["done", "done"] and all(f["segments"] > 1 for f in files)
    for name in ("a.mp4", "b.mkv"):
        one, many = tmp_path / "local" / name, tmp_path / "ray" / name
        differing = [i for i, (x, y) in enumerate(zip(frames_rgb(one), frames_rgb(many), strict=True))
                     if not np.array_equal(x, y)]  # fmt: skip
        assert not differing, f"{name}: frames {differing} differ from the single-process run"
        assert frame_times(one) == frame_times(many) and audio_payloads(many) == audio_payloads(one)
    assert subtitle_payloads(tmp_path / "ray" / "b.mkv") == subtitle_payloads(b)


def _without(package: str, folder: Path) -> Path:
    """A folder whose ``sitecustomize`` makes ``package`` unimportable: put it on PYTHONPATH."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] == {package!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    return folder


def test_without_ray_nothing_of_ray_is_imported(tmp_path):
    shim = _without("ray", tmp_path / "shim")
    clip = make_clip(tmp_path / "a.mp4", frames=8)
    env = {"PYTHONPATH": str(shim)}
    assert run_cli("video", str(clip), "-o", str(tmp_path / "out.mp4"), "-q", env=env).returncode == 0
    result = run_cli("video", str(clip), "-o", str(tmp_path / "r.mp4"), "--ray", "local", "-q", env=env)
    assert result.returncode == 2 and "pip install 'upscaler[ray]'" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "r.mp4").exists()


def test_ctrl_c_says_how_to_go_on_and_the_same_command_continues_without_losing_work(tmp_path, start_held):
    source = make_clip(tmp_path / "in.mp4", frames=96, size=(96, 64), fps=24, gop=12)  # four 1 s segments
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.upscaler"
    command = ["video", str(source), "-o", str(out), "--segment-seconds", "1", "-q"]
    # held in the engine call of the third segment: decoder and encoder threads live, as for a real Ctrl-C
    proc = start_held(command, segments=2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=HOLD_TIMEOUT) == 130
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log and len(log.strip().splitlines()) == 1, log
    assert "upscaler: interrupted; 2 of 4 segments are finished and kept" in log
    assert "run the same command again (or add --resume) to continue" in log
    assert not out.exists() and not list(tmp_path.glob(".out.part*"))
    kept = _finished(work)
    assert kept == ["seg-00000.mp4", "seg-00001.mp4"]
    summary = tmp_path / "summary.json"
    result = run_cli(*command, "--json", str(summary))  # the same command: no --resume
    assert result.returncode == 0, result.stderr
    assert "2 of 4 segments are finished" in result.stderr and "--restart" in result.stderr  # says it goes on
    entry = json.loads(summary.read_text())["files"][0]
    assert entry["resumed_segments"] == 2 and entry["reused_frames"] == 48 and entry["frames"] == 96
    assert len(frame_times(out)) == 96 and not work.exists()


def test_sigterm_says_how_to_go_on_as_ctrl_c_does(tmp_path, start_held):
    source = make_clip(tmp_path / "in.mp4", frames=72, size=(96, 64), fps=24, gop=12)  # three 1 s segments
    out = tmp_path / "out.mp4"
    command = ["video", str(source), "-o", str(out), "--segment-seconds", "1", "-q"]
    proc = start_held(command, segments=1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HOLD_TIMEOUT) == 143  # 128 + SIGTERM, as shells report it
    log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in log and len(log.strip().splitlines()) == 1, log
    assert "upscaler: interrupted; 1 of 3 segments are finished and kept" in log
    assert "run the same command again (or add --resume) to continue" in log
    assert not out.exists() and _finished(tmp_path / ".out.mp4.upscaler") == ["seg-00000.mp4"]


@pytest.mark.parametrize("name", ["out.gif", "out.avi", "out.png", "out.mp3"])
def test_an_output_named_for_a_type_not_written_is_refused_with_the_containers(tmp_path, name):
    clip = make_clip(tmp_path / "a.mp4", frames=4)
    result = run_cli("video", str(clip), "-o", str(tmp_path / name), "-q")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and f"cannot write {name[3:]} files" in result.stderr
    assert ".m4v, .mkv, .mov, .mp4, .webm" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]  # no folder named out.gif, nothing else


def test_without_an_output_each_video_goes_beside_its_input_with_the_size_in_its_name(tmp_path):
    """As ``upscale`` does: clip_x4.mp4 beside clip.mp4 (never over it), a folder into folder_x4/; a pattern
    that matches an earlier run's output leaves it out."""
    clips = tmp_path / "clips"
    clips.mkdir()
    clip = make_clip(clips / "a.mp4", frames=4)
    first = run_cli("video", str(clip), "-q")
    assert first.returncode == 0 and len(frames_rgb(clips / "a_x4.mp4")) == 4, first.stderr
    again = run_cli("video", str(clips / "*.mp4"), "--json", str(tmp_path / "s.json"), "-q")
    files = json.loads((tmp_path / "s.json").read_text())["files"]
    assert again.returncode == 0 and [(Path(f["output"]).name, f["status"]) for f in files] == [("a_x4.mp4", "skipped")]
    assert run_cli("video", str(clips), "--outscale", "1.5", "-q").returncode == 0
    assert frames_rgb(tmp_path / "clips_x1.5" / "a.mp4")[0].shape[:2] == (48, 72)
    assert sorted(p.name for p in clips.iterdir()) == ["a.mp4", "a_x4.mp4"]


def test_outputs_that_collide_with_each_other_or_an_input_are_refused_per_file(tmp_path):
    """clip.mkv and clip.ts both name clip_x4.mkv: the second fails, the first is made; an input named as
    another's output is never written over, even with --overwrite."""
    (tmp_path / "in").mkdir()
    mkv = make_clip(tmp_path / "in" / "clip.mkv", frames=4)
    ts = make_clip(tmp_path / "in" / "clip.ts", frames=6)
    result = run_cli("video", str(mkv), str(ts), "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{ts}: output {tmp_path / 'in' / 'clip_x4.mkv'} is also the output of another input" in result.stderr
    assert len(frames_rgb(tmp_path / "in" / "clip_x4.mkv")) == 4  # clip.mkv's, not overwritten by clip.ts's
    taken = make_clip(tmp_path / "in" / "clip_x4.mp4", frames=3)
    mp4 = make_clip(tmp_path / "in" / "clip.mp4", frames=5)
    clash = run_cli("video", str(mp4), str(taken), "--overwrite", "-q")
    assert clash.returncode == 1 and f"{mp4}: output {taken} is another input" in clash.stderr
    assert len(frames_rgb(taken)) == 3


def test_without_an_output_the_current_folder_goes_beside_itself_by_name(tmp_path):
    (tmp_path / "shots").mkdir()
    make_clip(tmp_path / "shots" / "A.MP4", frames=4)  # a camera's upper-case name
    result = run_cli("video", ".", "-q", cwd=tmp_path / "shots")
    assert result.returncode == 0, result.stderr
    assert len(frames_rgb(tmp_path / "shots_x4" / "A.mp4")) == 4
    (tmp_path / "shots" / "A_x4.mp4").write_bytes((tmp_path / "shots_x4" / "A.mp4").read_bytes())
    again = run_cli("video", str(tmp_path / "shots" / "*"), "--json", str(tmp_path / "s.json"), "-q")
    files = json.loads((tmp_path / "s.json").read_text())["files"]
    assert again.returncode == 0 and [Path(f["input"]).name for f in files] == ["A.MP4"]  # A_x4.mp4 left out


def test_a_size_past_the_largest_factor_fails_that_file_alone(tmp_path):
    small = make_clip(tmp_path / "small.mp4", frames=4, size=(48, 32))  # 1000 wide: 20.8x
    large = make_clip(tmp_path / "large.mp4", frames=4, size=(96, 64))  # 10.4x: bicubic past 4x, made
    result = run_cli("video", str(small), str(large), "-o", str(tmp_path / "out"), "--width", "1000", "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{small}: 48x32 to 1000x667 is 20.8438x; at most 16x is taken" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["large.mp4"]


def test_an_output_name_with_another_dot_is_refused_unless_it_ends_as_a_folder(tmp_path):
    """``-o out.xyz`` (no such folder) is no container: refused, saying how to make a folder of that name."""
    clip = make_clip(tmp_path / "a.mp4", frames=4)
    result = run_cli("video", str(clip), "-o", str(tmp_path / "out.xyz"), "-q")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot write .xyz files" in result.stderr and f"{tmp_path / 'out.xyz'}/" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
    made = run_cli("video", str(clip), "-o", f"{tmp_path / 'out.xyz'}/", "-q")
    assert made.returncode == 0 and (tmp_path / "out.xyz" / "a.mp4").is_file(), made.stderr
    folder = run_cli("video", str(clip), "-o", f"{tmp_path / 'out.mkv'}/", "-q")  # a container's name, as a folder
    assert folder.returncode == 0 and (tmp_path / "out.mkv" / "a.mp4").is_file(), folder.stderr


def test_an_unfinished_job_that_does_not_match_is_refused_and_kept_until_restart(tmp_path, start_held):
    source = make_clip(tmp_path / "in.mp4", frames=72, size=(96, 64), fps=24, gop=12)
    out = tmp_path / "out.mkv"
    work = tmp_path / ".out.mkv.upscaler"
    command = ["video", str(source), "-o", str(out), "--segment-seconds", "1", "-q"]
    proc = start_held(command, segments=1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=HOLD_TIMEOUT) == 130
    kept = _segment_bytes(work)
    assert list(kept) == ["seg-00000.mp4"]
    other = run_cli(*command, "--crf", "30")  # other settings: these segments cannot join its output
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert "--crf 18" in other.stderr and "--restart" in other.stderr  # how to continue it, how to discard it
    assert _segment_bytes(work) == kept and not out.exists()
    both = run_cli(*command, "--resume", "--restart")
    assert both.returncode == 2 and "not allowed with" in both.stderr and _segment_bytes(work) == kept
    summary = tmp_path / "summary.json"
    restarted = run_cli(*command, "--crf", "30", "--restart", "--json", str(summary))
    assert restarted.returncode == 0, restarted.stderr
    assert "discarded" in restarted.stderr
    entry = json.loads(summary.read_text())["files"][0]
    assert entry["resumed_segments"] == 0 and entry["reused_frames"] == 0 and entry["frames"] == 72
    assert not work.exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_constant_rate_source_keeps_its_exact_rate(tmp_path, suffix):
    # keyframes every 14 frames: segments start at 7/6 s and 7/3 s, times a millisecond clock cannot hold
    source = make_clip(tmp_path / "in.mp4", frames=72, fps=24, gop=14)
    with av.open(str(source)) as c:
        assert c.streams.video[0].average_rate == 24
    out = tmp_path / f"out{suffix}"
    result = run_cli("video", str(source), "-o", str(out), "--segment-seconds", "1", "-q")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 24
    times_in, times_out = frame_times(source), frame_times(out)
    assert len(times_in) == len(times_out) == 72
    if suffix == ".mp4":  # the same clock as the source: every time exact
        assert times_out == times_in
    else:  # Matroska keeps milliseconds
        assert max(abs(x - y) for x, y in zip(times_in, times_out)) < 0.001


def test_the_progress_bar_counts_reused_frames_but_not_in_its_rate():
    import io

    from tqdm import tqdm

    from upscaler.cli.video import count_reused

    bar = tqdm(total=100, file=io.StringIO(), disable=False, smoothing=0)
    count_reused(bar, 40)
    bar.update(5)
    state = bar.format_dict
    assert state["n"] == 45 and state["initial"] == 40  # the rate is (n - initial) / elapsed: 5 frames
    assert "40 reused" in str(bar)
    bar.close()


def _segment_bytes(work: Path) -> dict[str, bytes]:
    return {name: (work / name).read_bytes() for name in _finished(work)}


@pytest.mark.parametrize(
    ("first", "asked"),
    [
        (["--backend", "torch-cpu"], "--backend torch-cpu --precision fp32"),
        (["--precision", "int8"], "--backend onnxruntime-cpu --precision int8"),
    ],
    ids=["engine", "precision"],
)
def test_resuming_with_another_engine_or_precision_is_refused_and_loses_nothing(tmp_path, start_held, first, asked):
    source = make_clip(tmp_path / "in.mp4", frames=72, size=(96, 64), fps=24, gop=12)
    out = tmp_path / "out.mkv"
    work = tmp_path / ".out.mkv.upscaler"
    common = ["video", str(source), "-o", str(out), "--segment-seconds", "1", "--backend", "cpu", "-q"]
    proc = start_held([*common, *first], segments=1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=HOLD_TIMEOUT) == 130
    kept = _segment_bytes(work)
    assert list(kept) == ["seg-00000.mp4"]
    refused = run_cli(*common, "--resume")  # onnxruntime-cpu fp32 (pinned): not what made the finished segment
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert asked in refused.stderr and "--restart" in refused.stderr  # both ways on, spelled out
    assert _segment_bytes(work) == kept and not out.exists()  # nothing lost, nothing joined
    summary = tmp_path / "summary.json"
    result = run_cli(*common, *asked.split(), "--resume", "--json", str(summary))
    assert result.returncode == 0, result.stderr
    entry = json.loads(summary.read_text())["files"][0]
    assert entry["resumed_segments"] == 1 and f"--backend {entry['engine']} --precision {entry['precision']}" == asked


def test_a_job_goes_on_between_local_and_ray_runs_with_the_same_engine(tmp_path, ray_head, start_held):
    source = make_clip(tmp_path / "in.mp4", frames=96, size=(64, 48), fps=24, gop=12)  # four segments
    common = ["--segment-seconds", "1", "--crf", "0", "-q"]  # lossless: equal frames mean the same pipeline
    whole_summary = tmp_path / "whole.json"
    whole = run_cli("video", str(source), "-o", str(tmp_path / "whole.mkv"), *common, "--json", str(whole_summary))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "out.mkv"
    work = tmp_path / ".out.mkv.upscaler"
    address, auth = ray_head
    job = ["video", str(source), "-o", str(out), *common]
    local = start_held(job, segments=1, log="local")
    local.send_signal(signal.SIGINT)
    assert local.wait(timeout=HOLD_TIMEOUT) == 130
    spread = start_held([*job, "--resume", "--ray", address], segments=1, env=auth, log="ray")  # local -> Ray
    spread.send_signal(signal.SIGINT)
    assert spread.wait(timeout=HOLD_TIMEOUT) == 130, (tmp_path / "ray.log").read_text()
    finished = _finished(work)  # the local one, and whichever the workers finished first
    assert len(finished) == 2 and finished[0] == "seg-00000.mp4" and not out.exists()
    summary = tmp_path / "summary.json"
    result = run_cli(*job, "--resume", "--json", str(summary))  # Ray -> local
    assert result.returncode == 0, result.stderr
    entry, first = (json.loads(p.read_text())["files"][0] for p in (summary, whole_summary))
    assert entry["resumed_segments"] == 2 and entry["frames"] == 96
    assert entry["engine"] and (entry["engine"], entry["precision"]) == (first["engine"], first["precision"])
    one, resumed = frames_rgb(tmp_path / "whole.mkv"), frames_rgb(out)
    assert len(one) == len(resumed) == 96 and all(np.array_equal(x, y) for x, y in zip(one, resumed))


def test_ray_workers_with_another_engine_never_mix_frames_into_a_job(tmp_path, ray_head, start_held):
    source = make_clip(tmp_path / "in.mp4", frames=72, size=(64, 48), fps=24, gop=12)
    out = tmp_path / "out.mkv"
    work = tmp_path / ".out.mkv.upscaler"
    address, auth = ray_head
    job = ["video", str(source), "-o", str(out), "--segment-seconds", "1", "--backend", "cpu", "-q", "--ray", address]
    first = start_held(job, segments=1, env=auth)  # workers as this machine: onnxruntime-cpu fp32
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=HOLD_TIMEOUT) == 130
    kept = _segment_bytes(work)
    assert len(kept) == 1  # whichever segment a worker finished first
    # the same options on workers without ONNX Runtime: their --backend cpu is torch-cpu
    summary = tmp_path / "summary.json"
    unlike = _launch(tmp_path / "never.held", 10**6, [*job, "--resume", "--json", str(summary)],
                     worker_pythonpath=_without("onnxruntime", tmp_path / "no-ort"))  # fmt: skip
    refused = subprocess.run(unlike, env={**os.environ, **auth}, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "torch-cpu fp32" in refused.stderr and "--backend onnxruntime-cpu --precision fp32" in refused.stderr
    assert json.loads(summary.read_text())["files"][0]["status"] == "failed"
    assert _segment_bytes(work) == kept and not list(work.glob("*.part.mp4")) and not out.exists()
    result = run_cli(*job, "--resume", "--json", str(summary), env=auth, timeout=600)  # workers like the first
    assert result.returncode == 0, result.stderr
    entry = json.loads(summary.read_text())["files"][0]
    assert entry["resumed_segments"] == 1 and (entry["engine"], entry["precision"]) == ("onnxruntime-cpu", "fp32")
    assert len(frame_times(out)) == 72 and not work.exists()


def test_any_output_size_for_video(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=6, size=(48, 32))
    sizes = {}
    for name, options in {
        "x3": ["--outscale", "3"],  # x4, then reduced: 144x96
        "x1.5": ["--outscale", "1.5"],  # x2-fast, then reduced: 72x48
        "w100": ["--width", "100"],  # 100 x 66.7 -> 100x66 (even)
        "exact": ["--width", "90", "--height", "40"],
    }.items():
        out = tmp_path / f"{name}.mp4"
        result = run_cli("video", str(clip), "-o", str(out), *options, "-q")
        assert result.returncode == 0, result.stderr
        frames = frames_rgb(out)
        assert len(frames) == 6
        sizes[name] = frames[0].shape[:2]
    assert sizes == {"x3": (96, 144), "x1.5": (48, 72), "w100": (66, 100), "exact": (40, 90)}
    past = run_cli("video", str(clip), "-o", str(tmp_path / "x5.mp4"), "--outscale", "5")
    assert past.returncode == 0 and "a.mp4: 5x is past x4-video's 4x: the rest is bicubic" in past.stderr
    bad = run_cli("video", str(clip), "-o", str(tmp_path / "bad.mp4"), "--outscale", "2", "--height", "9", "-q")
    assert bad.returncode == 2 and "not both" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_width_or_height_of_2x_or_less_runs_the_x2_sibling_per_file(tmp_path):
    """As ``upscale`` and the API do: the smallest model scale at or above what each file is asked for."""
    (tmp_path / "in").mkdir()
    small = make_clip(tmp_path / "in" / "small.mp4", frames=4, size=(48, 32))  # 60 lines: 1.875x -> x2-video
    large = make_clip(tmp_path / "in" / "large.mp4", frames=4, size=(24, 16))  # 3.75x -> x4-video
    summary = tmp_path / "s.json"
    result = run_cli("video", str(small), str(large), "-o", str(tmp_path / "out"), "--height", "60",
                     "--json", str(summary))  # fmt: skip
    assert result.returncode == 0, result.stderr
    models = {Path(f["input"]).name: f["model"] for f in json.loads(summary.read_text())["files"]}
    assert models == {"small.mp4": "x2-video", "large.mp4": "x4-video"}
    assert "small.mp4: 48x32 to 1.88x: x2-video runs, x4-video's x2 sibling" in result.stderr
    assert "past" not in result.stderr
    assert [frames_rgb(tmp_path / "out" / n)[0].shape[:2] for n in ("small.mp4", "large.mp4")] == [(60, 90)] * 2


def test_a_trimmed_job_counts_only_the_frames_it_keeps(tmp_path):
    """The progress bar's total: 48 frames at 12 fps, 1.5 s of them from 1.25 s are 18."""
    from upscaler.video.job import prepare_job
    from upscaler.video.transcode import EncodeSettings

    clip = make_clip(tmp_path / "a.mkv", frames=48, fps=12, gop=8)
    whole = prepare_job(clip, tmp_path / "w.mkv", {}, EncodeSettings())
    cut = prepare_job(clip, tmp_path / "c.mkv", {}, EncodeSettings(start_s=1.25, duration_s=1.5))
    tail = prepare_job(clip, tmp_path / "t.mkv", {}, EncodeSettings(start_s=3.5))
    assert (whole.frames, cut.frames, tail.frames) == (48, 18, 6)


def _audio_times(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.mark.parametrize("segment_s", ["1", "60"])
def test_start_and_duration_trim_video_audio_and_subtitles_to_match(tmp_path, segment_s):
    """48 frames at 12 fps (4 s, a keyframe every 8 frames), audio and three subtitle cues (0, 0.3, 0.6 s):
    --start 0:01.25 --duration 1.5 keeps frames 15-32, from 0, and the audio and cues of that stretch."""
    clip = make_clip(tmp_path / "a.mkv", frames=48, fps=12, gop=8, subtitles=True)
    whole = tmp_path / "whole.mkv"
    assert run_cli("video", str(clip), "-o", str(whole), "-q").returncode == 0
    out = tmp_path / "cut.mkv"
    result = run_cli("video", str(clip), "-o", str(out), "--start", "0:01.25", "--duration", "1.5",
                     "--segment-seconds", segment_s, "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    times = frame_times(out)
    assert len(times) == 18 and times[0] == 0.0 and abs(times[-1] - 17 / 12) < 1e-3  # Matroska: ms
    # the same pictures as the uninterrupted whole's frames 15..32 (each segment starts its own encoder:
    # within the codec's loss of each other)
    ours, theirs = frames_rgb(out), frames_rgb(whole)[15:33]
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() < 3 for a, b in zip(ours, theirs))
    source_audio = [t - 1.25 for t in _audio_times(clip) if 1.25 <= t < 2.75]
    assert _audio_times(out) == pytest.approx(source_audio, abs=1e-3) and len(source_audio) > 5
    assert subtitle_payloads(out) == []  # the cues end before 1.25 s
    early = tmp_path / "early.mkv"
    assert run_cli("video", str(clip), "-o", str(early), "--duration", "0.5", "-q").returncode == 0
    assert len(frame_times(early)) == 6 and [t for t, _ in subtitle_payloads(early)] == pytest.approx([0.0, 0.3])
    on_screen = tmp_path / "on-screen.mkv"  # the cue of 0.3-0.55 s is showing at 0.4: kept, from the start
    assert run_cli("video", str(clip), "-o", str(on_screen), "--start", "0.4", "-q").returncode == 0
    assert [x for cue in subtitle_cues(on_screen) for x in cue] == pytest.approx([0.0, 0.15, 0.2, 0.25])


@pytest.mark.parametrize(
    ("options", "says"),
    [(["--start", "10"], "past the video's last frame"), (["--duration", "0"], "more than 0"),
     (["--start", "-1"], "0 or more"), (["--start", "1:xx"], "[HH:]MM:SS"), (["--start", "1:99"], "[HH:]MM:SS")],
)  # fmt: skip
def test_impossible_trims_are_refused_in_one_line_and_write_nothing(tmp_path, options, says):
    clip = make_clip(tmp_path / "a.mp4", frames=24)
    out = tmp_path / "out.mp4"
    result = run_cli("video", str(clip), "-o", str(out), *options, "-q")
    assert result.returncode != 0 and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_a_fixed_encoder_thread_count_makes_the_same_bytes_run_after_run(tmp_path):
    """x264 with a fixed thread count is deterministic: what makes resumed and --ray segments equal an
    uninterrupted run's, lossy codecs included."""
    clip = make_clip(tmp_path / "a.mp4", frames=24, size=(96, 64), gop=12)
    digests = set()
    for i in range(2):
        out = tmp_path / f"out{i}.mp4"
        command = ["video", str(clip), "-o", str(out), "--segment-seconds", "1", "--encoder-threads", "3", "-q"]
        assert run_cli(*command).returncode == 0
        digests.add(_sha256(out))
    assert len(digests) == 1


def test_the_automatic_encoder_threads_are_the_cores_or_an_unfinished_jobs_own(tmp_path):
    from upscaler.sysinfo import cpu_count
    from upscaler.video.job import MAX_ENCODER_THREADS, encoder_threads
    from upscaler.video.transcode import EncodeSettings
    from upscaler.video.workdir import RECORD

    auto, folder = EncodeSettings(threads=None), tmp_path / ".out.mp4.upscaler"
    assert encoder_threads(auto, folder).threads == min(cpu_count(), MAX_ENCODER_THREADS)
    assert encoder_threads(EncodeSettings(threads=5), folder).threads == 5  # asked for: kept
    folder.mkdir()
    (folder / RECORD).write_text(json.dumps({"encode": asdict(EncodeSettings(threads=7))}))
    assert encoder_threads(auto, folder).threads == 7  # the unfinished job's own: it goes on with it
    assert encoder_threads(auto, folder, auto=2).threads == 7  # on Ray too
    fresh = min(cpu_count(), MAX_ENCODER_THREADS)
    assert encoder_threads(auto, folder, unfinished="restart").threads == fresh  # discarded: not its count
    assert encoder_threads(EncodeSettings(threads=None, crf=30), folder).threads == fresh  # made otherwise
    (folder / RECORD).unlink()
    assert encoder_threads(auto, folder, auto=2).threads == 2  # Ray's tasks fill the cores: 2 each


def test_a_job_resumed_with_automatic_threads_goes_on_with_its_own_count(tmp_path, start_held):
    """Interrupted with --encoder-threads 3, continued with the default (auto): the job's 3 are kept, so the
    output is byte for byte an uninterrupted run's with 3, whatever this machine's cores."""
    source = make_clip(tmp_path / "in.mp4", frames=72, size=(96, 64), fps=24, gop=12)  # three 1 s segments
    out, whole = tmp_path / "out.mp4", tmp_path / "whole.mp4"
    common = ["--segment-seconds", "1", "-q"]
    proc = start_held(["video", str(source), "-o", str(out), *common, "--encoder-threads", "3"], segments=1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=HOLD_TIMEOUT) == 130
    summary = tmp_path / "s.json"
    resumed = run_cli("video", str(source), "-o", str(out), *common, "--json", str(summary))
    assert resumed.returncode == 0, resumed.stderr
    entry = json.loads(summary.read_text())["files"][0]
    assert (entry["resumed_segments"], entry["encoder_threads"]) == (1, 3)
    assert run_cli("video", str(source), "-o", str(whole), *common, "--encoder-threads", "3").returncode == 0
    assert _sha256(out) == _sha256(whole)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
