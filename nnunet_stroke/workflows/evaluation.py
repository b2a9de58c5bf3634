"""Evaluation runs behind `nnunet-stroke evaluate` and `evaluate-splits`: evaluate folders or summarise
splits, write the JSON (and markdown) files and print the summary."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from nnunet_stroke.staging import atomic_write_text, check_writable


def evaluate_segmentations(ref: str, pred: str, out: str, **options) -> dict:
    """Evaluate the predictions in ``pred`` against ``ref`` (``options``: those of
    :func:`nnunet_stroke.evaluation.evaluate_folders`), write ``out`` (metrics.json), print warnings and the
    headline means; returns the metrics."""
    from nnunet_stroke.evaluation import evaluate_folders, write_metrics

    check_writable(Path(out).parent, "the folder of --out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed below from metrics["warnings"]
        metrics = evaluate_folders(ref, pred, **options)
    for warning in metrics["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    write_metrics(metrics, out)
    aggregate = metrics["aggregate"]
    summary = ", ".join(f"{key} {aggregate[key]['mean']:.4g} (n={aggregate[key]['n']})"
                        for key in metrics["protocol_metrics"] if aggregate.get(key, {}).get("mean") is not None)
    print(f"{metrics['n_cases']} cases, protocol {metrics['protocol']}: {summary}")
    print(f"wrote {out}")
    return metrics


def summarize_splits_to(inputs: list[str], out: str, ref: str | None, protocol: str, num_processes: int) -> dict:
    """Mean +- std across the splits of ``inputs`` (results folders or metrics.json files) into ``out`` and a
    markdown table next to it (``.md``, also printed); returns the summary."""
    from nnunet_stroke.evaluation.across_splits import splits_markdown, summarize_splits
    from nnunet_stroke.evaluation.aggregate import write_metrics

    summary = summarize_splits([Path(p) for p in inputs], ref_dir=ref, protocol=protocol,
                               num_processes=num_processes)
    out_path = Path(out)
    table = splits_markdown(summary)
    write_metrics(summary, out_path)
    atomic_write_text(out_path.with_suffix(".md"), table)
    print(table)
    print(f"wrote {out_path} and {out_path.with_suffix('.md')}")
    return summary
