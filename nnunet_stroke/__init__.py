"""nnunet-stroke: stroke lesion segmentation and detection networks, trainers, converters and evaluation
for nnU-Net v2, installed as a plugin (no fork of nnU-Net)."""
from pathlib import Path

__version__ = "0.1.0"


def ext_trainer_dir() -> str:
    """Folder to put in ``nnUNet_extTrainer`` so the stock nnU-Net commands find this package's trainers."""
    return str(Path(__file__).resolve().parent / "nnunet_ext")
