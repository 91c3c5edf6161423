"""Command line: ``calibkit detection evaluate`` and ``calibkit detection calibrate``.

Argument parsing only; the work is done by :func:`calibkit.detection.evaluate` and
:class:`calibkit.detection.DetectionCalibrator`. :func:`add_subparser` registers the
``detection`` command on the ``calibkit`` console script; :func:`main` is a standalone entry point.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from calibkit._commandline import check_output_file, run_command
from calibkit.registry import calibrator_names

__all__ = ["add_subparser", "main"]

KEYS = ("laece", "laace", "lrp", "lrp_loc", "lrp_fp", "lrp_fn", "dece", "ap")
LABELS = {
    "laece": "LaECE (25 bins, class mean)",
    "laace": "LaACE",
    "lrp": "LRP",
    "lrp_loc": "LRP localisation",
    "lrp_fp": "LRP false positives",
    "lrp_fn": "LRP false negatives",
    "dece": "D-ECE (IoU 0.5, 10 bins, pooled)",
    "ap": "AP@[.50:.95]",
}


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register ``detection {evaluate, calibrate}`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "detection",
        help="evaluate or calibrate object-detector scores (COCO json)",
        description="Detection calibration: metrics and class-wise calibration on COCO json.",
    )
    sub = parser.add_subparsers(dest="detection_command", required=True, metavar="ACTION")

    ev = sub.add_parser(
        "evaluate",
        help="LaECE, LaACE, LRP (and components), D-ECE and optionally AP",
        description="Every metric on exactly the detections given (no thresholding).",
    )
    ev.add_argument("--gt", required=True, help="COCO ground-truth json")
    ev.add_argument("--dets", required=True, help="COCO results json")
    _matching_args(ev)
    ev.add_argument("--ap", action="store_true",
                    help="also compute AP@[.50:.95] and print the twelve numbers of the COCO "
                         "summary (pycocotools' COCOeval.stats), or on LVIS ground truth the "
                         "numbers of LVIS's summary (LVISEval.results)")
    ev.add_argument("--bootstrap", type=int, default=None, metavar="N",
                    help="also print image-level bootstrap intervals from N resamples")
    ev.add_argument("--confidence-level", type=float, default=0.95,
                    help="coverage of the bootstrap intervals (default 0.95)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the resamples (default 0)")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.set_defaults(func=_run_evaluate)

    cal = sub.add_parser(
        "calibrate",
        help="fit class-wise calibrators on validation detections, apply to test detections",
        description="Fit DetectionCalibrator on (--gt-val, --dets-val) and write the "
        "calibrated, thresholded --dets to --out as a COCO results json.",
    )
    cal.add_argument("--gt-val", required=True, help="validation COCO ground-truth json")
    cal.add_argument("--dets-val", required=True, help="validation COCO results json")
    cal.add_argument("--dets", required=True, help="COCO results json to calibrate")
    cal.add_argument("--gt", default=None,
                     help="ground truth of --dets (optional: only its image sizes are read, "
                          "which polygon masks need with --iou-type segm)")
    cal.add_argument("--out", required=True, help="output COCO results json")
    cal.add_argument(
        "--method",
        default="isotonic",
        choices=calibrator_names(binary=True),
        help="a binary calibrator of calibkit.registry (default isotonic)",
    )
    cal.add_argument("--pooled", action="store_true", help="one calibrator for all classes")
    cal.add_argument("--min-class-detections", type=int, default=1, metavar="N",
                     help="classes with fewer than N training detections use one calibrator "
                          "pooled over all classes (default 1: every class its own)")
    cal.add_argument("--target", default="iou", choices=("iou", "binary"))
    cal.add_argument(
        "--thresholds",
        default="lrp",
        help="'lrp' (LRP-optimal, default), a score in [0, 1], or 'none'",
    )
    _matching_args(cal)
    cal.add_argument("--save-model", default=None, help="also save the fitted model (JSON)")
    cal.set_defaults(func=_run_calibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``main(["evaluate", "--gt", ...])`` (a leading ``"detection"`` is
    accepted too). Returns the exit status; errors in the inputs exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "detection":
        argv = argv[1:]
    top = argparse.ArgumentParser(prog="calibkit")
    commands = top.add_subparsers(dest="command", required=True)
    add_subparser(commands)
    args = top.parse_args(["detection", *argv])
    return run_command(args.func, args, prog="calibkit detection")


def _matching_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tau", type=float, default=0.0, help="IoU threshold of a TP (default 0)")
    p.add_argument("--iou-op", default="ge", choices=("ge", "gt"),
                   help="TP iff IoU >= tau ('ge', default) or IoU > tau ('gt')")
    p.add_argument("--iou-type", default="bbox", choices=("bbox", "segm"),
                   help="box IoU ('bbox', default) or mask IoU of the segmentations ('segm')")
    p.add_argument("--dataset", default="auto", choices=("auto", "coco", "lvis"),
                   help="COCO's rules or LVIS's federated rules ('auto', default: LVIS's when "
                        "the ground truth's images carry neg_category_ids)")


def _run_evaluate(args) -> int:
    from calibkit.detection.cocoeval import coco_summary, lvis_summary
    from calibkit.detection.io import load_dets, load_gt
    from calibkit.detection.matching import _resolve
    from calibkit.detection.metrics import evaluate

    kw = {}
    if args.bootstrap is not None:
        kw = {"n_bootstrap": args.bootstrap, "confidence_level": args.confidence_level,
              "random_state": args.seed}
    gt = load_gt(args.gt, iou_type=args.iou_type)
    dets = load_dets(args.dets, iou_type=args.iou_type, gt=gt)
    dataset, _ = _resolve(gt, args.dataset, None, "evaluate")
    result = evaluate(gt, dets, tau=args.tau, iou_op=args.iou_op, ap=args.ap,
                      iou_type=args.iou_type, dataset=dataset, **kw)
    summary = None
    if args.ap:
        summary = (lvis_summary(gt, dets, iou_type=args.iou_type) if dataset == "lvis"
                   else coco_summary(gt, dets, iou_type=args.iou_type))
    key = "lvis_summary" if dataset == "lvis" else "coco_summary"
    if args.json:
        out = {k: _json_value(v) for k, v in result.items()}
        if summary is not None:
            out[key] = summary
        print(json.dumps(out))
    else:
        print(format_table(result, tau=args.tau, iou_op=args.iou_op,
                           bootstrap=args.bootstrap, confidence_level=args.confidence_level,
                           iou_type=args.iou_type, dataset=dataset))
        if summary is not None:
            print()
            print(format_lvis_summary(summary) if dataset == "lvis" else format_summary(summary))
    return 0


#: (AP or AR, IoU label, area, maxDets) of each summary line, as pycocotools prints them
SUMMARY_LINES = {
    "AP": ("Average Precision", "(AP)", "0.50:0.95", "all", 100),
    "AP50": ("Average Precision", "(AP)", "0.50", "all", 100),
    "AP75": ("Average Precision", "(AP)", "0.75", "all", 100),
    "APs": ("Average Precision", "(AP)", "0.50:0.95", "small", 100),
    "APm": ("Average Precision", "(AP)", "0.50:0.95", "medium", 100),
    "APl": ("Average Precision", "(AP)", "0.50:0.95", "large", 100),
    "AR1": ("Average Recall", "(AR)", "0.50:0.95", "all", 1),
    "AR10": ("Average Recall", "(AR)", "0.50:0.95", "all", 10),
    "AR100": ("Average Recall", "(AR)", "0.50:0.95", "all", 100),
    "ARs": ("Average Recall", "(AR)", "0.50:0.95", "small", 100),
    "ARm": ("Average Recall", "(AR)", "0.50:0.95", "medium", 100),
    "ARl": ("Average Recall", "(AR)", "0.50:0.95", "large", 100),
}


def format_summary(summary: dict) -> str:
    """The twelve COCO summary lines in pycocotools' layout (``COCOeval.summarize``)."""
    lines = []
    for key, (title, short, iou, area, md) in SUMMARY_LINES.items():
        lines.append(f" {title:<18} {short} @[ IoU={iou:<9} | area={area:>6s} | "
                     f"maxDets={md:>3d} ] = {summary[key]:0.3f}   {key}")
    return "\n".join(lines)


