"""`nnunet-stroke predict-heldout ID -c CONFIG -f FOLD -tr TRAINER`: predict and evaluate a fold's test cases."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict-heldout", help="predict and evaluate the held-out test cases of an 8:1:1 fold (5-9)",
        description="Predict the held-out test cases of fold FOLD (heldout_test.json, written by "
                    "`nnunet-stroke splits`) from the fold's final checkpoint into <fold folder>/heldout_test/ "
                    "and write metrics.json there.")
    parser.add_argument("dataset", help="dataset id or name")
    parser.add_argument("-c", dest="configuration", default="3d_fullres")
    parser.add_argument("-f", dest="fold", type=int, required=True, help="an 8:1:1 fold, 5-9")
    parser.add_argument("-tr", dest="trainer", default="nnUNetTrainerStrokeUNet")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans")
    parser.add_argument("-chk", dest="checkpoint", default="checkpoint_final.pth")
    parser.add_argument("--protocol", default="isles22", choices=["isles22", "atlas2", "lbmnet"])
    parser.add_argument("--disable_tta", action="store_true", help="no mirroring at prediction (8x faster in 3D)")
    parser.add_argument("-device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.workflows.heldout import heldout_cases, predict_heldout

    heldout_cases(args.dataset, args.fold)  # an unknown dataset or fold fails here, before torch is loaded
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    metrics = predict_heldout(args.dataset, args.configuration, args.fold, args.trainer, plans=args.plans,
                              protocol=args.protocol, device=device, checkpoint=args.checkpoint,
                              use_mirroring=not args.disable_tta)
    if metrics["protocol"] == "classification":
        auroc, rule = metrics["aggregate"]["auroc"]["value"], metrics["threshold"]
        auroc_text = "undefined" if auroc is None else f"{auroc:.4f}"
        rule_text = "argmax" if rule["threshold"] is None else f"p >= {rule['threshold']:.4g}"
        print(f"{metrics['n_cases']} held-out cases: accuracy {metrics['aggregate']['accuracy']['value']:.4f}, "
              f"AUROC {auroc_text}, labels {rule_text} (chosen on the validation cases); metrics.json in the "
              f"fold's heldout_test folder")
        return 0
    dice = metrics["aggregate"]["dice"]
    spread = f" +- {dice['std']:.4f}" if dice["std"] is not None else ""  # std is null for a single case
    print(f"{len(metrics['cases'])} held-out cases: mean Dice {dice['mean']:.4f}{spread}; metrics.json in the "
          f"fold's heldout_test folder")
    return 0
