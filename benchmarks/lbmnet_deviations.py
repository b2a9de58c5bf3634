"""LBMNet: every choice the paper leaves open, with its parameter cost measured on the paper-scale network
-> the deviations table of docs/lbmnet.md (between its two ``deviations-table`` markers).

    python benchmarks/lbmnet_deviations.py           # rewrite the table in docs/lbmnet.md
    python benchmarks/lbmnet_deviations.py --print   # print it only

The network is the ``lbmnet`` preset built on the meta device (no memory) for the five-level ISLES-like
plan (patch 80x112x112, strides [1,1,1] + 4 x [2,2,2], 2 input channels, 2 classes): the stem and the
paper's four encoder stages. A choice's cost is the number of parameters of the modules that carry it,
summed over the network (an addition such as a norm: its parameters; a reading such as a full rather than
depthwise convolution: the difference to the other reading; a choice of norm type: the difference between
the two builds). Loss choices have no parameters. tests/test_lbmnet_network.py checks that the table in
the docs equals what this script computes.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "lbmnet.md"
START, END = "<!-- deviations-table:start -->", "<!-- deviations-table:end -->"
PLAN = {"input_channels": 2, "num_classes": 2, "patch_size": (80, 112, 112), "strides": [(1, 1, 1)] + [(2, 2, 2)] * 4}


def build(**overrides) -> torch.nn.Module:
    from nnunet_stroke.networks.registry import build_network

    with torch.device("meta"):
        return build_network("lbmnet", deep_supervision=True, **PLAN, **overrides)


def count(modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def of(network, cls) -> list:
    return [m for m in network.modules() if isinstance(m, cls)]


def rows() -> tuple[int, list[tuple[str, str, str, int]]]:
    """(total parameters, [(choice, what the paper prints, module, parameters)])."""
    from nnunet_stroke.networks.blocks.asc import ASCBlock
    from nnunet_stroke.networks.blocks.bagf import BAGF
    from nnunet_stroke.networks.blocks.lsc import LSCBlock
    from nnunet_stroke.networks.ssm import DirectionalScan3d

    net = build()
    total = count([net])
    lsc, asc, bagf, scans = of(net, LSCBlock), of(net, ASCBlock), of(net, BAGF), of(net, DirectionalScan3d)
    mixers = [mixer for scan in scans for mixer in scan.mixers]
    full_context = count(a.context for a in asc)  # eq. 4 Conv_3 as a full 3^3 convolution (with bias)
    depthwise_context = sum(a.context.in_channels * (27 + 1) for a in asc)  # the same as a depthwise one
    return total, [
        ("Channel widths C_l = 48 * 2^l, 48-768 on five levels (cost: against nnU-Net's 32-320)",
         "four encoder stages, no widths", "preset `base_channels`, `max_channels`",
         total - count([build(base_channels=32, max_channels=320)])),
        ("Two LSC blocks per encoder stage (cost: the second block)", "\"alternatively stacked with LSC Blocks\"",
         "preset `encoder_blocks`", total - count([build(encoder_blocks=1)])),
        ("Stem: 3^3 conv - BN - LeakyReLU", "\"a STEM convolution layer\"", "`LBMNetEncoder.stem`",
         count([net.encoder.stem])),
        ("Downsampling: conv with kernel = stride, then BN, before each encoder stage", "\"spatially downsampling\"",
         "`LBMNetEncoder.stages[l][0]`", count(stage[0] for stage in net.encoder.stages)),
        ("Upsampling: transposed conv with kernel = stride", "\"progressive upsampling\"",
         "`LBMNetDecoderStage.upsample`", count(stage.upsample for stage in net.decoder.stages)),
        ("Deep-supervision heads: a 1^3 conv at levels 1-3 (level 0's is the paper's output layer)",
         "\"Deep supervision was enabled\" (section 4.2)", "`LBMNetDecoder.heads`", count(net.decoder.heads[:-1])),
        ("BatchNorm wherever a norm is added (cost: against affine InstanceNorm)", "BN in eq. 3 only",
         "preset `norm`", total - count([build(norm="instance")])),
        ("LSC: BN + GELU after the 3^3 refinement, or after the summed branches when it is ablated (eq. 1-3 "
         "are linear)", "none", "`LSCBlock.refine_norm`",
         count(b.refine_norm for b in lsc)),
        ("Biases on the convolutions no norm follows (LSC's Conv_1 and depthwise branches, ASC's convolutions)",
         "no biases written", "`LSCBlock`, `ASCBlock`",
         sum(c.bias.numel() for c in of(torch.nn.ModuleList([*lsc, *asc]), torch.nn.Conv3d) if c.bias is not None)),
        ("ASC eq. 4: Conv_3 read as a full 3^3 convolution (cost: against a depthwise one)",
         "Conv_3x3x3 in eq. 4; the text names one depth-separable 3^3", "`ASCBlock.context`",
         full_context - depthwise_context),
        ("ASC eq. 4: f_SE = squeeze-and-excitation returning its re-weighted input (average pool, MLP with "
         "reduction 4)", "\"SE attention\"", "`ASCBlock.squeeze_excite`", count(a.squeeze_excite for a in asc)),
        ("ASC eq. 5: phi = GELU", "phi", "`ASCBlock.phi`", 0),
        ("ASC eq. 5: BN after the depthwise 7^3 convolution", "none", "`ASCBlock.large[1]`",
         count(a.large[1] for a in asc)),
        ("SSM: pre-LayerNorm before the scans", "none", "`DirectionalScan3d.norm`", count(s.norm for s in scans)),
        ("SSM: one Mamba per direction (cost: against one shared by both)", "\"Mamba\" in eq. 6 and 7",
         "`DirectionalScan3d.mixers`", count(mixer for s in scans for mixer in s.mixers[1:])),
        ("SSM: mamba-ssm v1 defaults d_conv = 4, dt_rank = ceil(C / 16) (cost: the causal convolutions)",
         "d_state 16, expand 2 only", "`Mamba.conv1d`", count(m.conv1d for m in mixers)),
        ("SSM: raster flattening order (depth, height, width; width fastest)", "\"flattened\"",
         "`networks/ssm/directional.py`", 0),
        ("BAGF: E and D \"aligned\" by a 1^3 conv + BN each", "\"aligned along a common channel dimension\"",
         "`BAGF.align_encoder`, `align_decoder`", count(m for b in bagf for m in (b.align_encoder, b.align_decoder))),
        ("BAGF: the residual block is depthwise 3^3 - BN - GELU - pointwise - BN", "\"a lightweight residual block\"",
         "`BAGF.encoder_residual`", count(b.encoder_residual for b in bagf)),
        ("BAGF eq. 9: SA is CBAM's (7^3 conv over channel mean and max)", "SA", "`BAGF.spatial_attention`",
         count(b.spatial_attention for b in bagf)),
        ("BAGF eq. 9: CA is CBAM's (average- and max-pooled MLP, reduction 4)", "CA", "`BAGF.channel_attention`",
         count(b.channel_attention for b in bagf)),
        ("BAGF eq. 10: Gate = 1^3 conv 2C -> 2, softmax over the two paths at every voxel", "Gate",
         "`BAGF.gate`", count(b.gate for b in bagf)),
        ("Loss eq. 13: alpha = beta = 1", "alpha, beta", "`trainers/base.py`", 0),
        ("Loss: CE class weights w_c = min(n_background / n_c, 10) over the fold's training voxels (the `_Tiny` "
         "variants anneal them to 1 by the last epoch, docs/training.md)",
         "\"weighted cross-entropy\", no rule; eq. 13 prints no weights", "`trainers/base.py`, `trainers/tiny.py`", 0),
        ("Loss: nnU-Net's soft Dice over the foreground classes (smooth 1e-5), batch Dice as planned",
         "Dice of eq. 13", "`trainers/base.py`", 0),
        ("`_Tiny` variants only: AdamW at lr 3e-3 with polynomial decay for their short CPU schedule (default 40 x 25 "
         "iterations) (cost: held-out Dice, docs/training.md)", "SGD, momentum 0.99, lr 1e-3 (section 4.2)",
         "`trainers/tiny.py`", 0),
    ]


def table() -> str:
    total, entries = rows()
    lines = [f"Measured on the paper-scale `lbmnet` preset, five-level ISLES-like plan, {total:,} parameters in all "
             "(`python benchmarks/lbmnet_deviations.py`).", "",
             "| choice (ours) | what the paper prints | where | parameters | share |", "|---|---|---|---|---|"]
    for choice, paper, where, params in entries:
        share = 100 * params / total
        share_text = f"{share:.2f} %" if share >= 0.005 or not params else "< 0.01 %"
        lines.append(f"| {choice} | {paper} | {where} | {params:,} | {share_text} |")
    return "\n".join(lines)


def write(doc: Path = DOC) -> None:
    text = doc.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1:
        raise SystemExit(f"{doc}: needs exactly one {START} and one {END} line around the deviations table")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    temporary = doc.with_name(f".{doc.name}.tmp")
    temporary.write_text(f"{head}{START}\n{table()}\n{END}{tail}", encoding="utf-8")
    os.replace(temporary, doc)


def table_in_doc(doc: Path = DOC) -> str:
    text = doc.read_text(encoding="utf-8")
    return text.split(START)[1].split(END)[0].strip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the table, do not touch docs/lbmnet.md")
    args = parser.parse_args()
    if args.print:
        print(table())
    else:
        write()
        print(f"wrote the deviations table of {DOC}")