def format_lvis_summary(summary: dict) -> str:
    """LVIS's summary lines in the layout of ``LVISEval.print_results``."""
    lines = []
    for key, value in summary.items():
        title, short = (("Average Precision", "(AP)") if key.startswith("AP")
                        else ("Average Recall", "(AR)"))
        iou = f"{float(key[2:]) / 100:0.2f}" if len(key) > 2 and key[2].isdigit() else (
            "0.50:0.95")
        group = key[2] if len(key) > 2 and key[2] in "rcf" else "all"
        area = key[2] if len(key) > 2 and key[2] in "sml" else "all"
        md = int(key.split("@")[1]) if "@" in key else 300
        lines.append(f" {title:<18} {short} @[ IoU={iou:<9} | area={area:>6s} | "
                     f"maxDets={md:>3d} catIds={group:>3s}] = {value:0.3f}   {key}")
    return "\n".join(lines)


def _run_calibrate(args) -> int:
    from calibkit.detection.calibrate import DetectionCalibrator

    th = args.thresholds.lower()
    if th in ("none", "lrp"):
        thresholds = None if th == "none" else "lrp"
    else:
        try:
            thresholds = float(th)
        except ValueError:
            raise ValueError(
                f"--thresholds must be 'lrp', 'none' or a score in [0, 1]; got {th!r}."
            ) from None
    out_path = check_output_file(args.out, "--out")
    model_path = None if not args.save_model else check_output_file(args.save_model,
                                                                     "--save-model")
    cal = DetectionCalibrator(
        method=args.method, classwise=not args.pooled, target=args.target, thresholds=thresholds,
        tau=args.tau, iou_op=args.iou_op, iou_type=args.iou_type, dataset=args.dataset,
        min_class_detections=args.min_class_detections,
    ).fit(args.gt_val, args.dets_val)
    out = cal.transform(args.dets, gt=args.gt).to_coco()
    out_path.write_text(json.dumps(out))
    if model_path is not None:
        cal.save(model_path)
    print(f"wrote {len(out)} calibrated detections to {out_path}")
    return 0


