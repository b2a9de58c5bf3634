"""`nnunet-stroke ext-trainer-dir`: the folder for ``nnUNet_extTrainer``."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "ext-trainer-dir", help="print the folder to put in nnUNet_extTrainer",
        description="Print the folder that makes the stock nnU-Net commands find this package's trainers: "
                    "export nnUNet_extTrainer=$(nnunet-stroke ext-trainer-dir)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke import ext_trainer_dir

    print(ext_trainer_dir())
    return 0
