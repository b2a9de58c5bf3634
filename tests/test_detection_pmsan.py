"""PMSAN detection: the probability comes from the head (changing the head changes it, not the
segmentation), a case's probability is the maximum over nnU-Net's sliding-window tiles, detection.json
is written per case, and the joint loss trains the head with the documented weight."""
import copy
import json

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from nnunet_stroke.trainers.pmsan import DETECTION_LOSS_WEIGHT, patch_has_lesion
from test_pmsan_network import single_thread  # noqa: F401 (autouse fixture)

TRAINER = "nnUNetTrainerPMSAN_S_Tiny"


def tiny_predictor(planned_phantom, parameters=None):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.inference import DetectionPredictor
    from nnunet_stroke.trainers import TRAINERS

    plans_manager = PlansManager(planned_phantom.plans)
    configuration_manager = plans_manager.get_configuration("3d_fullres")
    torch.manual_seed(0)
    network = TRAINERS[TRAINER].build_network_architecture(plans_manager, configuration_manager, 2, 2, False)
    predictor = DetectionPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                   device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration_manager,
                                    [parameters or network.state_dict()], planned_phantom.dataset_json, TRAINER, None)
    return predictor


def test_probability_is_the_maximum_of_the_head_over_sliding_window_tiles(planned_phantom):
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    predictor = tiny_predictor(planned_phantom)
    patch = tuple(predictor.configuration_manager.patch_size)
    image = torch.randn(2, patch[0] + 3, patch[1] + 5, patch[2])  # several tiles along two axes
    predictor.predict_logits_from_preprocessed_data(image)
    network = predictor.network.eval()
    tiles = []
    steps = compute_steps_for_sliding_window(image.shape[1:], patch, 0.5)
    with torch.no_grad():
        for z in steps[0]:
            for y in steps[1]:
                for x in steps[2]:
                    network(image[None, :, z:z + patch[0], y:y + patch[1], x:x + patch[2]])
                    tiles.append(torch.sigmoid(network.last_detection_logit).item())
    assert len(tiles) > 2
    assert predictor.case_probabilities[-1] == max(tiles)


def test_head_weights_change_the_probability_but_not_the_segmentation(planned_phantom, tmp_path):
    case = planned_phantom.heldout["5"][0]
    inputs = [[str(planned_phantom.raw / "imagesTr" / f"{case}_{c:04d}.nii.gz") for c in range(2)]]
    parameters = tiny_predictor(planned_phantom).list_of_parameters[0]
    shifted = copy.deepcopy(parameters)
    shifted["detection_head.classifier.3.bias"] += 2.0  # the head's last fully connected layer
    results = {}
    for name, params in (("original", parameters), ("shifted", shifted)):
        out = tmp_path / name
        out.mkdir()  # as nnUNetv2_predict does before predicting
        tiny_predictor(planned_phantom, params).predict_from_files_sequential(inputs, str(out))
        detection = json.loads((out / "detection.json").read_text(encoding="utf-8"))
        assert list(detection) == [case] and 0.0 <= detection[case] <= 1.0
        results[name] = (detection[case], sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.nii.gz"))))
    assert results["shifted"][0] > results["original"][0]  # +2 on the logit of every tile
    np.testing.assert_array_equal(results["shifted"][1], results["original"][1])


def test_patch_label_is_any_lesion_voxel_ignoring_the_ignore_label():
    target = torch.zeros(3, 1, 2, 4, 4)
    target[0, 0, 1, 2, 2] = 1  # one lesion voxel
    target[2, 0, 0, 0, 0] = 3  # only ignore-label voxels
    assert patch_has_lesion(target, ignore_label=3).tolist() == [1.0, 0.0, 0.0]


def test_joint_loss_adds_the_weighted_detection_term_and_trains_the_head(planned_phantom):
    from nnunet_helpers import make_trainer

    from nnunet_stroke.trainers import TRAINERS

    trainer = make_trainer(TRAINERS[TRAINER], planned_phantom)
    trainer.initialize()
    batch = next(trainer.get_dataloaders()[0])
    data, target = batch["data"], batch["target"]
    trainer.network.eval()  # no dropout: two forward passes give the same outputs
    with torch.no_grad():
        joint = trainer.compute_train_loss(data, target).item()
        output = trainer.network(data)
        labels = torch.tensor([float((t > 0).any()) for t in target[0]])
        expected = trainer.loss(output, target) + DETECTION_LOSS_WEIGHT * F.binary_cross_entropy_with_logits(
            trainer.network.last_detection_logit, labels)
    assert joint == np.float32(expected.item())
    trainer.network.train()
    head_before = copy.deepcopy(trainer.network.detection_head.state_dict())
    trainer.train_step(batch)
    head_after = trainer.network.detection_head.state_dict()
    assert any(not torch.equal(head_before[k], head_after[k]) for k in head_before)
