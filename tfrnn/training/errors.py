"""tfrnn's errors: each names the mistake and what to do (no TensorFlow here).

The CLIs turn a `TfrnnError` into one line on stderr and exit status 1 (an
`Interrupted` run exits with 128 + the signal's number).
"""


class TfrnnError(Exception):
    """Base class of the errors the CLIs print as one line."""


class ConfigError(TfrnnError, ValueError):
    """A flag or `Config` field out of range, or a run directory of another run."""


class DataError(TfrnnError, ValueError):
    """A task's data is missing, corrupt or asked for with bad arguments."""


class RunDirError(TfrnnError):
    """A run directory's file is missing or damaged; the message says what to do."""


class NoReadableCheckpoint(RunDirError):
    """Every checkpoint of a run is damaged; `files`: the file of each that fails."""

    def __init__(self, files, what_to_do):
        super().__init__(f"no checkpoint can be read ({', '.join(files)}): {what_to_do}")
        self.files = files


class Interrupted(TfrnnError):
    """SIGINT or SIGTERM stopped a run after saving a checkpoint."""

    def __init__(self, epoch, step, signal_number, rerun="rerun the same command"):
        super().__init__(
            f"interrupted at epoch {epoch} step {step}; checkpoint saved; "
            f"{rerun} to resume"
        )
        self.exit_code = 128 + signal_number


def one_line(error):
    """`error` as "TypeName: first line of its message" (at most 120 characters
    of it), for the one-line messages about a file that cannot be read.

    >>> one_line(ValueError("bad magic\\nmore detail"))
    'ValueError: bad magic'
    """
    reason = (str(error).strip().splitlines() or [""])[0][:120]
    return f"{type(error).__name__}: {reason}"
