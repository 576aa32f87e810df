"""The training pipeline: degradations, paired folders, fine-tuning, TensorBoard, DDP, a killed run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import cli_command, run_cli, write_config
from training.config import ConfigError, load_config
from training.degrade import MARGIN, jpeg_like, make_pair
from training.trainer import Trainer
from upscaler import Upscaler
from upscaler.degradations import bicubic, point_sample
from upscaler.io import write_image
from upscaler.models import get_model


def _crop_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).copy())[None]


def test_render_pairs_are_point_samples_at_the_drawn_phase(photo):
    scale, size = 4, 96
    crop = photo[:size, :size]
    lr, hr = make_pair(_crop_tensor(crop), scale, "render")
    expected = point_sample(crop, scale)[MARGIN:-MARGIN, MARGIN:-MARGIN]
    assert np.array_equal((lr[0].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8), expected)
    batch = _crop_tensor(crop).repeat(8, 1, 1, 1)
    a, _ = make_pair(batch, scale, "render", jitter=3, generator=torch.Generator().manual_seed(5))
    b, _ = make_pair(batch, scale, "render", jitter=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)  # reproducible from the seed
    phases = {tuple(a[i].flatten()[:50].tolist()) for i in range(8)}
    assert len(phases) > 1  # but not one phase for every crop
    assert hr.shape[-1] == lr.shape[-1] * scale


def test_video_pairs_mix_kernels_noise_and_compression(photo):
    batch = _crop_tensor(photo[:96, :96]).repeat(6, 1, 1, 1)
    a, hr = make_pair(batch, 4, "video", generator=torch.Generator().manual_seed(1))
    b, _ = make_pair(batch, 4, "video", generator=torch.Generator().manual_seed(1))
    clean, _ = make_pair(batch, 4, "bicubic")
    assert torch.equal(a, b) and a.shape == clean.shape and hr.shape[-1] == 4 * a.shape[-1]
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, clean)
    assert len({a[i].sum().item() for i in range(6)}) == 6  # each crop degraded its own way


def test_jpeg_like_is_mild_at_high_quality_and_blocky_at_low():
    x = torch.rand(1, 3, 24, 40) * 64 + 96
    assert (jpeg_like(x, torch.tensor([100])) - x).abs().max() < 3
    assert (jpeg_like(x, torch.tensor([10])) - x).abs().mean() > (jpeg_like(x, torch.tensor([90])) - x).abs().mean()


def _paired_folder(root: Path, set5: dict, scale: int = 2) -> Path:
    for name, image in set5.items():
        hr = image[: image.shape[0] - image.shape[0] % scale, : image.shape[1] - image.shape[1] % scale]
        write_image(root / "hr" / f"{name}.png", hr)
        write_image(root / "lr" / f"{name}.png", bicubic(hr, scale))
    return root


def test_paired_folders_train_and_validate(tmp_path, set5):
    pairs = _paired_folder(tmp_path / "data" / "frames", set5)
    config = write_config(
        tmp_path, root=(tmp_path / "data").as_posix(), train="frames", val="frames", degradation="paired", steps=10
    )
    result = run_cli("train", "--config", str(config), "--no-progress")
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "run" / "val.csv").read_text().splitlines()
    assert rows[-1].startswith("10,") and rows[-1].split(",")[2] == "frames"
    # A frame whose sizes do not match the scale is named.
    write_image(pairs / "lr" / "baby.png", set5["baby"][:40, :40])
    result = run_cli("train", "--config", str(config), "--no-progress", "--restart")
    assert result.returncode == 2 and "baby" in result.stderr and "x2" in result.stderr


@pytest.mark.parametrize("extra_blocks", [0, 2], ids=["same-network", "deeper"])
def test_fine_tuning_starts_from_the_shipped_model(tmp_path, photo, extra_blocks):
    model = get_model("x2-fast")
    ours = {**model.params, "blocks": model.params["blocks"] + extra_blocks}
    params = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in ours.items()) + ", rep = true }"
    config = load_config(write_config(tmp_path, params=params, init="x2-fast", steps=6))
    trainer = Trainer(config, progress=False)
    x = torch.from_numpy(photo[:40, :48].transpose(2, 0, 1).copy()).float().div(255)[None]
    with torch.no_grad():
        start = trainer.ema(x)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    shipped = Upscaler("x2-fast", backend="torch").upscale(photo[:40, :48])
    assert np.abs(start.astype(int) - shipped.astype(int)).max() <= 1
    trainer.run()
    weights = tmp_path / "run" / "model.safetensors"
    meta = get_model(weights)
    assert meta.params == {**ours, "tail": 3} and meta.training["init"] == "x2-fast"
    assert (tmp_path / "run" / "tb").is_dir() and any((tmp_path / "run" / "tb").iterdir())


def test_fine_tuning_a_different_network_is_refused_in_one_line(tmp_path):
    result = run_cli("train", "--config", str(write_config(tmp_path)), "--init", "x2-fast")
    assert result.returncode == 2 and "model.init" in result.stderr and "channels" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    result = run_cli("train", "--config", str(write_config(tmp_path)), "--init", "no-such-model")
    assert result.returncode == 2 and "model.init" in result.stderr
    shallower = '{ channels = 32, blocks = 3, act = "relu", base = "bilinear" }'  # x2-fast has 4
    result = run_cli("train", "--config", str(write_config(tmp_path, params=shallower)), "--init", "x2-fast")
    assert result.returncode == 2 and "model.init" in result.stderr and "blocks" in result.stderr


@pytest.mark.parametrize(
    ("extra", "field"),
    [("jitter = 4", "data.jitter"), ('degradation = "blurry"', "data.degradation")],
)
def test_bad_degradation_settings_name_the_field(tmp_path, extra, field):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\n[model]\nscale = 4\n[data]\ntrain = ["a"]\n{extra}\n')
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(path)


def test_two_process_ddp_run_agrees_with_itself_and_a_single_process(tmp_path):
    ddp = write_config(tmp_path, name="ddp", steps=12, ckpt=6)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "upscaler",
        "train",
        "--config",
        str(ddp),
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "ddp" / "ddp.json").read_text())
    assert record["world_size"] == 2 and record["step"] == 12 and len(set(record["digests"])) == 1
    single = run_cli("train", "--config", str(write_config(tmp_path, name="single", steps=12, ckpt=6)), "--no-progress")
    assert single.returncode == 0, single.stderr
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "model.safetensors"))
    for key in a:  # the same global batch, gradients averaged: equal up to summation order
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-4)


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    straight = write_config(tmp_path, name="straight", steps=40, ckpt=4)
    killed = write_config(tmp_path, name="killed", steps=40, ckpt=4)
    assert run_cli("train", "--config", str(straight), "--no-progress").returncode == 0
    proc = subprocess.Popen(
        [*cli_command(), "train", "--config", str(killed), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = tmp_path / "killed" / "last.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=False)["step"] >= 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(checkpoint, weights_only=False)["step"]
    assert 0 < step < 40, "the run must be killed part-way"
    resumed = run_cli("train", "--config", str(killed), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    steps = [int(r.split(",")[0]) for r in (tmp_path / "killed" / "train.csv").read_text().splitlines()[1:]]
    assert steps == list(range(5, 41, 5))  # no row lost or repeated across the kill


def test_data_loading_workers_do_not_change_the_result(tmp_path):
    config = write_config(tmp_path, steps=8)
    assert run_cli("train", "--config", str(config), "--no-progress").returncode == 0
    result = run_cli("train", "--config", str(config), "--no-progress", "--workers", "2", "--out", str(tmp_path / "w"))
    assert result.returncode == 0, result.stderr
    a = load_file(str(tmp_path / "run" / "model.safetensors"))
    b = load_file(str(tmp_path / "w" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
