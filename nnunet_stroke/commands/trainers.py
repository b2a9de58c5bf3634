"""`nnunet-stroke trainers`: every trainer of the package with its preset, paper and one line;
`nnunet-stroke trainers --preset NAME` prints a network preset resolved through its bases (JSON)."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("trainers", help="list every trainer: name, preset, paper, one line",
                                   description="List every trainer the package registers with nnU-Net "
                                               "(pass the name to nnUNetv2_train -tr).")
    parser.add_argument("--preset", metavar="NAME",
                        help="print this network preset resolved through its base chain (JSON) instead")
    parser.set_defaults(func=run)


def describe(trainer: type) -> dict[str, str]:
    preset = trainer.tiny_preset if trainer.is_tiny else trainer.network_preset
    planned = "nnU-Net plans" + (" (widths 8-64)" if trainer.is_tiny else "")
    return {
        "name": trainer.__name__,
        "preset": preset or planned,
        "paper": trainer.paper,
        "summary": (trainer.__doc__ or "").strip().splitlines()[0] if trainer.__doc__ else "",
        "param_check": "" if trainer.is_tiny else getattr(trainer, "param_check", ""),  # paper-scale figures
    }


def run(args) -> int:
    if args.preset:
        import json

        from nnunet_stroke.networks.registry import load_preset

        print(json.dumps(load_preset(args.preset), indent=2))
        return 0
    from nnunet_stroke.trainers import TRAINERS

    for name in sorted(TRAINERS):
        row = describe(TRAINERS[name])
        print(f"{row['name']}\n    preset: {row['preset']}\n    paper:  {row['paper']}\n    {row['summary']}")
        if row["param_check"]:
            print(f"    parameters checked against: {row['param_check']}")
    return 0
