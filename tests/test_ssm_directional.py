"""DirectionalScan3d: LBMNet eq. 6-8 written out by hand, flattening orders, causality, parameters."""

import numpy as np
import pytest
import torch

from nnunet_stroke.networks.ssm import DirectionalScan3d, Mamba

# token order of each direction as indices into the C-order raster of (depth, height, width)
ORDER_AXES_3D = {"raster": (0, 1, 2), "height-major": (1, 0, 2), "inter-slice": (1, 2, 0)}
ORDER_AXES_2D = {"raster": (0, 1), "height-major": (1, 0), "inter-slice": (1, 0)}
EXPECTED_DIRECTIONS = {
    "forward": [("raster", False)],
    "bi": [("raster", False), ("raster", True)],
    "quad": [("raster", False), ("raster", True), ("height-major", False), ("height-major", True)],
    "tri": [("raster", False), ("raster", True), ("inter-slice", False)],
}


def _visit_order(spatial, axes, reverse):
    order = np.arange(int(np.prod(spatial))).reshape(spatial).transpose(axes).ravel()
    return torch.as_tensor(order[::-1].copy() if reverse else order)


def _manual_block(block, x, directions):
    """eq. 6-8: y_k = unvisit(Mamba_k(visit(LN(x)))), out = W_f [y_1; ...] + x (or the sum)."""
    batch, channels, *spatial = x.shape
    order_axes = ORDER_AXES_3D if len(spatial) == 3 else ORDER_AXES_2D
    tokens = block.norm(x.flatten(2).transpose(1, 2))  # (batch, L, C) in raster order
    outputs = []
    for k, (name, reverse) in enumerate(directions):
        visit = _visit_order(spatial, order_axes[name], reverse)
        mixer = block.mixers[0 if block.share_mixer else k]
        y = torch.empty_like(tokens)
        y[:, visit] = mixer(tokens[:, visit])
        outputs.append(y)
    fused = block.fuse(torch.cat(outputs, -1)) if block.fuse is not None else sum(outputs)
    return fused.transpose(1, 2).reshape(x.shape) + x


@pytest.mark.parametrize("directions", list(EXPECTED_DIRECTIONS))
@pytest.mark.parametrize("fuse, share_mixer", [("concat", False), ("sum", True)])
def test_block_equals_equations_6_to_8(directions, fuse, share_mixer):
    torch.manual_seed(0)
    block = DirectionalScan3d(8, directions=directions, fuse=fuse, share_mixer=share_mixer).double()
    x = torch.randn(2, 8, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(block(x), _manual_block(block, x, EXPECTED_DIRECTIONS[directions]),
                               rtol=1e-10, atol=1e-10)


def test_inter_slice_order_is_segmamba_chunk_and_interleave():
    depth, height, width = 3, 4, 5
    raster = torch.arange(depth * height * width)
    segmamba = torch.stack(raster.chunk(depth, dim=-1), dim=-1).flatten()  # SegMamba's nslices = depth
    assert torch.equal(segmamba, _visit_order((depth, height, width), ORDER_AXES_3D["inter-slice"], False))


@pytest.mark.parametrize("directions", ["quad", "tri"])
def test_two_dimensional_maps(directions):
    torch.manual_seed(3)
    block = DirectionalScan3d(6, directions=directions).double()
    x = torch.randn(1, 6, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(block(x), _manual_block(block, x, EXPECTED_DIRECTIONS[directions]),
                               rtol=1e-10, atol=1e-10)


def _gradient_at_voxels(block, target_index):
    x = torch.randn(1, 4, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    out = block(x).flatten(2)
    (grad,) = torch.autograd.grad(out[:, :, target_index].sum(), x)
    return grad.flatten(2).abs().sum(1)[0]  # per raster voxel


def test_one_way_scan_is_causal_in_raster_order():
    torch.manual_seed(1)
    block = DirectionalScan3d(4, directions="forward").double()
    target = 30
    grad = _gradient_at_voxels(block, target)
    assert torch.all(grad[target + 1:] == 0)
    assert torch.all(grad[:target + 1] > 0)


@pytest.mark.parametrize("directions", ["bi", "quad", "tri"])
def test_multi_directional_scan_sees_later_tokens(directions):
    torch.manual_seed(2)
    block = DirectionalScan3d(4, directions=directions).double()
    grad = _gradient_at_voxels(block, 30)
    assert torch.all(grad > 0)


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("directions, k", [("forward", 1), ("bi", 2), ("tri", 3), ("quad", 4)])
def test_parameter_counts(directions, k):
    channels = 32
    mixer, norm = _count(Mamba(channels)), 2 * channels
    concat = DirectionalScan3d(channels, directions=directions)
    assert _count(concat) == norm + k * mixer + (k * channels * channels + channels)
    shared_sum = DirectionalScan3d(channels, directions=directions, fuse="sum", share_mixer=True)
    assert _count(shared_sum) == norm + mixer


def test_norm_and_residual_switches():
    block = DirectionalScan3d(4, directions="bi", norm=False, residual=False).double()
    assert not any("norm" in name for name, _ in block.named_parameters())
    x = torch.randn(1, 4, 2, 3, 3, dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)
    forward = block.mixers[0](tokens)
    backward = block.mixers[1](tokens.flip(1)).flip(1)
    expected = block.fuse(torch.cat([forward, backward], -1)).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-10)


def test_invalid_options_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="directions must be one of"):
        DirectionalScan3d(4, directions="six")
    with pytest.raises(ValueError, match="fuse must be one of"):
        DirectionalScan3d(4, fuse="mean")
    with pytest.raises(ValueError, match=r"expected \(batch, 4, \*spatial\)"):
        DirectionalScan3d(4)(torch.randn(1, 3, 2, 2, 2))
