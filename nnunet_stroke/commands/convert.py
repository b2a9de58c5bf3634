"""`nnunet-stroke convert`: a stroke dataset as distributed -> ``$nnUNet_raw/DatasetID_NAME``."""
from __future__ import annotations

import importlib
from pathlib import Path

from nnunet_stroke.arguments import positive_int

# dataset -> (default dataset name, options only that converter takes)
CONVERTERS = {
    "isles22": ("ISLES22", ("with_flair",)),
    "atlas2": ("ATLAS2", ()),
    "teknofest": ("TEKNOFEST", ()),
    "aisd": ("AISD", ()),
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a downloaded stroke dataset into an nnU-Net raw dataset",
        description="Convert a stroke dataset, as distributed, into $nnUNet_raw/DatasetID_NAME with dataset.json "
                    "and cases.csv (lesion volume in ml, lesion count, site, class). Nothing is left behind when "
                    "the conversion fails; an existing dataset id is refused unless --overwrite.")
    p.add_argument("dataset", choices=sorted(CONVERTERS), help="which dataset SRC holds")
    p.add_argument("src", type=Path, help="the dataset's root folder (e.g. ISLES-2022/ or ATLAS_2/)")
    p.add_argument("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    p.add_argument("--name", default=None, help="dataset name (default: ISLES22, ATLAS2, TEKNOFEST or AISD)")
    p.add_argument("--overwrite", action="store_true", help="replace existing datasets with this id")
    p.add_argument("--with-flair", action="store_true",
                   help="isles22 only: add FLAIR, resampled (linear, not registered) onto the DWI grid, as channel 2")
    p.add_argument("-np", "--num-processes", type=positive_int, default=2,
                   help="parallel worker processes (default: 2)")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.errors import UserError

    default_name, own_options = CONVERTERS[args.dataset]
    options = {option: getattr(args, option) for option in own_options}
    if args.with_flair and "with_flair" not in own_options:
        raise UserError(f"--with-flair applies to isles22 only, not {args.dataset}; drop it")
    module = importlib.import_module(f"nnunet_stroke.dataset_conversion.{args.dataset}")
    folder = module.convert(args.src, args.dataset_id, name=args.name or default_name, overwrite=args.overwrite,
                            num_processes=args.num_processes, **options)
    print(f"wrote {folder}")
    return 0
