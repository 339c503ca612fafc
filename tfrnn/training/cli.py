"""What the three CLIs share: flags, a quiet TensorFlow, and every end of a
command as one line.

No TensorFlow at import: each CLI parses its flags first (`--help` answers
at once), then calls `quiet_tensorflow()` and imports the library.

Exit status: 0 when done (`--help`, `--helpshort` and `--helpfull` too);
1 after one `error: MESSAGE` line on stderr, for a flag absl cannot parse as
for a value, a run directory or data tfrnn refuses; 128 + the signal after one
`interrupted ...` line (130: Ctrl-C, SIGINT; 143: SIGTERM), at any moment from
flag parsing on, TensorFlow's import included.
"""

import contextlib
import difflib
import os
import re
import signal
import sys

from tfrnn.training.errors import Interrupted
from tfrnn.training.errors import TfrnnError


def quiet_tensorflow():
    """Imports TensorFlow without its C++ start-up lines; returns the module.

    Unless the user set `TF_CPP_MIN_LOG_LEVEL` (then every line they asked
    for is printed), the level is 3 and the import runs with stderr closed:
    the lines TensorFlow writes before it reads the level ("All log messages
    before absl::InitializeLog()", oneDNN, CUDA drivers) and the later
    "failed call to cuInit" of a machine without a GPU are not shown.
    """
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # progress is printed; INFO is noise
    quiet = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _sigterm_for_this_thread_only(), _stderr_closed() if quiet else contextlib.nullcontext():
        import tensorflow as tf
    return tf


@contextlib.contextmanager
def _sigterm_for_this_thread_only():
    """Blocks SIGTERM meanwhile: the threads TensorFlow starts (importing
    it) inherit the block, so SIGTERM always reaches the main thread, and
    stays pending while the main thread blocks it too (how
    `tfrnn.training.workers` sees one while TensorFlow waits for workers)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@contextlib.contextmanager
def _stderr_closed():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def run(function, *args):
    """`function(*args)`, with every tfrnn error as one line.

    `TfrnnError`: "error: MESSAGE" on stderr, exit status 1. `Interrupted`
    (the training loop saved a checkpoint): its line, 128 + the signal.
    (Any other interrupt is `main`'s.)
    """
    try:
        return function(*args)
    except Interrupted as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(interrupted.exit_code)
    except TfrnnError as error:
        if getattr(error, "end_process_now", False):  # workers.WorkerLost
            print(f"error: {error}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(1)
        sys.exit(f"error: {error}")


def main(define_flags, main_function):
    """The command: `define_flags()`, then `main_function(argv)` with the flags
    parsed (`app.run`), every end one line (the module's docstring).

    From here on SIGTERM raises `KeyboardInterrupt` as SIGINT does, and an
    interrupt outside a training step (parsing, TensorFlow's import, loading,
    exporting) prints one line and exits 130 or 143. SIGINT too where the
    command started with it ignored (a background job of a shell script:
    `kill -INT` was ignored until training began, then honoured). A closed
    output pipe (`python -m tfrnn.train --help | head`) ends quietly, as
    other tools do.
    """
    from absl import app

    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        define_flags()
        app.run(main_function, flags_parser=_parse_flags)
    except KeyboardInterrupt as interrupt:
        number = interrupt.args[0] if interrupt.args else signal.SIGINT
        print(
            "interrupted outside a training step; the last checkpoint (if any) "
            "is kept; rerun the same command to resume",
            file=sys.stderr,
        )
        sys.exit(128 + number)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _parse_flags(argv):
    """absl's FLAGS parsed from `argv`; the arguments left (the program).

    A flag absl refuses, or an argument that is not a flag: one `error:`
    line, exit 1. absl's help flags print the help and exit 1 while parsing,
    the only exit there: help asked for is a success, 0.
    """
    from absl import flags

    try:
        argv = flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(f"error: {_flag_error(error, flags.FLAGS)}")
    except SystemExit as exit:
        sys.exit(0 if exit.code == 1 else exit.code)
    if len(argv) > 1:
        sys.exit(
            f"error: unexpected argument {argv[1]!r}: flags are written --NAME=VALUE "
            "(--help lists them)"
        )
    return argv


def _flag_error(error, flag_values):
    """One line for absl's parse error `error`: the flag as written, and what
    it takes (its choices, its type) or the flags near an unknown name."""
    from absl import flags

    if isinstance(error, flags.UnrecognizedFlagError):
        near = difflib.get_close_matches(error.flagname, list(flag_values), n=3)
        hint = f"did you mean {' or '.join(f'--{name}' for name in near)}? " if near else ""
        return f"unknown flag --{error.flagname}; {hint}--help lists the flags"
    message = " ".join(str(error).split())
    illegal = re.match(r"flag --(\w+)=(.*?): ", message)
    missing = re.fullmatch(r"Missing value for flag -+(\w+)", message)
    name = (illegal or missing)[1] if illegal or missing else None
    takes = _takes(flag_values[name].parser) if name in flag_values else None
    if illegal and takes:
        return f"--{name}={illegal[2]} is not {takes}"
    if missing and takes:
        return f"--{name} needs a value: --{name}=VALUE, {takes}"
    return re.sub(r"^(flag |ERROR:+ *)", "", message)  # absl's words (a validator's)


def _takes(parser):
    """What a flag of absl's `parser` takes, to follow "is not" (None: a
    string, which only a validator refuses)."""
    from absl import flags

    if isinstance(parser, flags.EnumParser):
        return f"one of: {', '.join(parser.enum_values)}"
    if isinstance(parser, flags.BooleanParser):
        return "true or false"
    return parser.syntactic_help or None


def _raise_interrupt(number, frame):
    raise KeyboardInterrupt(number)
