"""Workflows: what chains nnU-Net steps (planning, held-out prediction, studies, ...); commands call one each."""
