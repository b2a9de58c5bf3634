"""Network presets as JSON (installed as ``nnunet_stroke.network_configs``), read by networks/registry.py."""
