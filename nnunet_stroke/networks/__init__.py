"""Networks: pure PyTorch modules (nothing from nnunetv2), built from presets through :mod:`.registry`."""
