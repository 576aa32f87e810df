"""Training v1: config validation, schedule, data, degradation on the device, and real tiny runs."""

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_cli, write_config
from training.config import ConfigError, load_config, validate_config
from training.data import DeviceCrops, HRCrops, augment
from training.degrade import MARGIN, make_pair
from training.trainer import Trainer, lr_at
from upscaler import Upscaler
from upscaler.degradations import bicubic


def tiny_config(tmp_path: Path, steps: int = 20, out: str = "run") -> Path:
    return write_config(tmp_path, name=out, steps=steps)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nscale = 4", "name"),
        ('name = "x"\n[modle]\n', "unknown section"),
        ('name = "x"\n[data]\ntrain = ["a"]\nbatchsize = 3', "unknown key"),
        ('name = "x"\n[data]\ntrain = ["a"]\n[optim]\nsteps = "many"', "integer"),
        ('name = "x"\n[data]\ntrain = ["a"]\n[optim]\nsteps = 10\nwarmup_steps = 20', "warmup"),
        ('name = "x"\n[optim]\nsteps = 10', "data.train"),
        ('name = "x"\n[data\n', "TOML"),
        ('name = "x"\n[data]\ntrain = ["a"]\n[optim]\nbetas = [0.9]', "betas"),
        ('name = "x"\n[data]\ntrain = ["a"]\n[model]\narch = "unet"', "model.arch"),
        ('name = "x"\n[data]\ntrain = ["a"]\n[model]\nparams = { act = "gelu" }', "model.params"),
        ('name = "x"\n[data]\ntrain = ["a"]\ndegradation = "jpeg"', "data.degradation"),
        ('name = "x"\n[data]\ntrain = ["a"]\n[optim]\ngrad_clip = -1.0', "grad_clip"),
        ('name = "x"\n[data]\ntrain = ["a"]\n[optim]\nloss = "l2"', "l1, charbonnier or mse"),
        ('name = "x"\n[data]\ntrain = ["a"]\nearly = 1.5', "shares"),
    ],
)
def test_config_errors_are_clear(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_shipped_configs_load():
    for path in sorted(Path("training/configs").glob("*.toml")):
        config = load_config(path)
        # a later training stage of a model is <model>-<stage>.toml and trains that model from the earlier stage
        stage = path.stem != config.name
        assert path.stem == config.name or (path.stem.startswith(config.name + "-") and config.model.init), path
        assert not stage or Path(f"training/configs/{config.name}.toml").is_file()
        assert isinstance(config.optim.lr, float)


def test_schedule_warms_up_then_follows_a_cosine():
    values = [lr_at(s, 1e-3, 1e-5, 10, 110) for s in range(111)]
    assert values[0] == pytest.approx(1e-4) and values[9] == pytest.approx(1e-3)
    assert values[60] == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-6)
    assert values[110] == pytest.approx(1e-5)
    assert all(a >= b for a, b in pairwise(values[9:]))


def test_crops_are_deterministic_by_index(set5):
    images = list(set5.values())
    data = HRCrops(images, crop=32, margin=4, seed=3)
    assert torch.equal(data[17], HRCrops(images, crop=32, margin=4, seed=3)[17])
    assert not torch.equal(data[17], data[18])
    assert data[0].shape == (3, 40, 40) and data[0].dtype == torch.uint8


def test_device_crops_are_windows_of_the_images_drawn_by_step():
    ys, xs = np.mgrid[0:120, 0:100]
    image = np.stack([ys, xs, ys + xs], axis=-1).astype(np.uint8)  # each pixel names its position
    crops = DeviceCrops([image], crop=24, seed=3, device="cpu")
    batch = crops.batch(5, 16)
    assert batch.shape == (16, 3, 24, 24) and batch.dtype == torch.uint8
    assert torch.equal(batch, DeviceCrops([image], crop=24, seed=3).batch(5, 16))  # a resume draws the same
    assert not torch.equal(batch, crops.batch(6, 16))
    codes = set()
    for crop in batch.numpy().transpose(0, 2, 3, 1):
        y, x = int(crop[..., 0].min()), int(crop[..., 1].min())
        window = image[y : y + 24, x : x + 24]
        (code,) = [c for c in range(8) if np.array_equal(augment(window, c), crop)]
        codes.add(code)
    assert len(codes) > 3  # the dihedral transform is drawn per crop


