"""Initialising a smaller PMSAN from a larger one (Algorithm 1, step 3: "Initialize M_i with weights from
corresponding layers of M_{i+1} where possible"), for both PMSAN families (classifier and PMSAN-Seg).

Correspondence (the package's reading of "corresponding layers"): the same parameter name (so block ``i``
of a stage takes the teacher's block ``i``, i.e. the student's blocks are the teacher's leading blocks),
and within a tensor the leading channels along every axis - except along an axis that is a concatenation
of equal chunks, which is sliced chunk by chunk: the ConvGRU's [r | z | n] gates, the merge convolutions
over [forward | backward] hidden states and over the multi-scale paths, the first convolution of each
decoder stage over [upsampled | skip]. So a student's z-gate rows come from the teacher's z-gate rows, not
from the end of its r-gate rows. Modules declare those tensors with a ``chunked_parameters()`` method
({name: (axis, chunks)}), next to the code that concatenates or splits them.

A student parameter without a teacher tensor of the same name and rank, at least as large on every axis,
keeps its own initialisation.
"""
from __future__ import annotations

import torch
from torch import nn


def chunk_layout(network: nn.Module) -> dict[str, tuple[int, int]]:
    """{full parameter name: (axis, chunks)} over every module of ``network`` that declares chunks."""
    layout: dict[str, tuple[int, int]] = {}
    for prefix, module in network.named_modules():
        declared = getattr(module, "chunked_parameters", None)
        if callable(declared):
            layout.update({f"{prefix}.{name}" if prefix else name: chunks for name, chunks in declared().items()})
    return layout


def teacher_slice(source: torch.Tensor, shape: torch.Size, chunks: tuple[int, int] | None) -> torch.Tensor:
    """The part of ``source`` that corresponds to a tensor of ``shape`` (module docstring)."""
    if chunks is None:
        return source[tuple(slice(0, s) for s in shape)]
    axis, count = chunks
    if source.shape[axis] % count or shape[axis] % count:
        raise ValueError(f"axis {axis} of {tuple(source.shape)} / {tuple(shape)} does not split into {count} chunks")
    student_chunk = shape[axis] // count
    parts = [part.narrow(axis, 0, student_chunk) for part in source.chunk(count, dim=axis)]
    joined = torch.cat(parts, dim=axis)
    return joined[tuple(slice(0, s) if a != axis else slice(None) for a, s in enumerate(shape))]


def initialize_from_teacher(student: nn.Module, teacher_state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Copy into every student parameter its teacher slice; returns (parameters copied, student parameters)."""
    layout = chunk_layout(student)
    copied = total = 0
    with torch.no_grad():
        for name, parameter in student.named_parameters():
            total += parameter.numel()
            source = teacher_state.get(name)
            if source is None or source.dim() != parameter.dim() or any(
                    t < s for t, s in zip(source.shape, parameter.shape)):
                continue
            parameter.copy_(teacher_slice(source, parameter.shape, layout.get(name)))
            copied += parameter.numel()
    return copied, total
