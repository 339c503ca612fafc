"""What the two CLIs share: a quiet TensorFlow, and errors as one line.

No TensorFlow at import: each CLI parses its flags first (`--help` answers
at once), then calls `quiet_tensorflow()` and imports the library.
"""

import contextlib
import os
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
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import tensorflow as tf

        return tf
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with _stderr_closed():
        import tensorflow as tf
    return tf


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
    """`function(*args)`, with every tfrnn error and interrupt as one line.

    `TfrnnError`: "error: MESSAGE" on stderr, exit status 1. `Interrupted`
    (the training loop saved a checkpoint): its line, 128 + the signal.
    SIGINT or SIGTERM elsewhere (loading, building, exporting): one line,
    130 or 143. SIGTERM is turned into `KeyboardInterrupt` here for that.
    """
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return function(*args)
    except Interrupted as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(interrupted.exit_code)
    except KeyboardInterrupt as interrupt:
        number = interrupt.args[0] if interrupt.args else signal.SIGINT
        print(
            "interrupted outside a training step; the last checkpoint (if any) "
            "is kept; rerun the same command to resume",
            file=sys.stderr,
        )
        sys.exit(128 + number)
    except TfrnnError as error:
        sys.exit(f"error: {error}")
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(define_flags, main_function):
    """`app.run(main_function)` after `define_flags()`; a closed output pipe
    (`python -m tfrnn.train --help | head`) ends quietly, as other tools do."""
    from absl import app

    define_flags()
    try:
        app.run(main_function)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _raise_interrupt(number, frame):
    raise KeyboardInterrupt(number)