def test_a_run_with_crops_cut_on_the_device_resumes_exactly(tmp_path):
    def config(out):
        c = load_config(tiny_config(tmp_path, steps=12, out=out))
        c.data.on_device, c.optim.loss = True, "mse"
        return c

    assert_resume_is_exact(config, tmp_path)
    paired = config("paired")
    paired.data.degradation = "paired"
    with pytest.raises(ConfigError, match="on_device"):
        validate_config(paired)


def test_augment_gives_the_eight_dihedral_transforms():
    square = np.arange(9).reshape(3, 3)
    variants = {augment(square, code).tobytes() for code in range(8)}
    assert len(variants) == 8


def test_pairs_match_the_protocol_degradation(photo):
    """The batched torch degradation reproduces MATLAB bicubic inside the margin."""
    scale, size = 4, 128
    full_lr = bicubic(photo, scale)
    crop = photo[32 : 32 + size, 64 : 64 + size]  # offsets divisible by the scale
    lr, hr = make_pair(torch.from_numpy(crop.transpose(2, 0, 1).copy())[None], scale)
    expected = full_lr[8 + MARGIN : 8 + size // scale - MARGIN, 16 + MARGIN : 16 + size // scale - MARGIN]
    got = (lr[0].numpy().transpose(1, 2, 0) * 255).round()
    assert np.abs(got - expected).max() <= 1  # float32 vs float64 rounding at .5
    assert np.mean(got != expected) < 0.01
    assert hr.shape[-1] == lr.shape[-1] * scale


def test_tiny_run_writes_logs_checkpoints_and_loadable_weights(tmp_path, photo):
    result = run_cli("train", "--config", str(tiny_config(tmp_path)), "--no-progress")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "run"
    assert {"last.pt", "model.safetensors", "train.csv", "val.csv", "config.toml"} <= {p.name for p in out.iterdir()}
    val_rows = (out / "val.csv").read_text().splitlines()
    assert val_rows[0] == "step,elapsed_s,dataset,psnr,ssim" and len(val_rows) == 3  # steps 10 and 20
    upscaler = Upscaler(out / "model.safetensors", backend="torch")
    assert upscaler.upscale(photo[:20, :30]).shape == (40, 60, 3)
    # No ONNX beside the weights: auto falls back to torch.
    assert Upscaler(out / "model.safetensors").engine.name == "torch-cpu"


def assert_resume_is_exact(config, tmp_path) -> None:
    """A run stopped at step 7 and resumed ends with the weights of an uninterrupted one (``config(out)``)."""
    Trainer(config("straight"), progress=False).run()
    Trainer(config("resumed"), progress=False).run(stop_at=7)  # as Ctrl-C does: a checkpoint off the 5-step grid
    resumed = Trainer(config("resumed"), progress=False)
    assert resumed.step == 7
    resumed.run()
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    assert_resume_is_exact(lambda out: load_config(tiny_config(tmp_path, out=out)), tmp_path)


def test_resume_refuses_changed_data_settings_and_trims_logs(tmp_path):
    config = load_config(tiny_config(tmp_path, steps=12))
    Trainer(config, progress=False).run(stop_at=10)
    out = tmp_path / "run"
    with open(out / "train.csv", "a") as fh:  # rows a crash after the checkpoint would leave behind
        fh.write("15,1.0,1e-3,0.1,10\n")
    changed = load_config(tiny_config(tmp_path, steps=12))
    changed.data.batch = 2
    with pytest.raises(RuntimeError, match=r"data\.batch"):
        Trainer(changed, progress=False)
    resumed = Trainer(load_config(tiny_config(tmp_path, steps=12)), progress=False)
    steps = [int(r.split(",")[0]) for r in (out / "train.csv").read_text().splitlines()[1:]]
    assert steps == [5, 10]
    # Resuming from the run's own copy of its config works too.
    result = run_cli("train", "--config", str(out / "config.toml"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert resumed.step == 10


@pytest.mark.parametrize("steps", ["0", "-3", "many"])
def test_steps_override_must_be_positive(tmp_path, steps):
    result = run_cli("train", "--config", str(tiny_config(tmp_path)), "--steps", steps)
    assert result.returncode == 2 and "--steps" in result.stderr and not (tmp_path / "run").exists()


def test_missing_data_is_reported_before_anything_is_touched(tmp_path):
    config = tiny_config(tmp_path)
    result = run_cli("train", "--config", str(config), "--data-root", str(tmp_path / "nowhere"), "--restart")
    assert result.returncode == 2 and "data folder(s) not found" in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_cli_reports_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data]\ntrain = ["a"]\nbogus = 1\n')
    result = run_cli("train", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bogus" in result.stderr