def format_table(result: dict, *, tau: float = 0.0, iou_op: str = "ge", bootstrap=None,
                 confidence_level: float = 0.95, iou_type: str = "bbox",
                 dataset: str = "coco") -> str:
    """A readable table of :func:`calibkit.detection.evaluate`'s result (with a column of
    bootstrap intervals when the result has them)."""
    op = ">=" if iou_op == "ge" else ">"
    what = "mask" if iou_type == "segm" else "box"
    rules = ", LVIS's federated rules" if dataset == "lvis" else ""
    lines = [f"matching: TP iff {what} IoU {op} {tau:g}{rules}"]
    with_ci = any(f"{key}_ci" in result for key in KEYS)
    if with_ci:
        lines.append(f"{confidence_level:.0%} image-level bootstrap intervals "
                     f"({bootstrap} resamples, percentile)")
    header = f"{'metric':<34} value" + ("   interval" if with_ci else "")
    lines += [header, "-" * len(header)]
    for key in KEYS:
        if key in result:
            line = f"{LABELS[key]:<34} {result[key]:.4f}"
            if f"{key}_ci" in result:
                lo, hi = result[f"{key}_ci"]
                line += f"  [{lo:.4f}, {hi:.4f}]"
            lines.append(line)
    return "\n".join(lines)


def _json_value(v):
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    return None if isinstance(v, float) and math.isnan(v) else v


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
