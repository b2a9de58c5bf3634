"""Shim for nnU-Net's ``nnUNet_extTrainer`` hook.

nnU-Net imports every module of the folders named in ``nnUNet_extTrainer`` as a top-level module and
then purges it from ``sys.modules``; the name is therefore unique and the real classes stay in
``nnunet_stroke.trainers``, importable by their own module path (nnU-Net's worker pools use spawn).
"""
from nnunet_stroke.trainers import *  # noqa: F401,F403
