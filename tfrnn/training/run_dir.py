"""A run's directory (`--model_dir`): its files, and what may be written when.

    MODEL_DIR/config.json      the run's config (its task's `Config`), written
                               right before step 1
    MODEL_DIR/checkpoints/     the last two checkpoints (weights, optimizer,
                               data position, evaluations so far)
    MODEL_DIR/target/ckpt      the weights that first reached the target
    MODEL_DIR/export/          the SavedModel (`tfrnn.training.export`)
    MODEL_DIR/model.keras      the Keras model (`keras.saving.load_model`)
    MODEL_DIR/report.json      the run report (`tfrnn.training.report`)
    MODEL_DIR/logs/            TensorBoard
    MODEL_DIR/tfrnn.lock       the lock of the process training it (`RunDir.lock`)

`RunDir.check` reads and writes nothing but refuses a directory the run
cannot use, so a failed start leaves nothing behind. One process trains in
a directory at a time (`RunDir.lock`); others may read it meanwhile: every
file is written whole, under a temporary name, then renamed, so a reader
sees the newest complete one. A write that fails for want of space or
permission (`writing`) is one line naming the path and the space needed,
and leaves no partial file. No TensorFlow here.
"""

import contextlib
import datetime
import errno
import fcntl
import fnmatch
import json
import os
import pathlib
import re
import shutil
import socket
import tempfile

from tfrnn import tasks
from tfrnn.training.errors import ConfigError
from tfrnn.training.errors import RunDirError
from tfrnn.training.errors import TfrnnError


TRAIN_FIRST = (
    "train first with `python -m tfrnn.train --model_dir={model_dir}` (add "
    "`--task=language_model` for a language model)"
)
RETRAIN = (
    "delete {model_dir} and train again with `python -m tfrnn.train "
    "--model_dir={model_dir}` and the run's flags"
)
LOCK = "tfrnn.lock"
# The names tfrnn writes in a run directory (and the temporary names it
# writes them under first); a directory holding anything else without a
# config.json holds someone else's files.
RUN_FILES = (
    "config.json", "checkpoints", "target", "export", "model.keras", "report.json",
    "logs", "vocabulary.json", LOCK, "worker-*", ".*.partial*", ".*.tmp",
)  # fmt: skip
_HELD = {}  # lock file -> its `Lock`, while this process holds it


