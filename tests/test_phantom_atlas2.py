"""The ATLAS v2.0 phantom: release layout, distinct subject ids, determinism, dark chronic lesions on T1w."""
from __future__ import annotations

import filecmp

import SimpleITK as sitk
from scipy import ndimage

from nnunet_stroke.phantom import write_phantom
from nnunet_stroke.phantom.atlas2 import case_paths

TINY = (24, 32, 28)


def test_layout_ids_and_same_seed_same_bytes(tmp_path):
    root = write_phantom(tmp_path / "a", "atlas2", cases=6, seed=4, shape=TINY)
    again = write_phantom(tmp_path / "b", "atlas2", cases=6, seed=4, shape=TINY)
    assert root == tmp_path / "a" / "ATLAS_2"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.nii.gz"))
    training = [f for f in files if f.startswith("Training/")]
    testing = [f for f in files if f.startswith("Testing/")]
    assert len(training) == 2 * 6 and len(testing) == 3          # ceil(6 * 300 / 655) testing subjects, T1w only
    assert "Training/R001/sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz" in files
    assert ("Training/R001/sub-r001s001/ses-1/anat/"
            "sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz") in files
    subjects = [f.split("/")[2] for f in training[::2] + testing]
    assert len(set(subjects)) == len(subjects) == 9               # no id shared by Training and Testing
    assert (root / "Training" / "R001" / "dataset_description.json").is_file()
    _, mismatch, errors = filecmp.cmpfiles(root, again, files, shallow=False)
    assert mismatch == [] and errors == []


def test_lesions_dark_on_t1w(tmp_path):
    root = write_phantom(tmp_path, "atlas2", cases=5, seed=1, shape=(48, 60, 52))
    for index in range(5):
        paths = case_paths(root, "Training", index)
        t1 = sitk.GetArrayFromImage(sitk.ReadImage(str(paths["t1w"]))).astype(float)
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(paths["mask"]))) > 0
        assert sitk.ReadImage(str(paths["t1w"])).GetSpacing() == (1.0, 1.0, 1.0)
        assert mask.any()
        ring = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask) & (t1 > 60)
        assert t1[mask].mean() / t1[ring].mean() < 0.8
