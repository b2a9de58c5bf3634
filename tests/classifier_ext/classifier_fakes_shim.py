"""``nnUNet_extTrainer`` folder of the prediction tests: re-exports the stand-in classifier trainers."""
from classifier_fakes import *  # noqa: F401,F403
