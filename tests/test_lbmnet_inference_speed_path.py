"""LBMNet's CPU inference path computes what its training path computes.

With autograd off on the CPU, the network takes faster routes (the token-major selective scan of
``networks.ssm.token_major_scan``, weights fused for inference); with autograd on it runs the
reference composition that training differentiates. Same weights, both in eval mode: outputs equal
to 1e-5 in float32, for the mixer, the scan block, every fused block at paper widths on a small
patch, and the whole tiny network (trained BN statistics included, so folding them is exercised).
"""
import pytest
import torch

from nnunet_stroke.networks.blocks.nd import channels_last_weights
from nnunet_stroke.networks.registry import build_network
from nnunet_stroke.networks.ssm import DirectionalScan3d
from nnunet_stroke.networks.ssm import token_major_scan
from nnunet_stroke.networks.ssm.mamba import Mamba

TOLERANCE = 1e-5


def reference_and_inference(module, *inputs):
    """(output with autograd on: the training composition, output under inference_mode)."""
    module.eval()
    with torch.enable_grad():
        reference = module(*inputs)
    with torch.inference_mode():
        fast = module(*inputs)
    return reference, fast


def assert_equal_outputs(reference, fast):
    reference, fast = (r if isinstance(r, (list, tuple)) else [r] for r in (reference, fast))
    assert len(reference) == len(fast)
    for r, f in zip(reference, fast):
        assert r.shape == f.shape
        scale = max(r.abs().max().item(), 1.0)
        assert (r.detach() - f).abs().max().item() <= TOLERANCE * scale


def test_inference_path_is_taken_only_without_autograd_on_the_cpu(monkeypatch):
    x = torch.zeros(1, 3, 4)
    with torch.inference_mode():
        assert token_major_scan.applies(x)
        monkeypatch.setenv(token_major_scan.SCAN_ENV, "torch_chunked")
        assert not token_major_scan.applies(x)  # an explicit backend choice is respected
    monkeypatch.delenv(token_major_scan.SCAN_ENV)
    assert not token_major_scan.applies(x)  # autograd on: the training scan


@pytest.mark.parametrize("d_model,length,batch", [(8, 1, 1), (20, 37, 2), (48, 300, 1), (72, 50, 1)])
def test_mamba_mixer_token_major_scan_equals_training_scan(d_model, length, batch):
    torch.manual_seed(0)
    mixer = Mamba(d_model)
    with torch.no_grad():  # a wider spread of step sizes than the initialisation gives (softplus above 20 too)
        mixer.dt_proj.bias.uniform_(-6.0, 22.0)
    x = torch.randn(batch, length, d_model)
    assert_equal_outputs(*reference_and_inference(mixer, x))


def test_mamba_mixer_reverse_mode_equals_flipped_training_scan():
    """At inference the reversed direction runs the recurrence and the causal convolution backwards in place;
    with autograd on it is the mixer on the flipped sequence, flipped back."""
    torch.manual_seed(3)
    mixer = Mamba(20).eval()
    x = torch.randn(2, 41, 20)
    with torch.enable_grad():
        reference = mixer(x.flip(1)).flip(1)
    with torch.inference_mode():
        fast = mixer(x, reverse=True)
    assert_equal_outputs(reference, fast)


def test_kernel_softplus_matches_float64_softplus():
    """The scan kernel takes torch's softplus (threshold 20) itself; float32 within 2e-7 relative of float64."""
    import numba

    from nnunet_stroke.networks.ssm.token_major_kernel import softplus

    @numba.njit
    def apply(values, out):
        for i in range(values.shape[0]):
            out[i] = softplus(values[i])

    edges = [0.0, 20.0, 20.000002, 19.999998, -87.0, -86.5, 1e-8, -1e-8, 0.3465, 0.3466]
    for dtype in (torch.float32, torch.float64):
        values = torch.cat([torch.linspace(-86, 40, 200_001, dtype=dtype), torch.tensor(edges, dtype=dtype)])
        out = torch.empty_like(values)
        apply(values.numpy(), out.numpy())
        reference = torch.nn.functional.softplus(values.double())
        relative = (out.double() - reference).abs() / reference
        assert relative.max().item() <= (2e-7 if dtype == torch.float32 else 1e-15)


def test_token_major_scan_reads_any_layout_and_equals_the_float64_recurrence():
    """Column slices of one projection are read in place, other layouts through a copy; an output that is
    neither contiguous nor such a slice is refused."""
    from nnunet_stroke.networks.ssm.cpu_scan import scan_torch

    torch.manual_seed(5)
    batch, length, channels, state, rank = 2, 23, 40, 16, 5
    projection = torch.randn(batch, length, 2 * channels)
    u, z = projection.split(channels, -1)  # column slices, as the mixer's projections give them
    states = torch.randn(batch, rank + 2 * state, length).transpose(1, 2)  # neither contiguous nor a column slice
    dt_low, B, C = states.split([rank, state, state], -1)
    dt_weight, dt_bias = torch.randn(channels, rank) * 0.5, torch.randn(channels) * 2
    A, D = -torch.rand(channels, state) * 4, torch.randn(channels)
    delta = dt_low.double() @ dt_weight.double().t()
    reference, _ = scan_torch(*(t.double().transpose(1, 2) for t in (u, delta)), A.double(), B.double(),
                              C.double(), D.double(), z.double().transpose(1, 2), dt_bias.double(), True)
    reference_reversed, _ = scan_torch(*(t.double().transpose(1, 2).flip(2) for t in (u, delta)), A.double(),
                                       B.double().flip(1), C.double().flip(1), D.double(),
                                       z.double().transpose(1, 2).flip(2), dt_bias.double(), True)
    with torch.inference_mode():
        operands = (dt_low, dt_weight, dt_bias, A, B, C, D, z)
        fast = token_major_scan.scan_token_major(u, *operands, out=torch.empty(batch, length, channels))
        reversed_ = token_major_scan.scan_token_major(u, *operands, out=torch.empty(batch, length, channels),
                                                      reverse=True)
        in_place = token_major_scan.scan_token_major(u, dt_low.contiguous(), *operands[1:], out=u)
        with pytest.raises(ValueError, match="column slice"):
            token_major_scan.scan_token_major(u, *operands, out=torch.empty(batch, channels, length).transpose(1, 2))
    reversed_error = (reversed_.double() - reference_reversed.flip(2).transpose(1, 2)).abs().max().item()
    assert reversed_error <= TOLERANCE * reference_reversed.abs().max()
    for result in (fast, in_place):
        assert (result.double() - reference.transpose(1, 2)).abs().max().item() <= TOLERANCE * reference.abs().max()