class RunDir:
    """The files of the run in `path`."""

    def __init__(self, path):
        if not os.fspath(path).strip():
            raise ConfigError(
                "--model_dir is empty: name the run's directory (e.g. --model_dir=runs/default)"
            )
        self.path = pathlib.Path(path)
        self.config = self.path / "config.json"
        self.checkpoints = self.path / "checkpoints"
        self.target = self.path / "target" / "ckpt"
        self.export = self.path / "export"
        self.keras_model = self.path / "model.keras"
        self.report = self.path / "report.json"
        self.logs = self.path / "logs"

    def __str__(self):
        return str(self.path)

    @property
    def start_over(self):
        return f"delete {self.path} to start over, or use another --model_dir"

    def check(self, config):
        """Refuses a directory this run cannot use; writes nothing.

        It must be creatable; its config.json, if any, must be readable and
        hold this configuration (up to its `RESUMABLE` fields). Without a
        config.json it may hold only what a run's start writes (`RUN_FILES`),
        and no checkpoints (they cannot be checked).
        """
        _check_writable(self.path)
        if not self.config.exists():
            if (self.checkpoints / "checkpoint").exists():
                raise ConfigError(
                    f"{self.checkpoints} holds checkpoints but {self.config} is "
                    "missing, so they cannot be checked against this configuration: "
                    f"{self.start_over}"
                )
            others = self.foreign_files()
            if others:
                raise ConfigError(
                    f"--model_dir={self.path} holds no tfrnn run but other files "
                    f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}), "
                    "and tfrnn does not mix its files with yours: use a new or empty "
                    "directory"
                )
            return
        saved = self.read_config(self.start_over).as_dict()
        differs = [
            f"{name}={saved.get(name)!r} there, {value!r} now"
            for name, value in config.as_dict().items()
            if name not in config.RESUMABLE and saved.get(name) != value
        ]
        if differs:
            raise ConfigError(
                f"--model_dir={self.path} holds a run with another configuration "
                f"({'; '.join(differs)}). Resume it with the same flags, or use "
                "another --model_dir."
            )

    def foreign_files(self):
        """The sorted names in the directory that no run writes (`RUN_FILES`)."""
        if not self.path.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.path)
            if not any(fnmatch.fnmatchcase(entry.name, own) for own in RUN_FILES)
        )

    def lock(self, config, directory=None):
        """Takes the lock of the run (of a non-chief worker: of its own
        `directory`), creating the directory, then `check`s it again under
        the lock; returns the `Lock`.

        An OS lock (`flock` on MODEL_DIR/tfrnn.lock) that ends with its
        process, so a killed process leaves no stale lock; held until
        released (`Lock.release`) or the process ends (its loops on one
        directory share it). Another process holding it: `RunDirError`
        naming its pid and host.
        """
        directory = pathlib.Path(directory or self.path)
        _check_writable(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"--model_dir={directory} cannot be created ({error.strerror}): "
                "choose a directory you can write to"
            ) from None
        path = (directory / LOCK).resolve()
        held = _HELD.get(path)
        if held is not None and held.on(path):
            self.check(config)
            return held
        try:
            _HELD[path] = held = Lock(path)
        except OSError as error:
            raise ConfigError(
                f"--model_dir={directory} is not writable ({error.strerror}): "
                "choose a directory you can write to"
            ) from None
        try:
            self.check(config)
        except TfrnnError:
            held.release()
            raise
        return held

    def write_config(self, config):
        """Creates the directory and writes config.json: the run starts."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config, config.as_dict())

    def read_config(self, what_to_do):
        """The config in config.json, of the task it names (fields that task
        does not know are dropped)."""
        return tasks.config_from_saved(read_json(self.config, what_to_do))

    def exported(self, log=print):
        """Whether the run got as far as its export and a readable report (a
        damaged one gets a warning line, `log`: export and report again)."""
        if not (self.export / "saved_model.pb").exists() or not self.report.exists():
            return False
        try:
            read_json(self.report, "exporting the model and reporting again")
        except RunDirError as error:
            log(f"warning: {error}")
            return False
        return True


def existing(model_dir):
    """The `RunDir` of `model_dir`; `RunDirError` when there is no such directory."""
    run = RunDir(model_dir)
    if not run.path.is_dir():
        raise RunDirError(
            f"--model_dir={run} does not exist; " + TRAIN_FIRST.format(model_dir=run)
        )
    return run


def read_run_config(model_dir):
    """The config of the finished or running run in `model_dir` (config.json),
    for reading it back; `RunDirError` saying what to do when there is none."""
    run = existing(model_dir)
    if not run.config.exists():
        raise RunDirError(
            f"{run.config} is missing: {run} holds no tfrnn run; "
            + TRAIN_FIRST.format(model_dir=run)
        )
    return run.read_config(RETRAIN.format(model_dir=run))


class Lock:
    """A held `RunDir.lock`: `flock` on the open file `path`, with this
    process's pid, host and start written in it; `RunDirError` naming the
    holder if another process holds it. `with lock:` releases it after."""

    def __init__(self, path):
        self.path, self.file = path, open(path, "a+")  # noqa: SIM115 - held open
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process (starting)"
            self.file.close()
            raise RunDirError(
                f"--model_dir={path.parent} is in use by {holder}, which trains "
                "there: wait for it to end (or stop it), or use another --model_dir"
            ) from None
        started = datetime.datetime.now().isoformat(" ", "seconds")
        self.file.truncate(0)
        self.file.write(f"process {os.getpid()} on host {socket.gethostname()} (since {started})\n")
        self.file.flush()

    def on(self, path):
        """Whether it is held, on the file now at `path`."""
        try:
            a, b = os.fstat(self.file.fileno()), os.stat(path)
        except (OSError, ValueError):  # (ValueError: released)
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def release(self):
        if _HELD.get(self.path) is self:
            del _HELD[self.path]
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.release()


def make_output_dir(path):
    """Creates `path` (`--output_dir`) for figures; `ConfigError` in one line
    when it cannot be created or written."""
    path = pathlib.Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = "not a directory" if isinstance(error, FileExistsError) else error.strerror
        raise ConfigError(
            f"--output_dir={path} cannot be created ({reason}): choose a "
            "directory you can write to"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output_dir={path} is not writable (permission denied): choose a "
            "directory you can write to"
        )


def _nearest_existing(path):
    """`path`, or its nearest parent that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(path):
    existing = _nearest_existing(path)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "not a directory" if not existing.is_dir() else "permission denied"
        raise ConfigError(
            f"--model_dir={path} is not writable ({existing}: {reason}); "
            "choose a directory you can write to"
        )


