"""``calibkit bench``: compare every calibrator across model scales (classification and COCO).

::

    calibkit bench classification [--data DIR] [--methods ...] [--seeds N] [--out DIR]
    calibkit bench coco [--gt GT.json --dets NAME=DETS.json ...] [--out DIR]
    calibkit bench all [--out DIR]

With no data argument the bundled data is used (:mod:`calibkit.datasets`). ``--jobs N``
runs the (model, method, seed) grid over joblib workers; ``--backend dask`` (with
``--scheduler ADDRESS`` or a local cluster) or ``--backend ray`` sends it to a cluster.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from calibkit._commandline import check_output_dir, run_command

DEFAULT_OUT = "calibkit-bench"


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` command (with ``classification``, ``coco`` and ``all``) to an
    argparse ``subparsers`` object; each leaf sets ``func`` to call with the parsed args.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The object ``ArgumentParser.add_subparsers()`` returns.

    Returns
    -------
    argparse.ArgumentParser
        The ``bench`` parser.
    """
    from calibkit.bench.coco import COCO_METHODS, DEFAULT_BOOTSTRAP
    from calibkit.bench.methods import CLASSIFICATION_METHODS, DEFAULT_CLASSIFICATION_METHODS

    bench = subparsers.add_parser(
        "bench", help="benchmark every calibrator across model scales",
        description=__doc__.split("::")[0].strip(),
    )
    sub = bench.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")

    def common(p, default_seeds):
        p.add_argument("--seeds", type=int, default=default_seeds,
                       help=f"number of random splits, seeds 0..N-1 (default {default_seeds})")
        p.add_argument("--out", default=DEFAULT_OUT,
                       help=f"output folder (default ./{DEFAULT_OUT})")
        p.add_argument("--jobs", type=int, default=1,
                       help="parallel joblib workers over the (model, method, seed) grid")
        p.add_argument("--backend", default=None,
                       help="joblib backend: loky (default with --jobs>1), threading, dask, ray")
        p.add_argument("--scheduler", default=None,
                       help="Dask scheduler address for --backend dask (default: local)")
        p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
        p.add_argument("--quiet", action="store_true", help="no progress bar or table")

    cls = sub.add_parser("classification", help="calibrators x classifier families",
                         description="Classification protocol (see docs/benchmarks.md).")
    cls.add_argument("--data", action="append", default=None, metavar="DIR",
                     help="a folder of model outputs (*.npz, *.csv); repeatable; "
                          "default: the bundled families")
    cls.add_argument("--family", nargs="+", default=None,
                     help="bundled families to run (cifar100, cifar10, imagenet)")
    cls.add_argument("--models", nargs="+", default=None, help="only these model names")
    cls.add_argument("--methods", nargs="+", default=None,
                     help=f"choose from {', '.join(CLASSIFICATION_METHODS)} (default: "
                          f"{', '.join(DEFAULT_CLASSIFICATION_METHODS)})")
    cls.add_argument("--full", action="store_true",
                     help="every method, also the full-matrix maps (dirichlet, matrix, sms, "
                          "vector) that take minutes per 100-class fit")
    cls.add_argument("--n-bins", type=int, default=15)
    cls.add_argument("--alpha", type=float, default=0.1, help="conformal miscoverage")
    cls.add_argument("--test-size", type=float, default=0.5)
    cls.add_argument("--max-samples", type=int, default=None,
                     help="use a random subset (seed 12345) of this many rows per model")
    common(cls, 5)
    cls.set_defaults(func=run_classification_command)

    coco = sub.add_parser("coco", help="detection calibrators x COCO detectors",
                          description="COCO protocols (see docs/benchmarks.md).")
    coco.add_argument("--gt", default=None, help="COCO ground-truth json")
    coco.add_argument("--dets", nargs="+", default=None, metavar="NAME=DETS.json",
                      help="one COCO results json per detector")
    coco.add_argument("--data", default=None, metavar="DIR",
                      help="a folder with one ground-truth json and one results json per detector")
    coco.add_argument("--detectors", nargs="+", default=None, help="only these detectors")
    coco.add_argument("--methods", nargs="+", default=list(COCO_METHODS),
                      help=f"choose from {', '.join(COCO_METHODS)} (default: all)")
    coco.add_argument("--max-images", type=int, default=None,
                      help="use a random subset (seed 12345) of this many images")
    coco.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="N",
                      help="image-level bootstrap resamples for the intervals and the paired "
                           f"comparison with identity (default {DEFAULT_BOOTSTRAP}; 0: none)")
    common(coco, 3)
    coco.set_defaults(func=run_coco_command)

    both = sub.add_parser("all", help="classification and COCO on the bundled data")
    common(both, 5)
    both.add_argument("--full", action="store_true",
                      help="every classification method (see classification --full)")
    both.add_argument("--coco-seeds", type=int, default=3)
    both.set_defaults(func=run_all_command)
    return bench


