"""The ``calibkit`` console script: argument parsing only; the work is done by
:mod:`calibkit.bench` and :mod:`calibkit.detection`."""

from __future__ import annotations

import argparse
import sys

import calibkit
from calibkit._commandline import run_command


def build_parser() -> argparse.ArgumentParser:
    """The ``calibkit`` argument parser, with the ``bench`` and detection commands.

    Returns
    -------
    argparse.ArgumentParser
    """
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
    """Run the ``calibkit`` console script.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success. A failure prints one line on stderr and raises ``SystemExit`` with
        status 2 (bad input), 130 (interrupt) or 1 (a bug; ``CALIBKIT_DEBUG=1`` raises the
        error itself, with its traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
