"""The manifest, descriptors, weight files and architecture variants."""

import json

import numpy as np
import pytest
import torch

from training.config import TrainConfig
from training.trainer import save_weights
from upscaler import Upscaler
from upscaler.archs import build_network, receptive_field
from upscaler.models import (
    MANIFEST_PATH,
    WEIGHTS_DIR,
    ModelDescriptor,
    ModelError,
    default_model,
    get_model,
    list_models,
    read_safetensors_metadata,
    sha256_file,
)


def test_manifest_lists_a_4x_default_and_a_2x_model():
    models = list_models("frame")
    assert default_model().scale == 4
    assert {m.scale for m in models} >= {2, 4}
    assert get_model("x4").scale == 4 and get_model("x2").scale == 2


@pytest.mark.parametrize("model", list_models("frame"), ids=lambda m: m.name)
def test_every_built_in_model_is_complete_and_intact(model):
    assert model.precisions == ("fp32", "fp16", "int8")
    for f in (model.weights, model.onnx, *model.graphs.values()):
        assert f is not None and f.path.is_file()
        assert sha256_file(f.path) == f.sha256
        assert f.path.stat().st_size < 5_000_000  # shipped weights stay small
    meta = read_safetensors_metadata(model.weights.path)
    assert meta["arch"] == model.arch and int(meta["scale"]) == model.scale
    assert json.loads(meta["params"]) == dict(model.params)
    assert model.receptive_field == receptive_field(model.arch, model.params) > 0
    assert model.training["steps"] > 0 and model.description
    assert model.quality, "measured quality is recorded"


@pytest.mark.parametrize("model", list_models(), ids=lambda m: m.name)
def test_every_shipped_graph_names_its_model(model):
    """A graph renamed on disk but not inside (or the reverse) would report another model's name."""
    import onnx

    for f in (model.onnx, *model.graphs.values()):
        meta = {p.key: p.value for p in onnx.load(f.path, load_external_data=False).metadata_props}
        assert meta["name"] == model.name, f.path.name


def test_a_renamed_model_still_answers_to_its_old_name():
    """x4-temporal-lite became x4-temporal on 2026-12-07 (the larger network x4-temporal-quality)."""
    assert get_model("x4-temporal-lite") is get_model("x4-temporal")
    assert get_model("x4-temporal").macs_per_pixel < get_model("x4-temporal-quality").macs_per_pixel
    from tests.conftest import run_cli

    records = {r["name"]: r for r in json.loads(run_cli("models", "--json").stdout)}
    assert "x4-temporal-lite" in records["x4-temporal"]["aliases"] and records["x4-fast"]["aliases"]
    assert "x4-temporal-lite -> x4-temporal" in run_cli("models").stdout


def test_descriptor_round_trips_through_its_record():
    model = default_model()
    again = ModelDescriptor.from_dict(model.to_dict(relative_to=WEIGHTS_DIR), WEIGHTS_DIR)
    assert again == model


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelError, match="x4-fast"):
        get_model("x5-turbo")


def test_tampered_weights_are_refused(tmp_path):
    model = default_model()
    copy = tmp_path / "w.onnx"
    data = bytearray(model.onnx.path.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    tampered = ModelDescriptor(**{**model.__dict__, "onnx": type(model.onnx)(copy, model.onnx.sha256)})
    with pytest.raises(Exception, match="sha256"):
        Upscaler(tampered, backend="onnxruntime")


def test_manifest_is_valid_json_with_relative_paths():
    raw = json.loads(MANIFEST_PATH.read_text())
    for record in raw["models"]:
        for key in ("weights", "onnx"):
            assert not record[key]["path"].startswith("/")


@pytest.mark.parametrize(
    "params",
    [
        dict(channels=8, blocks=0, act="relu", base="bilinear"),
        dict(channels=12, blocks=3, act="prelu", base="nearest"),
        dict(channels=16, blocks=2, act="relu", base="none"),
    ],
)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_arch_variants_round_trip_through_safetensors(tmp_path, params, scale):
    """spandrel-style: build variants, save, load by metadata, same outputs."""
    torch.manual_seed(0)
    net = build_network("plainsr", scale, params).eval()
    config = TrainConfig(name="variant")
    config.model.arch, config.model.scale, config.model.params = "plainsr", scale, params
    path = tmp_path / "variant.safetensors"
    save_weights(net, path, config, {"steps": 1})
    loaded = Upscaler(path, backend="torch", tile=0)
    assert loaded.model.receptive_field == params["blocks"] + 2
    x = np.random.default_rng(1).random((9, 11, 3), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(loaded.upscale(x), np.clip(expected, 0, 1), atol=1e-6)


def test_arch_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="activation"):
        build_network("plainsr", 4, dict(act="gelu"))
    with pytest.raises(KeyError, match="plainsr"):
        build_network("unet", 4, {})
