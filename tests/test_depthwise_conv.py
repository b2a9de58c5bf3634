"""blocks.depthwise: same forward bits as F.conv3d, gradients equal to PyTorch's own autograd (float64 and
float32, kernels 3-9, both memory layouts), routing only for eligible convolutions, and an LBMNet whose loss
gradients do not change when the routing is switched off."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nnunet_stroke.networks.blocks import depthwise, nd

SPATIAL = (5, 7, 9)


def _inputs(kernel, batch, dtype, channels_last, channels=3, bias=True):
    generator = torch.Generator().manual_seed(kernel * 10 + batch)
    x = torch.randn(batch, channels, *SPATIAL, generator=generator, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    weight = torch.randn(channels, 1, kernel, kernel, kernel, generator=generator, dtype=dtype)
    b = torch.randn(channels, generator=generator, dtype=dtype) if bias else None
    grad_out = torch.randn(batch, channels, *SPATIAL, generator=generator, dtype=dtype)
    return x, weight, b, grad_out


def _gradients(function, x, weight, bias, grad_out):
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, weight, bias)]
    output = function(*leaves)
    output.backward(grad_out)
    return output.detach(), [t.grad for t in leaves if t is not None], leaves[0].grad


def _native(x, weight, bias):
    return F.conv3d(x, weight, bias, padding=weight.shape[-1] // 2, groups=x.shape[1])


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("kernel", [3, 5, 7, 9])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("channels_last", [True, False])
def test_forward_and_gradients_match_native_autograd(dtype, rtol, kernel, batch, channels_last):
    inputs = _inputs(kernel, batch, dtype, channels_last, bias=kernel != 5)
    out, grads, grad_x = _gradients(depthwise.DepthwiseConv3dFunction.apply, *inputs)
    reference_out, reference_grads, _ = _gradients(_native, *inputs)
    assert torch.equal(out, reference_out)
    assert len(grads) == len(reference_grads)
    for grad, reference in zip(grads, reference_grads):
        scale = reference.abs().max()
        assert (grad - reference).abs().max() <= rtol * scale
    assert grad_x.is_contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)


def test_fft_weight_gradient_against_a_direct_sum():
    x, weight, _, grad_out = _inputs(7, 2, torch.float64, False)
    pad = 3
    padded = F.pad(x, [pad] * 6)
    d, h, w = SPATIAL
    direct = torch.stack([torch.stack([torch.stack([
        (grad_out * padded[:, :, i:i + d, j:j + h, k:k + w]).sum((0, 2, 3, 4)) for k in range(7)], -1)
        for j in range(7)], -2) for i in range(7)], -3).unsqueeze(1)
    assert torch.allclose(depthwise.weight_gradient_fft(x, grad_out, 7), direct, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kernel", [3, 7])  # PyTorch's weight gradient, the FFT one
def test_gradcheck(kernel):
    x, weight, bias, _ = _inputs(kernel, 1, torch.float64, True, channels=2)
    leaves = [t.detach().clone().requires_grad_() for t in (x[:, :, :3, :4], weight, bias)]
    assert torch.autograd.gradcheck(depthwise.DepthwiseConv3dFunction.apply, leaves, fast_mode=True)


def _spy(monkeypatch):
    calls = []
    apply = depthwise.DepthwiseConv3dFunction.apply
    monkeypatch.setattr(depthwise.DepthwiseConv3dFunction, "apply",
                        lambda *args: calls.append(args[1].shape) or apply(*args))
    return calls


def test_routing_only_for_eligible_convolutions(monkeypatch):
    calls = _spy(monkeypatch)
    conv = nd.conv(3)
    x = torch.randn(1, 4, 6, 6, 6, requires_grad=True)
    conv(4, 4, 5, padding=2, groups=4)(x).sum().backward()
    assert len(calls) == 1
    for ineligible in (conv(4, 4, 3, padding=1), conv(4, 4, 3, padding=1, groups=4, stride=2),
                       conv(4, 4, 3, padding=1, groups=4, dilation=2), conv(4, 4, 3, padding=0, groups=4),
                       conv(4, 4, 3, padding=1, groups=4, padding_mode="replicate"),
                       conv(4, 4, (3, 3, 1), padding=(1, 1, 0), groups=4)):
        ineligible(x).sum().backward()
    depthwise_conv = conv(4, 4, 3, padding=1, groups=4)
    with torch.no_grad():
        depthwise_conv(x)
    depthwise_conv(torch.randn(1, 4, 6, 6, 6))  # only the weight needs a gradient: routed
    assert len(calls) == 2
    depthwise_conv.requires_grad_(False)
    depthwise_conv(torch.randn(1, 4, 6, 6, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv(4, 4, 3, padding=1, groups=4)(x)
    assert len(calls) == 2


def test_state_dict_and_isinstance_unchanged():
    routed, plain = nd.conv(3)(4, 4, 7, padding=3, groups=4), torch.nn.Conv3d(4, 4, 7, padding=3, groups=4)
    assert isinstance(routed, torch.nn.Conv3d)
    assert {k: v.shape for k, v in routed.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    plain.load_state_dict(routed.state_dict())


def test_lbmnet_gradients_unchanged_by_routing(monkeypatch):
    from nnunet_stroke.networks.blocks.nd import channels_last_weights
    from nnunet_stroke.networks.registry import build_network

    calls = _spy(monkeypatch)
    torch.manual_seed(0)
    network = channels_last_weights(build_network("lbmnet_tiny", input_channels=2, num_classes=2,
                                                  patch_size=(4, 8, 8), strides=[(1, 1, 1), (2, 2, 2)],
                                                  deep_supervision=False)).double()
    x = torch.randn(2, 2, 4, 8, 8, dtype=torch.float64)

    def gradients(routing: bool) -> dict:
        monkeypatch.setattr(depthwise, "ROUTING", routing)
        network.zero_grad()
        output = network(x)
        (output if torch.is_tensor(output) else output[0]).square().mean().backward()
        return {name: p.grad.clone() for name, p in network.named_parameters() if p.grad is not None}

    routed = gradients(True)
    assert {shape[-1] for shape in calls} == {3, 5, 7}  # every depthwise kernel of the preset took the new path
    native = gradients(False)
    assert routed.keys() == native.keys() and routed
    for name in native:
        assert torch.allclose(routed[name], native[name], rtol=1e-9, atol=1e-12), name
