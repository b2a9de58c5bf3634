"""`nnunet-stroke plan ID --planner lbmnet [--gpu-memory-gb 24]`: nnU-Net plans for LBMNet as its paper ran it
(1 mm, at most five resolution levels, patch sized for the GPU), written as ``nnUNetLBMNetPlans`` into
$nnUNet_preprocessed/DatasetID_Name/; the dataset fingerprint is extracted first when missing. Then the
stock commands: ``nnUNetv2_preprocess -d ID -plans_name nnUNetLBMNetPlans -c 3d_fullres`` and
``nnUNetv2_train ID 3d_fullres FOLD -tr nnUNetTrainerLBMNet -p nnUNetLBMNetPlans``."""
from __future__ import annotations

from nnunet_stroke.arguments import positive_float, positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="nnU-Net plans for LBMNet (1 mm, <= five levels): nnUNetLBMNetPlans",
                                   description=__doc__)
    parser.add_argument("dataset", help="dataset id or name, e.g. 501 or Dataset501_ATLAS2")
    parser.add_argument("--planner", required=True, choices=("lbmnet",), help="which planner (lbmnet)")
    parser.add_argument("--gpu-memory-gb", type=positive_float, default=None,
                        help="GPU memory the patch size is chosen for (default 24, the paper's RTX 3090)")
    parser.add_argument("-np", dest="num_processes", type=positive_int, default=None,
                        help="processes for fingerprint extraction (default: nnU-Net's, nnUNet_def_n_proc)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.workflows.planning import next_commands, plan

    plans_file = plan(args.dataset, args.planner, args.gpu_memory_gb, args.num_processes)
    dataset_id = int(plans_file.parent.name[len("Dataset"):].split("_")[0])
    print(f"wrote {plans_file}\nnext:")
    for command in next_commands(dataset_id, plans_file.stem):
        print(f"  {command}")
    return 0
