"""How every ``calibkit`` command ends: the one error handler of the command lines.

``calibkit``, ``calibkit bench ...`` and ``calibkit detection ...`` run their work through
:func:`run_command`: a failure is one line on stderr that names what went wrong (the library's
errors name the argument or the file, and say the fix) and a non-zero exit status, never a
traceback. Exit status 2 is bad input (a ``ValueError`` or ``TypeError`` from the library, an
unreadable or unwritable file), 130 an interrupt, and 1 an unexpected error (a bug: set
``CALIBKIT_DEBUG=1`` to see its traceback).
"""

from __future__ import annotations

import os
import sys

__all__ = ["run_command", "check_output_file", "check_output_dir"]


def run_command(func, args, *, prog: str = "calibkit") -> int:
    """``func(args)`` with every failure turned into one line on stderr and an exit status."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        _fail(prog, "interrupted", 130)
    except (ValueError, TypeError) as exc:
        _fail(prog, f"error: {_one_line(exc)}", 2)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        what = exc.strerror or _one_line(exc)
        _fail(prog, f"error: {where}{what}", 2)
    except MemoryError:
        _fail(prog, "error: out of memory; use a smaller input or fewer workers", 2)
    except Exception as exc:  # a bug, not bad input: one line, traceback on request
        if os.environ.get("CALIBKIT_DEBUG"):
            raise
        _fail(prog, f"unexpected error ({type(exc).__name__}: {_one_line(exc)}); set "
                    "CALIBKIT_DEBUG=1 for the traceback and please report it", 1)
    return 1  # pragma: no cover


def check_output_file(path, option: str):
    """An output file path: not a directory, in an existing directory."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option}: {p} is a directory; give a file path.")
    if not p.parent.is_dir():
        raise ValueError(f"{option}: the folder {p.parent} does not exist; create it first.")
    return p


def check_output_dir(path, option: str):
    """An output folder path: not an existing file."""
    from pathlib import Path

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option}: {p} is a file; give a folder path (it is created).")
    return p


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _fail(prog: str, message: str, status: int):
    sys.stderr.write(f"{prog}: {message}\n")
    raise SystemExit(status)
