"""`nnunet-stroke phantom`: write a synthetic stroke dataset in a real dataset's file layout."""
from __future__ import annotations

from pathlib import Path

from nnunet_stroke.arguments import positive_int

LAYOUT_NAMES = ("isles22", "isles22-github", "atlas2", "teknofest", "aisd")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "phantom", help="write a synthetic stroke dataset in a real dataset's layout",
        description="Write a synthetic stroke dataset (brain-like anatomy, lesions, stroke mimics, bias field, "
                    "noise) in the file layout of a real release, ready for `nnunet-stroke convert`. "
                    "The same seed gives byte-identical files.")
    p.add_argument("out", type=Path, help="folder to write into; the dataset root is created inside it")
    p.add_argument("--layout", choices=LAYOUT_NAMES, default="isles22",
                   help="isles22 = Zenodo BIDS release, isles22-github = rawdata/derivatives release, "
                        "atlas2 = ATLAS v2.0, teknofest / aisd = CT sets (default: isles22)")
    p.add_argument("--cases", type=positive_int, default=20, help="number of cases (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--shape", type=positive_int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="voxels of the isotropic grid (default: the layout's small CPU size, e.g. 40 64 64 for "
                        "ISLES at 2 mm; 72 112 112 is ISLES-sized)")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.phantom import write_phantom

    root = write_phantom(args.out, layout=args.layout, cases=args.cases, seed=args.seed,
                         shape=tuple(args.shape) if args.shape else None)
    print(f"wrote {args.cases} {args.layout} phantom cases to {root}")
    return 0