def main(argv: list[str] | None = None) -> int:
    """Run ``calibkit bench ...`` from ``argv`` (without the leading ``bench``); for tests.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after ``bench``; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success. A failure prints one line on stderr and raises ``SystemExit`` with
        status 2 (bad input), 130 (interrupt) or 1 (a bug).
    """
    parser = argparse.ArgumentParser(prog="calibkit")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subparser(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(["bench", *argv])
    args.command_line = " ".join(shlex.quote(a) for a in ["calibkit", "bench", *argv])
    return run_command(args.func, args)


# --------------------------------------------------------------------------------------


def run_classification_command(args, *, out=None, command=None) -> int:
    """``calibkit bench classification``: load the models, run the protocol, write the
    results (:func:`~calibkit.bench.write_classification`) and, unless ``--quiet``, print
    the tables.

    The output folder, the method names, ``--jobs`` and ``--seeds`` are checked before any
    data is loaded.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the ``classification`` subcommand (``data``, ``family``,
        ``models``, ``methods`` (None: the default run, or every method with ``full``),
        ``seeds``, ``n_bins``, ``alpha``, ``test_size``, ``max_samples``, ``out``, ``jobs``,
        ``backend``, ``scheduler``, ``no_plots``, ``quiet``).
    out : str, os.PathLike or None, default=None
        The output folder; None uses ``args.out``.
    command : str or None, default=None
        The command line recorded in the outputs; None rebuilds it from ``args`` (or
        ``sys.argv``).

    Returns
    -------
    int
        The exit status, 0 (errors are raised, and reported by the command-line handler).
    """
    from calibkit.bench._parallel import use_backend
    from calibkit.bench.classification import ClassificationConfig, run_classification
    from calibkit.bench.methods import (
        CLASSIFICATION_METHODS,
        DEFAULT_CLASSIFICATION_METHODS,
        FULL_CLASSIFICATION_METHODS,
        check_methods,
    )
    from calibkit.bench.report import (
        classification_text,
        finish_classification,
        write_classification,
    )

    if args.methods is None:
        args.methods = list(FULL_CLASSIFICATION_METHODS if getattr(args, "full", False)
                            else DEFAULT_CLASSIFICATION_METHODS)
    # cheap checks first, so a typo does not wait for the data to load
    out = check_output_dir(out or args.out, "--out")
    check_methods(args.methods, CLASSIFICATION_METHODS, "--methods")
    _check_jobs(args)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1; got {args.seeds}.")
    models = _classification_models(args)
    config = ClassificationConfig(methods=tuple(args.methods), seeds=args.seeds,
                                  test_size=getattr(args, "test_size", 0.5),
                                  n_bins=getattr(args, "n_bins", 15),
                                  alpha=getattr(args, "alpha", 0.1))
    t0 = time.perf_counter()
    with use_backend(args.backend, args.scheduler):
        result = run_classification(models, config, jobs=args.jobs, backend=args.backend,
                                    progress=not args.quiet)
    result["wall_time_s"] = time.perf_counter() - t0
    finish_classification(result)
    write_classification(result, out, command=command or _command(args), plots=not args.no_plots)
    if not args.quiet:
        print(classification_text(result))
        print(f"\nclassification: {len(result['rows'])} runs in {result['wall_time_s']:.1f} s;"
              f" results in {out}/ (report.md, results.json, results.csv)")
    return 0


def run_coco_command(args, *, out=None, command=None) -> int:
    """``calibkit bench coco``: load the detections, run the protocols, write the results
    (:func:`~calibkit.bench.write_coco`) and, unless ``--quiet``, print the tables.

    The output folder, the method names, ``--jobs`` and ``--seeds`` are checked before any
    data is loaded.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the ``coco`` subcommand (``gt`` with ``dets``, or ``data``, or
        neither for the bundled detectors; ``detectors``, ``methods``, ``max_images``,
        ``bootstrap``, ``seeds``, ``out``, ``jobs``, ``backend``, ``scheduler``,
        ``no_plots``, ``quiet``).
    out : str, os.PathLike or None, default=None
        The output folder; None uses ``args.out``.
    command : str or None, default=None
        The command line recorded in the outputs; None rebuilds it from ``args`` (or
        ``sys.argv``).

    Returns
    -------
    int
        The exit status, 0 (errors are raised, and reported by the command-line handler).
    """
    from calibkit.bench._parallel import use_backend
    from calibkit.bench.coco import COCO_METHODS, CocoConfig, coco_text, run_coco, write_coco
    from calibkit.bench.methods import check_methods

    out = check_output_dir(out or args.out, "--out")
    check_methods(args.methods, COCO_METHODS, "--methods")
    _check_jobs(args)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1; got {args.seeds}.")
    data = _coco_data(args)
    config = CocoConfig(methods=tuple(args.methods), seeds=args.seeds,
                        bootstrap=getattr(args, "bootstrap", CocoConfig.bootstrap))
    t0 = time.perf_counter()
    with use_backend(args.backend, args.scheduler):
        result = run_coco(data, config, jobs=args.jobs, backend=args.backend,
                          progress=not args.quiet)
    result["wall_time_s"] = time.perf_counter() - t0
    write_coco(result, out, command=command or _command(args), plots=not args.no_plots)
    if not args.quiet:
        print(coco_text(result))
        print(f"\ncoco: {len(result['rows'])} runs in {result['wall_time_s']:.1f} s; "
              f"results in {out}/")
    return 0


def run_all_command(args) -> int:
    """``calibkit bench all``: the default classification run and the COCO run on the
    bundled data, under ``args.out/classification`` and ``args.out/coco``, with a
    ``report.md`` linking the two.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the ``all`` subcommand (``full``, ``seeds``, ``coco_seeds``,
        ``out``, ``jobs``, ``backend``, ``scheduler``, ``no_plots``, ``quiet``).

    Returns
    -------
    int
        The exit status, 0.
    """
    from calibkit.bench.coco import COCO_METHODS
    from calibkit.bench.methods import (
        DEFAULT_CLASSIFICATION_METHODS,
        FULL_CLASSIFICATION_METHODS,
    )

    out = check_output_dir(args.out, "--out")
    command = _command(args)
    ns = argparse.Namespace(**vars(args))
    ns.data = ns.family = ns.models = ns.max_samples = None
    ns.methods = list(FULL_CLASSIFICATION_METHODS if args.full
                      else DEFAULT_CLASSIFICATION_METHODS)
    ns.n_bins, ns.alpha, ns.test_size = 15, 0.1, 0.5
    run_classification_command(ns, out=out / "classification", command=command)
    ns = argparse.Namespace(**vars(args))
    ns.gt = ns.dets = ns.data = ns.detectors = ns.max_images = None
    ns.methods = list(COCO_METHODS)
    ns.seeds = args.coco_seeds
    run_coco_command(ns, out=out / "coco", command=command)
    (out / "report.md").write_text(
        "# calibkit bench all\n\n"
        f"Command: `{command}`\n\n"
        "- [classification](classification/report.md)\n- [coco](coco/report.md)\n"
    )
    return 0


def _classification_models(args):
    from calibkit import datasets
    from calibkit.bench.classification import subsample

    if args.data:
        if args.family:
            raise ValueError("--family selects bundled data; it cannot be combined with --data.")
        models = [m for d in args.data for m in datasets.load_directory(d)]
        if args.models:
            known = {m.name for m in models}
            unknown = sorted(set(args.models) - known)
            if unknown:
                raise ValueError(f"--models: {unknown} not found in --data; available: "
                                 f"{sorted(known)}.")
            models = [m for m in models if m.name in args.models]
    else:
        models = datasets.load_bundled_classification(args.family or datasets.FAMILIES,
                                                      models=args.models)
    if args.max_samples is not None:
        if args.max_samples < 10:
            raise ValueError(f"--max-samples must be at least 10; got {args.max_samples}.")
        models = [subsample(m, args.max_samples) for m in models]
    return models


def _coco_data(args):
    import numpy as np

    from calibkit import datasets

    if args.gt or args.dets:
        if not (args.gt and args.dets):
            raise ValueError("--gt and --dets go together: give the ground truth and at least "
                             "one NAME=DETS.json.")
        dets = {}
        for item in args.dets:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--dets expects NAME=DETS.json; got {item!r}.")
            dets[name] = path
        data = datasets.load_coco(args.gt, dets)
    elif args.data:
        data = datasets.load_coco_directory(args.data)
    else:
        data = datasets.load_bundled_coco(args.detectors, arrays=True)
    if args.detectors and (args.gt or args.data):
        unknown = sorted(set(args.detectors) - set(data.names))
        if unknown:
            raise ValueError(f"--detectors: {unknown} not found; available: {data.names}.")
        data = datasets.DetectionOutputs(
            data.ground_truth, {k: v for k, v in data.detections.items()
                                if k in args.detectors}, data.info)
    if args.max_images is not None:
        ids = data.image_ids
        if args.max_images < 10:
            raise ValueError(f"--max-images must be at least 10; got {args.max_images}.")
        if len(ids) > args.max_images:
            keep = np.random.default_rng(12345).choice(ids, args.max_images, replace=False)
            data = data.subset_images(keep)
    return data


def _check_jobs(args) -> None:
    if args.jobs == 0 or args.jobs < -1:
        raise ValueError(f"--jobs must be a positive number of workers or -1 (all cores); "
                         f"got {args.jobs}.")


def _command(args=None) -> str:
    if getattr(args, "command_line", None):
        return args.command_line
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]]
    if argv[0] in ("__main__.py", "pytest", "-c", ""):
        argv[0] = "calibkit"
    return " ".join(shlex.quote(a) for a in argv)


if __name__ == "__main__":
    sys.exit(main())
