"""One module per ``nnunet-stroke`` sub-command (found by cli.py): each parses its arguments and calls one workflow."""
