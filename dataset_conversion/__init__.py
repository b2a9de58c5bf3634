"""Dataset converters (installed as ``nnunet_stroke.dataset_conversion``): one module per released dataset."""
