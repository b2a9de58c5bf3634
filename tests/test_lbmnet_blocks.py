"""LBMNet's blocks against the paper's equations, re-computed here with functional ops in float64 from
the blocks' own weights (Kuang et al., Front. Med. 2026: LSC eq. 1-3, ASC eq. 4-5, BSC-Mamba eq. 6-8,
BAGF eq. 9-12)."""
import pytest
import torch
import torch.nn.functional as F

from nnunet_stroke.networks.blocks.asc import ASCBlock
from nnunet_stroke.networks.blocks.attention import ChannelAttention, SpatialAttention
from nnunet_stroke.networks.blocks.bagf import BAGF
from nnunet_stroke.networks.blocks.bsc_mamba import BSCMamba
from nnunet_stroke.networks.blocks.lsc import LSCBlock

C = 6


def _eval64(module):
    module = module.double().eval()
    with torch.no_grad():  # non-trivial norm statistics and affine parameters
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return module


def _bn(x, bn):
    shape = (1, -1, 1, 1, 1)
    return (x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps) * bn.weight.view(shape) \
        + bn.bias.view(shape)


def _conv(x, conv, groups=1):
    return F.conv3d(x, conv.weight, conv.bias, padding=conv.weight.shape[-1] // 2, groups=groups)


def _se(z, attention):  # squeeze-and-excitation: z * sigmoid(W2 relu(W1 mean(z)))
    fc1, fc2 = attention.mlp[0], attention.mlp[2]
    s = torch.sigmoid(F.linear(F.relu(F.linear(z.mean((2, 3, 4)), fc1.weight, fc1.bias)), fc2.weight, fc2.bias))
    return z * s[..., None, None, None]


@pytest.mark.parametrize("kernels,refine", [((5, 7), True), ((7,), False), ((5, 7), False)])
def test_lsc_block_is_eq_1_to_3(kernels, refine):
    torch.manual_seed(0)
    block = _eval64(LSCBlock(C, dim=3, kernels=kernels, refine=refine))
    x = torch.randn(2, C, 9, 10, 11, dtype=torch.float64)
    projected = _conv(x, block.project_in)
    f = sum(_conv(projected, branch, groups=C) for branch in block.depthwise)  # eq. 1
    y = _conv(f, block.refine) if refine else f  # eq. 2
    y = F.gelu(_bn(y, block.refine_norm))
    expected = x + _bn(_conv(y, block.project_out[0]), block.project_out[1])  # eq. 3
    torch.testing.assert_close(block(x), expected)
    assert [b.kernel_size for b in block.depthwise] == [(k, k, k) for k in kernels]


def test_asc_block_is_eq_4_and_5():
    torch.manual_seed(1)
    block = _eval64(ASCBlock(C, dim=3))
    x = torch.randn(2, C, 7, 8, 9, dtype=torch.float64)
    x_se = _se(_conv(x, block.context), block.squeeze_excite) * _conv(x, block.depthwise, groups=C)  # eq. 4
    gated = _conv(x_se, block.value) * F.gelu(_conv(x_se, block.gate))
    expected = x + _bn(_conv(gated, block.large[0], groups=C), block.large[1])  # eq. 5
    torch.testing.assert_close(block(x), expected)
    assert block.large[0].kernel_size == (7, 7, 7) and block.large[0].groups == C


def _eq_8(block, x):
    """output = reshape(W_f [Mamba_f(y_seq); reverse(Mamba_b(reverse(y_seq)))]) + x, y = ASC(x) (eq. 4-8),
    y_seq the raster flattening (depth, height, width; width fastest) after the block's pre-LayerNorm."""
    y = block.local(x)  # eq. 4-5, checked against its own reference above
    batch, channels, *spatial = x.shape
    norm, (forward, backward), w_f = block.ssm.norm, block.ssm.mixers, block.ssm.fuse
    y_seq = F.layer_norm(y.flatten(2).transpose(1, 2), (channels,), norm.weight, norm.bias, norm.eps)
    y_fwd = forward(y_seq)  # eq. 6
    y_bwd = backward(y_seq.flip(1)).flip(1)  # eq. 7
    fused = F.linear(torch.cat([y_fwd, y_bwd], -1), w_f.weight, w_f.bias)
    return fused.transpose(1, 2).reshape(batch, channels, *spatial) + x, y  # eq. 8


def test_bsc_mamba_block_is_eq_4_to_8_with_the_input_as_residual():
    torch.manual_seed(5)
    block = _eval64(BSCMamba(C, dim=3))
    with torch.no_grad():
        torch.nn.init.normal_(block.ssm.norm.weight, 1.0, 0.2)
        torch.nn.init.normal_(block.ssm.norm.bias, 0.0, 0.2)
    x = torch.randn(2, C, 3, 4, 5, dtype=torch.float64)
    expected, y = _eq_8(block, x)
    output = block(x)
    torch.testing.assert_close(output, expected)
    assert (output - (expected - x + y)).abs().max() > 1e-3  # the ASC output as residual would differ
    with torch.no_grad():  # W_f = 0: eq. 8 leaves exactly the block input x
        block.ssm.fuse.weight.zero_()
        block.ssm.fuse.bias.zero_()
        torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_bsc_mamba_table_8_variants():
    torch.manual_seed(6)
    x = torch.randn(1, C, 3, 4, 5, dtype=torch.float64)
    only_asc = _eval64(BSCMamba(C, dim=3, ssm=False))
    torch.testing.assert_close(only_asc(x), only_asc.local(x))  # ASC alone, eq. 5 keeps its own residual
    only_ssm = _eval64(BSCMamba(C, dim=3, asc=False))
    assert isinstance(only_ssm.local, torch.nn.Identity)
    with torch.no_grad():
        only_ssm.ssm.fuse.weight.zero_()
        only_ssm.ssm.fuse.bias.zero_()
        torch.testing.assert_close(only_ssm(x), x, rtol=0, atol=0)
    plain = BSCMamba(C, dim=3, asc=False, ssm=False)
    assert plain.ssm is None and not isinstance(plain.local, torch.nn.Identity)


def test_bagf_is_eq_9_to_12():
    torch.manual_seed(2)
    block = _eval64(BAGF(C, dim=3))
    enc, dec = torch.randn(2, 2, C, 6, 7, 8, dtype=torch.float64)
    e = _bn(_conv(enc, block.align_encoder[0]), block.align_encoder[1])
    body = block.encoder_residual.body
    e = e + _bn(_conv(F.gelu(_bn(_conv(e, body[0], groups=C), body[1])), body[3]), body[4])
    f_enc = e * torch.sigmoid(_conv(torch.cat([e.mean(1, keepdim=True), e.amax(1, keepdim=True)], 1),
                                    block.spatial_attention.conv))  # eq. 9, SA
    d = _bn(_conv(dec, block.align_decoder[0]), block.align_decoder[1])
    mlp = block.channel_attention.mlp
    logits = sum(F.linear(F.relu(F.linear(p, mlp[0].weight, mlp[0].bias)), mlp[2].weight, mlp[2].bias)
                 for p in (d.mean((2, 3, 4)), d.amax((2, 3, 4))))
    f_dec = d * torch.sigmoid(logits)[..., None, None, None]  # eq. 9, CA
    gate = torch.softmax(_conv(torch.cat([f_enc, f_dec], 1), block.gate), 1)  # eq. 10
    expected = _conv(gate[:, :1] * f_enc + gate[:, 1:] * f_dec, block.out)  # eq. 11-12
    torch.testing.assert_close(block(enc, dec), expected)


def test_bagf_without_gate_is_unet_concatenation():
    torch.manual_seed(3)
    block = _eval64(BAGF(C, dim=3, encoder_residual=False, encoder_spatial_attention=False,
                         decoder_channel_attention=False, gate=False))
    enc, dec = torch.randn(2, 1, C, 4, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(block(enc, dec), _conv(torch.cat([enc, dec], 1), block.out))
    assert sum(p.numel() for p in block.parameters()) == 2 * C * C + C


def test_attention_gates_are_2d_capable_and_bounded():
    torch.manual_seed(4)
    x = torch.randn(2, C, 8, 9).abs() + 0.1
    for gate in (ChannelAttention(C, dim=2), ChannelAttention(C, dim=2, pools=("avg",)), SpatialAttention(dim=2)):
        y = gate(x)
        assert y.shape == x.shape and bool(((y > 0) & (y < x)).all())  # sigmoid gates scale into (0, x)
    with pytest.raises(ValueError, match="pools"):
        ChannelAttention(C, dim=3, pools=("median",))
