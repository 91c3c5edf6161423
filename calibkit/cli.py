"""The ``calibkit`` console script: argument parsing only; the work is done by
:mod:`calibkit.bench` and :mod:`calibkit.detection`."""

from __future__ import annotations

import argparse
import sys

import calibkit
from calibkit._commandline import run_command


def build_parser() -> argparse.ArgumentParser:
    from calibkit.bench.cli import add_subparser as add_bench
    from calibkit.detection.cli import add_subparser as add_detection

    parser = argparse.ArgumentParser(
        prog="calibkit",
        description="Post-hoc calibration for classifiers and object detectors.",
    )
    parser.add_argument("--version", action="version", version=f"calibkit {calibkit.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_bench(commands)
    add_detection(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
