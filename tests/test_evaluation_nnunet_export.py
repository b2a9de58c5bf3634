"""Saved probabilities from nnU-Net's own export (`export_prediction_from_logits`, what
`nnUNetv2_predict --save_probabilities` calls) line up voxel by voxel with the exported segmentation as
the evaluation reads them, on the planned phantom (whatever transpose its plans use)."""
import shutil

import numpy as np
import pytest

from nnunet_stroke.evaluation import casefiles, evaluate_folders


def test_exported_probabilities_match_the_exported_segmentation(planned_phantom, tmp_path):
    torch = pytest.importorskip("torch")
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(planned_phantom.plans)
    configuration = plans_manager.get_configuration("3d_fullres")
    folder = str(planned_phantom.preprocessed / configuration.data_identifier)
    case = sorted(p.stem for p in (planned_phantom.preprocessed / configuration.data_identifier).glob("*.pkl"))[0]
    data, _, _, properties = infer_dataset_class(folder)(folder, [case]).load_case(case)
    # lesion logit: a different ramp along each axis, so a transposed or flipped array would not line up
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in data.shape[1:]], indexing="ij")
    lesion_logit = 3 * grids[0] + 2 * grids[1] ** 2 - grids[2] - 0.5
    logits = torch.from_numpy(np.stack([np.zeros_like(lesion_logit), lesion_logit]).astype(np.float32))
    predictions = tmp_path / "pred"
    predictions.mkdir()
    export_prediction_from_logits(logits, properties, configuration, plans_manager, planned_phantom.dataset_json,
                                  str(predictions / case), save_probabilities=True, num_threads_torch=1)
    references = tmp_path / "ref"
    references.mkdir()
    shutil.copy(planned_phantom.raw / "labelsTr" / f"{case}.nii.gz", references)

    segmentation = casefiles.read_label_map(predictions / f"{case}.nii.gz", SimpleITKIO, case).array
    probability = casefiles.read_lesion_probability(predictions, case, segmentation.shape, None)
    assert 0 < segmentation.sum() < segmentation.size
    assert np.array_equal(segmentation > 0, probability > 0.5)
    with pytest.warns(UserWarning):
        metrics = evaluate_folders(references, predictions, probabilities_dir=predictions, num_processes=1,
                                   progress=False)
    assert metrics["calibration"]["voxel"]["n"] > 0
