"""``upscaler upscale``: files, folders, globs, skipping, errors that lose nothing."""

import numpy as np
import pytest

from tests.conftest import run_cli
from upscaler import Upscaler
from upscaler.io import read_image, write_image


@pytest.fixture()
def images(tmp_path, set5):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("bird", "head"):
        write_image(src / f"{name}.png", set5[name][:64, :80])
    write_image(src / "woman.jpg", set5["woman"][:48, :48])
    return src


def one_line(stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in stderr


def test_single_file_matches_the_facade(tmp_path, images):
    out = tmp_path / "bird_x4.png"
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    expected = Upscaler().upscale(read_image(images / "bird.png"))
    np.testing.assert_array_equal(read_image(out), expected)


def test_folder_to_folder_keeps_formats_and_shows_progress_on_a_terminal_only(tmp_path, images):
    out = tmp_path / "out"
    result = run_cli("upscale", str(images), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["bird.png", "head.png", "woman.jpg"]
    assert read_image(out / "woman.jpg").shape == (192, 192, 3)
    # stderr is a pipe here: the summary, no progress bar
    assert result.stderr.strip() == "3 upscaled with x4-fast on onnxruntime-cpu", result.stderr
    assert "3/3" in _on_a_terminal("upscale", str(images), "-o", str(tmp_path / "tty"))


def _on_a_terminal(*args: str) -> str:
    """What ``upscaler ARGS`` writes to stderr when stderr is a terminal (a pseudo-terminal)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    from tests.conftest import cli_command

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen([*cli_command(), *args], stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    return b"".join(chunks).decode(errors="replace")


def test_glob_and_format(tmp_path, images):
    out = tmp_path / "out"
    result = run_cli("upscale", str(images / "*.png"), "-o", str(out), "--format", "webp", "--tile", "32")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["bird.webp", "head.webp"]


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, images):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bird.png").write_bytes(b"keep me")
    result = run_cli("upscale", str(images / "bird.png"), str(images / "head.png"), "-o", str(out))
    assert result.returncode == 0 and "skipped" in result.stderr
    assert (out / "bird.png").read_bytes() == b"keep me" and (out / "head.png").exists()
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(out), "--overwrite")
    assert result.returncode == 0 and read_image(out / "bird.png").shape == (256, 320, 3)


def test_an_input_is_never_overwritten(tmp_path, images):
    before = (images / "bird.png").read_bytes()
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(images / "bird.png"), "--overwrite")
    assert result.returncode == 1 and "refusing to overwrite" in result.stderr
    result = run_cli("upscale", str(images), "-o", str(images), "--overwrite")
    assert result.returncode == 1
    assert (images / "bird.png").read_bytes() == before


def test_a_bad_file_fails_alone(tmp_path, images):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (images / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    result = run_cli("upscale", str(images), "-o", str(out))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("upscaler: error:")]
    assert len(errors) == 2 and "broken.png" in errors[0] + errors[1] and "Traceback" not in result.stderr
    assert not [line for line in lines if "WARN" in line or "ERROR" in line]  # no codec chatter
    assert sorted(p.name for p in out.iterdir()) == ["bird.png", "head.png", "woman.jpg"]  # no partial files


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "-o", "out.png"], "no such file"),
        (["in/bird.png", "-o", "in/bird.png/x.png"], ""),
        (["in/bird.png", "-o", "in/bird.png", "--model", "x9-nope"], "unknown model"),
        (["in/*.gif", "-o", "out"], "no image matches"),
        (["in/bird.png", "in/head.png", "-o", "single.png"], "output folder"),
        (["in/bird.png", "-o", "o.png", "--tile", "-3"], "must not be negative"),
        (["in/bird.png", "-o", "o.png", "--quality", "101"], "1-100"),
        (["in/bird.png", "-o", "o.png", "--format", "jpg"], "contradicts"),
    ],
)
def test_bad_invocations_give_one_line(tmp_path, images, args, message):
    result = run_cli("upscale", *args, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and message in result.stderr
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "out").exists()


def test_directory_as_output_file(tmp_path, images):
    (tmp_path / "taken.png").mkdir()
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(tmp_path / "taken.png"))
    assert result.returncode == 2 and one_line(result.stderr) and "is a directory" in result.stderr
    assert list((tmp_path / "taken.png").iterdir()) == []


def test_rgba_and_16_bit_files(tmp_path, set5):
    rgba = np.dstack([set5["bird"][:40, :40], np.full((40, 40), 90, np.uint8)])
    write_image(tmp_path / "a.png", rgba)
    write_image(tmp_path / "b.png", set5["bird"][:40, :40].astype(np.uint16) * 257)
    result = run_cli("upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    a, b = read_image(tmp_path / "o" / "a.png"), read_image(tmp_path / "o" / "b.png")
    assert a.shape == (160, 160, 4) and np.all(a[..., 3] == 90)
    assert b.dtype == np.uint16 and b.shape == (160, 160, 3)


def test_x2_model(tmp_path, images):
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(tmp_path / "x2.png"), "--model", "x2")
    assert result.returncode == 0, result.stderr
    assert read_image(tmp_path / "x2.png").shape == (128, 160, 3)


def test_outputs_inside_the_input_folder_are_not_upscaled_again(tmp_path, images):
    out = images / "x4"
    assert run_cli("upscale", str(images), "-o", str(out)).returncode == 0
    result = run_cli("upscale", str(images), "-r", "-o", str(out), "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["bird.png", "head.png", "woman.jpg"]


def test_the_same_input_twice_is_done_once(tmp_path, images):
    bird = str(images / "bird.png")
    result = run_cli("upscale", bird, bird, str(images / "*.png"), "-o", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["bird.png", "head.png"]


def test_a_bad_input_argument_does_not_stop_the_others(tmp_path, images):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("upscale", str(empty), str(images / "bird.png"), "-o", str(tmp_path / "o"))
    assert result.returncode == 1 and "holds no images" in result.stderr
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["bird.png"]


def test_unwritable_output_folder_fails_before_any_work(tmp_path, images):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "file").write_text("x")
    result = run_cli("upscale", str(images / "bird.png"), str(images / "head.png"), "-o", str(locked / "file" / "o"))
    assert result.returncode == 1 and result.stderr.count("cannot write to") == 2


@pytest.mark.parametrize("name", ["out.tif", "out.bmp", "out.gif"])
def test_unwritable_image_names_are_refused(tmp_path, images, name):
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(tmp_path / name))
    assert result.returncode == 2 and "cannot write" in result.stderr and not (tmp_path / name).exists()


def test_jpeg_is_accepted_as_well_as_jpg(tmp_path, images):
    """The service says format=jpeg; the CLI takes both spellings."""
    out = tmp_path / "out"
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(out), "--format", "jpeg")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["bird.jpg"]
    for fmt, name in (("jpeg", "a.jpg"), ("jpg", "b.jpeg")):
        result = run_cli("upscale", str(images / "bird.png"), "-o", str(tmp_path / name), "--format", fmt)
        assert result.returncode == 0, result.stderr
        assert read_image(tmp_path / name).shape == (256, 320, 3)


@pytest.mark.parametrize("command", ["upscale", "video", "bench"])
def test_batch_size_has_one_name_in_help_and_batch_as_its_alias(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "--batch-size N" in text and "alias: --batch)" in text
    assert "--batch N" not in text and "--batch BATCH" not in text  # the alias is not a second option


def test_batch_and_batch_size_both_work(tmp_path, images):
    for flag, name in (("--batch", "a.png"), ("--batch-size", "b.png")):
        result = run_cli("upscale", str(images / "bird.png"), "-o", str(tmp_path / name), flag, "2", "--tile", "32")
        assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png"))
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(tmp_path / "c.png"), "--batch", "0")
    assert result.returncode == 2 and "--batch" in result.stderr and "at least 1" in result.stderr


def test_without_an_output_each_result_goes_beside_its_input_and_never_over_a_file(tmp_path, images):
    result = run_cli("upscale", str(images / "bird.png"), str(images / "woman.jpg"))
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(
        read_image(images / "bird_x4.png"), Upscaler().upscale(read_image(images / "bird.png"))
    )
    assert read_image(images / "woman_x4.jpg").shape == (192, 192, 3)
    (images / "head_x4.png").write_bytes(b"keep me")
    again = run_cli("upscale", str(images / "*.png"))  # the pattern also matches bird_x4.png: not an input
    assert again.returncode == 0, again.stderr
    assert (images / "head_x4.png").read_bytes() == b"keep me" and "use --overwrite" in again.stderr
    assert not (images / "bird_x4_x4.png").exists()
    (images / "head_x4.png").unlink()
    folder = run_cli("upscale", str(images), "--model", "x2-fast", "--format", "webp")  # a folder: a sibling folder
    assert folder.returncode == 0, folder.stderr
    assert sorted(p.name for p in (tmp_path / "in_x2").iterdir()) == [
        "bird.webp", "bird_x4.webp", "head.webp", "woman.webp", "woman_x4.webp"
    ]  # fmt: skip


def test_any_output_size_runs_the_smallest_model_at_or_above_it_then_resamples(tmp_path, images):
    from upscaler.outsize import fit

    bird = read_image(images / "bird.png")  # 80 x 64
    x4, x2 = Upscaler("x4-fast").upscale(bird), Upscaler("x2-fast").upscale(bird)

    def run(*options: str) -> tuple[np.ndarray, str]:
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}.png"
        result = run_cli("upscale", str(images / "bird.png"), "-o", str(out), *options)
        assert result.returncode == 0, result.stderr
        return read_image(out), result.stderr

    same, _ = run("--outscale", "4")  # the model's own scale: the model's output, exactly
    np.testing.assert_array_equal(same, x4)
    three, said = run("--outscale", "3")
    assert three.shape == (192, 240, 3) and "x4-fast" in said and "past the model's scale" not in said
    np.testing.assert_array_equal(three, fit(x4, 240, 192))
    half, said = run("--outscale", "1.5")  # at most 2: x4-fast's x2 sibling
    assert half.shape == (96, 120, 3) and "x2-fast" in said and "x4-fast" not in said
    np.testing.assert_array_equal(half, fit(x2, 120, 96))
    two, _ = run("--outscale", "2")
    np.testing.assert_array_equal(two, x2)  # x2-fast's own output, as if asked for by name
    wide, _ = run("--width", "200")  # the aspect ratio kept: 64 * 200 / 80 = 160
    assert wide.shape == (160, 200, 3)
    exact, _ = run("--width", "300", "--height", "100")
    assert exact.shape == (100, 300, 3)
    tall, _ = run("--height", "96")
    assert tall.shape == (96, 120, 3)
    six, said = run("--outscale", "6")  # past x4: the summary says the rest was interpolated
    assert six.shape == (384, 480, 3) and "(1 past the model's scale: bicubic beyond it)" in said


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--outscale", "2", "--width", "10"], "not both"),
        (["--outscale", "20"], "at most 16"),
        (["--outscale", "0"], "above 0"),
        (["--width", "5000"], "at most 16x"),
    ],
)
def test_impossible_output_sizes_are_refused_in_one_line(tmp_path, images, options, says):
    out = tmp_path / "out.png"
    result = run_cli("upscale", str(images / "bird.png"), "-o", str(out), *options)
    assert result.returncode != 0 and says in result.stderr, result.stderr
    assert not out.exists()
    if "--width" not in options or "--outscale" in options:
        assert one_line(result.stderr), result.stderr


def test_without_an_output_the_name_says_the_size_asked_for(tmp_path, images):
    result = run_cli("upscale", str(images / "bird.png"), "--outscale", "1.5", "-q")
    assert result.returncode == 0 and read_image(images / "bird_x1.5.png").shape == (96, 120, 3)
    result = run_cli("upscale", str(images / "bird.png"), "--width", "100", "-q")
    assert result.returncode == 0 and read_image(images / "bird_w100.png").shape == (80, 100, 3)


def test_a_weights_file_named_by_no_registry_upscales(tmp_path, photo):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from upscaler.models import WEIGHTS_DIR

    shipped = WEIGHTS_DIR / "x4-fast.safetensors"
    with safe_open(str(shipped), "np") as f:
        metadata = {**f.metadata(), "name": "my-candidate"}
    weights = tmp_path / "candidate.safetensors"
    save_file(load_file(str(shipped)), str(weights), metadata=metadata)
    write_image(tmp_path / "in.png", photo[:32, :40])
    result = run_cli("upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "-m", str(weights))
    assert result.returncode == 0, result.stderr
    assert "my-candidate" in result.stderr and read_image(tmp_path / "out.png").shape == (128, 160, 3)


@pytest.mark.parametrize("value", ["-5", "0", "1.5"])
def test_a_bad_option_value_is_one_line_naming_help(tmp_path, value):
    """argparse's own refusals too: one line (not the usage block first), exit 2."""
    result = run_cli("upscale", str(tmp_path / "a.png"), "--width", value)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "argument --width" in result.stderr and "(see upscaler upscale -h)" in result.stderr


def test_an_unknown_option_points_to_its_commands_help(tmp_path):
    result = run_cli("upscale", str(tmp_path / "a.png"), "--bogus", "1")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "unrecognized arguments: --bogus 1 (see upscaler upscale -h)" in result.stderr
