"""StrokeNeXt: what each branch sees, the fusion decoder's shapes, the loss falling on a fixed batch, ImageNet
weights from a local file (nothing downloaded), the trainers' tasks, and whole 2D slices from nnU-Net's data."""
import numpy as np
import pytest
import torch

from nnunet_stroke.errors import UserError
from nnunet_stroke.networks.registry import build_network
from nnunet_stroke.networks.strokenext import load_imagenet_weights
from test_pmsan_network import single_thread  # noqa: F401 (autouse fixture)


def tiny(num_classes: int = 3, **overrides):
    return build_network("strokenext_tiny", input_channels=1, num_classes=num_classes, patch_size=(64, 64),
                         strides=[(1, 1)], **overrides)


def test_branches_see_the_slice_and_its_mirror_image():
    torch.manual_seed(0)
    net = tiny().eval()
    seen = []
    for branch in net.branches:
        branch.stem.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    x = torch.randn(2, 1, 64, 64)
    assert net(x).shape == (2, 3)
    assert len(net.branches) == 2 and net.branches[0] is not net.branches[1]  # two encoders by default
    torch.testing.assert_close(seen[0], x)
    torch.testing.assert_close(seen[1], torch.flip(x, dims=(-1,)))
    shared = tiny(shared_weights=True)
    assert len(shared.branches) == 1 and shared(torch.randn(1, 1, 64, 64)).shape == (1, 3)


def test_any_slice_size_is_resized_to_the_network_input():
    net = tiny().eval()
    x = torch.randn(1, 1, 100, 70)
    expected = net(torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False))
    torch.testing.assert_close(net(x), expected)
    with pytest.raises(ValueError, match="2D"):
        net(torch.randn(1, 1, 4, 64, 64))


def test_training_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    net = tiny(num_classes=3)
    x = torch.randn(6, 1, 64, 64)
    x[2:4, :, 20:30, 10:20] -= 2.0  # hypodense "infarct"
    x[4:6, :, 30:40, 40:50] += 2.0  # hyperdense "bleed"
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3)
    loss_function = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_function(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_imagenet_weights_come_from_a_local_file(tmp_path):
    import timm

    torch.manual_seed(1)
    source = timm.create_model("convnext_tiny", pretrained=False, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64),
                               num_classes=1000)  # three input channels, as ImageNet checkpoints have
    weights = tmp_path / "convnext.pth"
    torch.save(source.state_dict(), weights)
    net = tiny()
    assert load_imagenet_weights(net, weights) == []
    expected = source.state_dict()
    for branch in net.branches:
        for name, value in branch.state_dict().items():
            if name == "stem.0.weight":  # one CT channel: the RGB filters summed
                torch.testing.assert_close(value, expected[name].sum(dim=1, keepdim=True))
            else:
                torch.testing.assert_close(value, expected[name], msg=name)


def test_trainer_variants_are_names_with_their_task_and_recipe():
    from nnunet_stroke.trainers import TRAINERS

    subtype, presence = TRAINERS["nnUNetTrainerStrokeNeXt"], TRAINERS["nnUNetTrainerStrokeNeXt_Presence"]
    assert subtype.classification_task == "subtype" and presence.classification_task == "presence"
    assert subtype.label_smoothing > 0 and subtype.predicts_classification
    for name in ("nnUNetTrainerStrokeNeXt_Tiny", "nnUNetTrainerStrokeNeXt_Presence_Tiny"):
        assert TRAINERS[name].is_tiny and TRAINERS[name].tiny_preset == "strokenext_tiny"


class FakeDataset:
    """nnU-Net's dataset interface: load_case -> (data (C, D, H, W), seg, seg_prev, properties)."""

    def __init__(self, images):
        self.images = images

    def load_case(self, identifier):
        return self.images[identifier], None, None, {}


def test_whole_2d_slices_are_batched_and_volumes_refused_in_2d():
    from nnunet_stroke.trainers.whole_image_data import WholeImageBatches

    images = {"a": np.ones((1, 1, 6, 8), np.float32), "b": np.full((1, 1, 8, 6), 2, np.float32)}
    batches = WholeImageBatches(FakeDataset(images), ["a", "b"], {"a": 0, "b": 2}, 2, two_d=True, training=False)
    batch = next(batches)
    assert batch["data"].shape == (2, 1, 8, 8) and batch["target"].tolist() == [0, 2]
    assert batch["data"][0, 0, 1:7, :].eq(1).all() and batch["data"][0, 0, 0].eq(0).all()
    assert batches.batches_per_pass == 1 and next(batches)["keys"] == ["a", "b"]
    volumes = WholeImageBatches(FakeDataset({"v": np.zeros((1, 4, 8, 8), np.float32)}), ["v"], {"v": 1}, 1,
                                two_d=True, training=False)
    with pytest.raises(UserError, match="case v has 4 slices"):
        next(volumes)
