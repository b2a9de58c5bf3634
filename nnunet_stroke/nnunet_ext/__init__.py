"""The folder named by ``nnunet-stroke ext-trainer-dir`` for nnU-Net's ``nnUNet_extTrainer`` hook."""
