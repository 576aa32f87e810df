"""The plain-conv family: base upsample as a conv, re-parameterisable blocks, receptive field."""

import pytest
import torch
import torch.nn.functional as F

from upscaler.archs import receptive_field
from upscaler.archs.plainsr import PlainSR, base_kernel


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_base_conv_equals_interpolation(scale, mode):
    x = torch.rand(2, 3, 7, 11)
    ours = F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), base_kernel(scale, mode)), scale)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    torch.testing.assert_close(ours, F.interpolate(x, scale_factor=scale, mode=mode, **kwargs), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        {"channels": 16, "blocks": 3, "tail": 1},
        {"channels": 8, "blocks": 2, "act": "prelu", "base": "nearest"},
        {"channels": 8, "blocks": 0, "base": "none"},
    ],
)
def test_rep_blocks_fuse_into_the_plain_network(params):
    torch.manual_seed(0)
    net = PlainSR(4, **params, rep=True)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    x = torch.rand(1, 3, 13, 17)
    plain = net.fused()
    assert not any(type(m).__name__ == "RepConv" for m in plain.modules())
    torch.testing.assert_close(plain(x), net(x), rtol=0, atol=1e-5)
    # And back: a rep network started from plain weights computes the same function.
    again = PlainSR(4, **params, rep=True)
    again.load_plain_state_dict(plain.state_dict())
    torch.testing.assert_close(again(x), plain(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("rep", [False, True])
def test_a_deeper_network_starts_as_the_shallower_one(rep):
    torch.manual_seed(0)
    shallow = PlainSR(4, channels=8, blocks=2, tail=1)
    for p in shallow.parameters():
        p.data.normal_(0, 0.1)
    deep = PlainSR(4, channels=8, blocks=5, tail=1, rep=rep)
    deep.load_plain_state_dict(shallow.state_dict())
    x = torch.rand(1, 3, 11, 13)
    torch.testing.assert_close(deep(x), shallow(x), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="ReLU"):
        PlainSR(4, channels=8, blocks=3, act="prelu").load_plain_state_dict(
            PlainSR(4, channels=8, blocks=2, act="prelu").state_dict()
        )


def test_untrained_network_outputs_its_base_upsample():
    net = PlainSR(2, channels=8, blocks=1)
    torch.nn.init.zeros_(net.tail.weight)
    x = torch.rand(1, 3, 9, 9)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-6)


def test_receptive_field_counts_the_tail_kernel():
    assert receptive_field("plainsr", {"blocks": 4}) == 6
    assert receptive_field("plainsr", {"blocks": 3, "tail": 1}) == 4


def test_tile_seams_vanish_with_the_declared_receptive_field():
    """Outputs of a crop match the whole image's inside the receptive field: the overlap suffices."""
    torch.manual_seed(1)
    net = PlainSR(2, channels=8, blocks=3, tail=1).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    rf = receptive_field("plainsr", net.inference_params())
    x = torch.rand(1, 3, 30, 30)
    with torch.no_grad():
        whole, part = net(x), net(x[..., 5:25, 5:25])
    inner = slice(2 * rf, 2 * (20 - rf))
    torch.testing.assert_close(part[..., inner, inner], whole[..., 10:50, 10:50][..., inner, inner])
