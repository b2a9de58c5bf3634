"""`nnunet-stroke` command line.

Every module in ``nnunet_stroke.commands`` is one sub-command: it defines ``add_parser(subparsers)``,
which registers its parser and sets ``func`` (called with the parsed arguments, returning an exit code).
Command modules import heavy libraries (torch, nnunetv2) inside ``func`` so ``-h`` stays fast.
A command that wraps a stock nnU-Net entry point sets ``passthrough=True``: every argument it does not
know (``-h`` included) is handed to the stock command in ``stock_args``.

SIGTERM (a SLURM time limit, `kill`) ends the command through the normal exception path, so staging
folders are removed as after any error (SIGKILL cannot be caught: the next run removes what it leaves,
see nnunet_stroke/staging.py). Exit codes: 0 success, 2 a user error (bad input, arguments or
environment: a message naming the file or case and the fix, no traceback), 141 (128 + SIGPIPE) when the
reader of stdout went away, as in ``nnunet-stroke trainers | head -1``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading

from nnunet_stroke import __version__, commands
from nnunet_stroke.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet-stroke", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module_info.name}").add_parser(subparsers)
    return parser


def _terminate_handler(owner_pid: int):
    """SIGTERM -> SystemExit in the command's own process; a forked worker (nnU-Net's and the package's
    process pools fork) keeps the default action, so ``Pool.terminate()`` still ends its workers."""

    def terminate(signum, frame):
        if os.getpid() != owner_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise SystemExit(128 + signum)

    terminate.installed_by_cli = True
    return terminate


_SIGTERM = {signal.SIGTERM}
_forking = threading.local()  # the forking thread's signal mask before fork


def _block_sigterm_before_fork() -> None:
    _forking.mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGTERM)


def _restore_mask_after_fork(in_child: bool) -> None:
    if in_child and getattr(signal.getsignal(signal.SIGTERM), "installed_by_cli", False):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, _forking.mask)


# A SIGTERM that reaches a forked child before CPython's after-fork reset is recorded by the Python-level
# handler and then dropped, and Pool.terminate() waits for that worker forever (nnU-Net's fork pools hung
# so). SIGTERM is blocked across fork; the child gets the default action back before it is unblocked,
# so such a signal stays pending and then ends the child.
os.register_at_fork(before=_block_sigterm_before_fork, after_in_parent=lambda: _restore_mask_after_fork(False),
                    after_in_child=lambda: _restore_mask_after_fork(True))


def main(argv: list[str] | None = None) -> int:
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate_handler(os.getpid())) if in_main_thread else None
    try:
        try:
            code = _run(sys.argv[1:] if argv is None else argv)
        except SystemExit as done:  # argparse after -h or a usage error, SIGTERM
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141
    finally:
        if in_main_thread:  # a caller running several commands in one process gets its own handler back
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.stock_args = [*unknown, *args.stock_args]
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        return _fail(args.command, str(error))
    except OSError as error:
        from nnunet_stroke.staging import os_error_message

        message = os_error_message(error)
        if message is None:
            raise
        return _fail(args.command, message)


def _fail(command: str, message: str) -> int:
    print(f"nnunet-stroke {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