def write_json(path, record):
    """Writes `record` to `path` atomically (a reader never sees half a file),
    with the mode `open` would give (0644 under umask 022); `writing`'s one
    line when it does not fit."""
    path = pathlib.Path(path)
    text = json.dumps(record, indent=2, default=str) + "\n"
    with writing(path, len(text.encode())):
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(partial, 0o666 & ~_umask())  # mkstemp's are 0600
            os.replace(partial, path)
        except BaseException:
            _remove(partial)
            raise


# What a write that fails says, by errno: no room, or no permission.
NO_ROOM = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
NO_PERMISSION = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                 errno.EROFS: "read-only file system"}  # fmt: skip


@contextlib.contextmanager
def writing(path=None, needed=None, partial=None):
    """Turns a write that fails for want of space or permission (an
    `OSError`, or TensorFlow's error saying so) into one `RunDirError` line:
    the path (`path`, else the one the error names), the reason, for a full
    disk the space free there and `needed` (bytes, or a function giving
    them; None: unknown), and what to do. Removes `partial` (a temporary
    file or directory) on any error. Also a decorator (any path).
    """
    try:
        yield
    except BaseException as error:
        if partial is not None:
            _remove(partial)
        failure = None if isinstance(error, TfrnnError) else _write_failure(error)
        if failure is None:
            raise
        number, named = failure
        path = path or named
        if number in NO_PERMISSION:
            raise RunDirError(
                f"cannot write {path or 'a file'} ({NO_PERMISSION[number]}): make "
                "it writable, or choose another directory"
            ) from None
        where = f" writing {path}{_room(path, needed)}" if path else ""
        raise RunDirError(
            f"{NO_ROOM[number]}{where}: free some space, then rerun the same "
            "command (training resumes from its last checkpoint)"
        ) from None


def _room(path, needed):
    """" (N needed, M free there)" for `writing`'s message."""
    needed = needed() if callable(needed) else needed
    free = _size(_free_bytes(pathlib.Path(path)))
    if needed is None:
        return f" (it needs more than the {free} free there)"
    return f" ({_size(needed)} needed, {free} free there)"


def _write_failure(error):
    """`(errno, path or None)` of a write that failed for want of space or
    permission, else None."""
    reasons = {**NO_ROOM, **NO_PERMISSION}
    if isinstance(error, OSError) and error.errno in reasons:
        return error.errno, error.filename
    text = str(error)  # TensorFlow's: "... PATH; No space left on device ..."
    for number in reasons:
        said = os.strerror(number)
        if said in text:
            named = re.search(r"(/\S+); " + re.escape(said), text)
            return number, named and re.sub(r"_temp/part-.*$", "", named.group(1))
    return None


def _free_bytes(path):
    stat = os.statvfs(_nearest_existing(path))
    return stat.f_bavail * stat.f_frsize


def _size(count):
    """`count` bytes for people: "950 bytes", "12.3 kB", "4.1 MB"."""
    if count < 1000:
        return f"{count} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        count /= 1000
        if count < 1000 or unit == "TB":
            return f"{count:.1f} {unit}"


def _remove(path):
    path = pathlib.Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def checkpoint_bytes(directory):
    """The bytes of the newest checkpoint in `directory` (its index and data
    files), None when it holds none: what the next one needs."""
    numbers = {int(p.stem.rpartition("-")[2]): p for p in pathlib.Path(directory).glob("*-*.index")
               if p.stem.rpartition("-")[2].isdigit()}  # fmt: skip
    if not numbers:
        return None
    prefix = numbers[max(numbers)].with_suffix("")
    return sum(p.stat().st_size for p in prefix.parent.glob(prefix.name + ".*"))


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_json(path, what_to_do):
    """The JSON object in `path`; `RunDirError` naming the file if it is damaged."""
    try:
        record = json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"{path} cannot be read ({error}): {what_to_do}") from None
    if not isinstance(record, dict):
        raise RunDirError(f"{path} holds no JSON object: {what_to_do}")
    return record
