"""PMSAN network: shapes for several planned patches (3D slice-wise incl. slice strides > 1, 2D), nnU-Net's
deep-supervision order and switch, the paper's parameter counts, and the blocks against independent
references (naive float64 attention, torch's nn.GRU)."""
import math

import pytest
import torch

from nnunet_stroke.networks.blocks.cross_scale_attention import CrossScaleAttention
from nnunet_stroke.networks.blocks.multiscale import MultiScaleBlock
from nnunet_stroke.networks.blocks.slice_recurrence import ConvGRUCell, SliceRecurrence
from nnunet_stroke.networks.pmsan_scaling import PAPER_SIZES, scaled_patch_size
from nnunet_stroke.networks.registry import build_network

@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: one thread avoids thread start-up and contention on a busy CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PLANS = [  # (patch, strides) as nnU-Net plans them
    ((8, 32, 32), [(1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 2)]),
    ((8, 32, 48), [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)]),  # slice-axis strides > 1
    ((6, 24, 40), [(1, 1, 1), (2, 2, 2), (1, 2, 2)]),
    ((32, 48), [(1, 1), (2, 2), (2, 2), (2, 2)]),  # 2D configuration: the 2D network alone
]


@pytest.mark.parametrize("patch,strides", PLANS)
def test_deep_supervision_outputs_follow_nnunet_order(patch, strides):
    net = build_network("pmsan_tiny", input_channels=2, num_classes=3, patch_size=patch, strides=strides,
                        deep_supervision=True)
    x = torch.randn(2, 2, *patch)
    outputs = net(x)
    assert len(outputs) == len(strides) - 1
    cumulative = [1] * len(patch)
    for output, stride in zip(outputs, strides):
        cumulative = [c * s for c, s in zip(cumulative, stride)]
        assert tuple(output.shape) == (2, 3, *(p // c for p, c in zip(patch, cumulative)))
    assert net.last_detection_logit.shape == (2,)
    net.decoder.deep_supervision = False
    full = net(x)
    assert isinstance(full, torch.Tensor) and tuple(full.shape) == (2, 3, *patch)
    torch.testing.assert_close(full, outputs[0])  # same weights, same highest-resolution logits


def test_slice_count_not_divisible_by_slice_strides_is_refused():
    with pytest.raises(ValueError, match="slice count"):
        build_network("pmsan_tiny", input_channels=1, num_classes=2, patch_size=(6, 32, 32),
                      strides=[(1, 1, 1), (2, 2, 2), (2, 2, 2)])


def test_slices_are_related_only_through_the_recurrent_layer():
    patch, strides = (6, 16, 16), [(1, 1, 1), (1, 2, 2), (1, 2, 2)]
    x = torch.randn(1, 1, *patch)
    changed = x.clone()
    changed[:, :, 0] += 1.0
    for recurrent_levels, coupled in ((0, False), (2, True)):
        torch.manual_seed(0)
        net = build_network("pmsan_tiny", input_channels=1, num_classes=2, patch_size=patch, strides=strides,
                            recurrent_levels=recurrent_levels).eval()
        with torch.no_grad():
            difference = (net(changed) - net(x))[:, :, 3:].abs().max().item()  # slices far from slice 0
        assert (difference > 1e-4) == coupled, (recurrent_levels, difference)


def test_presets_reproduce_the_paper_sizes():
    """Rule (docs/pmsan.md, stated before counting): the paper's classifier = encoder + detection_head, 1 input
    channel (DWI), volumetric model with six in-plane levels (strides 1,2,2,2,2,2); within 10% of the paper."""
    strides = [(1, 1, 1)] + [(1, 2, 2)] * 5
    previous_decoder = 0
    for size, (phi, paper_count) in PAPER_SIZES.items():
        net = build_network(f"pmsan_{size}", input_channels=1, num_classes=2, patch_size=(8, 128, 128),
                            strides=strides)
        classifier = sum(p.numel() for m in (net.encoder, net.detection_head) for p in m.parameters())
        decoder = sum(p.numel() for p in net.decoder.parameters())
        assert abs(classifier / paper_count - 1) < 0.10, (size, classifier)
        assert decoder > previous_decoder  # the decoder scales with the encoder widths
        previous_decoder = decoder


def test_cross_scale_attention_matches_the_papers_equation_in_float64():
    torch.manual_seed(0)
    attention = CrossScaleAttention(query_channels=6, scale_channels=[4, 6], dim=8, head_dim=4, max_grid=4).double()
    torch.nn.init.normal_(attention.scale_embedding)
    query_map, fine = torch.randn(1, 6, 4, 4, dtype=torch.float64), torch.randn(1, 4, 8, 8, dtype=torch.float64)
    result = attention(query_map, [fine, query_map])

    def project(conv, x):  # 1x1 convolution as a matrix product on tokens (tokens, channels)
        return x.flatten(2)[0].T @ conv.weight[:, :, 0, 0].T + conv.bias

    pooled_fine = fine.reshape(1, 4, 4, 2, 4, 2).mean(dim=(3, 5))  # 8x8 -> 4x4 grid by hand
    q = project(attention.query, query_map)
    k = torch.cat([project(attention.keys[0], pooled_fine) + attention.scale_embedding[0],
                   project(attention.keys[1], query_map) + attention.scale_embedding[1]])
    v = torch.cat([project(attention.values[0], pooled_fine), project(attention.values[1], query_map)])
    heads = []
    for h in range(2):
        qh, kh, vh = (t[:, 4 * h: 4 * h + 4] for t in (q, k, v))
        heads.append(torch.softmax(qh @ kh.T / math.sqrt(4), dim=1) @ vh)  # A = softmax(QK^T / sqrt(d_k)) V
    attended = torch.cat(heads, dim=1).T.reshape(1, 8, 4, 4)
    expected = query_map + attention.out(attended)
    torch.testing.assert_close(result, expected)


def test_conv_gru_with_1x1_kernels_is_torch_gru():
    torch.manual_seed(0)
    cell, gru = ConvGRUCell(3, 5, kernel_size=1).double(), torch.nn.GRU(3, 5, batch_first=True).double()
    with torch.no_grad():
        cell.input_gates.weight.copy_(gru.weight_ih_l0[:, :, None, None])
        cell.input_gates.bias.copy_(gru.bias_ih_l0)
        cell.hidden_gates.weight.copy_(gru.weight_hh_l0[:, :, None, None])
        cell.hidden_gates.bias.copy_(gru.bias_hh_l0)
    sequence = torch.randn(2, 7, 3, dtype=torch.float64)
    expected, _ = gru(sequence)
    states = SliceRecurrence.run(cell, sequence[..., None, None], reverse=False)
    torch.testing.assert_close(states[..., 0, 0], expected)


def test_multiscale_paths_see_coarser_context():
    """Norms removed (they couple all pixels): a full-resolution 3x3 path cannot see a pixel 5 px away,
    the 1/4-resolution path of a 3-path block does."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 16, 16)
    far = x.clone()
    far[..., 11, 11] += 5.0
    change = {}
    for num_paths in (1, 3):
        block = MultiScaleBlock(4, num_paths=num_paths).eval()
        for path in block.paths:
            path[1] = torch.nn.Identity()
        block.merge[1] = torch.nn.Identity()
        with torch.no_grad():
            change[num_paths] = (block(far) - block(x))[..., 6, 6].abs().max().item()
    assert change[1] == 0.0 and change[3] > 1e-5, change


def test_scaled_patch_keeps_the_planned_pooling_divisible():
    strides = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert scaled_patch_size((16, 96, 80), strides, 1.0) == [16, 96, 80]
    scaled = scaled_patch_size((16, 96, 80), strides, 2.0)  # 2**0.35 = 1.2746
    assert scaled == [16, 128, 104]