@pytest.mark.parametrize("directions,share_mixer", [("quad", False), ("bi", False), ("forward", False), ("bi", True)])
def test_directional_scan_inference_path_equals_training_path(directions, share_mixer):
    """"bi" and "forward" (one flattening order) take the reassociated out_proj + fusion product with one reused
    in_proj buffer; its combined weights follow in-place weight changes."""
    torch.manual_seed(1)
    block = channels_last_weights(DirectionalScan3d(12, directions=directions, share_mixer=share_mixer))
    x = torch.randn(2, 12, 5, 6, 7).contiguous(memory_format=torch.channels_last_3d)
    assert_equal_outputs(*reference_and_inference(block, x))
    assert (block._combined._key is not None) == (directions != "quad" and not share_mixer)
    with torch.no_grad():
        block.mixers[0].out_proj.weight.mul_(1.5)
        block.fuse.bias.add_(0.25)
    assert_equal_outputs(*reference_and_inference(block, x))


def trained_statistics(network, *inputs, steps=3):
    """Give every BatchNorm non-trivial running statistics (as after training)."""
    network.train()
    with torch.no_grad():
        for _ in range(steps):
            network(*(x * 2 + 0.5 for x in inputs))
    return network


@pytest.mark.parametrize("channels_last", [False, True])
def test_tiny_network_inference_path_equals_training_path(channels_last):
    torch.manual_seed(2)
    patch, strides = (8, 16, 16), [[1, 1, 1]] + [[2, 2, 2]] * 3
    network = build_network("lbmnet_tiny", input_channels=2, num_classes=2, patch_size=patch, strides=strides,
                            deep_supervision=True)
    if channels_last:
        network = channels_last_weights(network)
    x = torch.randn(2, 2, *patch)
    trained_statistics(network, x)
    assert_equal_outputs(*reference_and_inference(network, x))


def paper_width_blocks():
    """Every block with a fused inference form, at the paper preset's widths (C_0 = 48, C_1 = 96)."""
    from torch import nn

    from nnunet_stroke.networks.blocks.asc import ASCBlock
    from nnunet_stroke.networks.blocks.bagf import BAGF
    from nnunet_stroke.networks.blocks.conv_blocks import ConvNorm, ConvNormAct, DepthwiseResidualBlock
    from nnunet_stroke.networks.blocks.lsc import LSCBlock

    return {
        "LSC 5^3 + 7^3 + 3^3, C=96": (LSCBlock(96, 3), 96),
        "LSC 5^3 + 7^3 without refinement, C=96": (LSCBlock(96, 3, refine=False), 96),
        "stem conv-norm-act, 2 -> 48": (ConvNormAct(2, 48, 3, "batch"), 2),
        "downsampling conv-norm, 48 -> 96": (ConvNorm(nn.Conv3d(48, 96, 2, stride=2, bias=False), nn.BatchNorm3d(96)), 48),
        "depthwise residual, C=48": (DepthwiseResidualBlock(48, 3, "batch"), 48),
        "ASC (7^3 depthwise + norm), C=48": (ASCBlock(48, 3), 48),
        "instance norm is left alone, C=48": (ConvNormAct(48, 48, 3, "instance"), 48),
        "BAGF, C=48": (BAGF(48, 3), 48),
    }


@pytest.mark.parametrize("name", sorted(paper_width_blocks()))
def test_fused_blocks_equal_their_unfused_form_at_paper_widths(name):
    torch.manual_seed(3)
    block, channels = paper_width_blocks()[name]
    block = channels_last_weights(block)
    inputs = [torch.randn(2, channels, 6, 8, 10).contiguous(memory_format=torch.channels_last_3d)
              for _ in range(2 if name.startswith("BAGF") else 1)]
    trained_statistics(block, *inputs)
    assert_equal_outputs(*reference_and_inference(block, *inputs))


def test_fused_weights_follow_weight_changes():
    """A cached fused weight is rebuilt after an optimiser step, a load_state_dict and train()/eval()."""
    from nnunet_stroke.networks.blocks.lsc import LSCBlock

    torch.manual_seed(4)
    block = channels_last_weights(LSCBlock(8, 3))
    x = torch.randn(1, 8, 6, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    trained_statistics(block, x)
    reference_and_inference(block, x)  # fills the caches
    optimizer = torch.optim.SGD(block.parameters(), lr=0.5)
    block.train()
    block(x).square().mean().backward()  # also moves the BatchNorm running statistics
    optimizer.step()
    assert_equal_outputs(*reference_and_inference(block, x))
    other = LSCBlock(8, 3)
    trained_statistics(other, x * 3)
    block.load_state_dict(other.state_dict())
    assert_equal_outputs(*reference_and_inference(block, x))
    with torch.inference_mode():
        assert torch.allclose(block(x), other.eval()(x), atol=TOLERANCE)
