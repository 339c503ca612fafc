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

`RunDir.check` reads and writes nothing but refuses a directory the run
cannot use, so a failed start leaves nothing behind. No TensorFlow here.
"""

import json
import os
import pathlib
import tempfile

from tfrnn import tasks
from tfrnn.training.errors import ConfigError
from tfrnn.training.errors import RunDirError


TRAIN_FIRST = (
    "train first with `python -m tfrnn.train --model_dir={model_dir}` (add "
    "`--task=language_model` for a language model)"
)
RETRAIN = (
    "delete {model_dir} and train again with `python -m tfrnn.train "
    "--model_dir={model_dir}` and the run's flags"
)


class RunDir:
    """The files of the run in `path`."""

    def __init__(self, path):
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
        hold this configuration (up to its `RESUMABLE` fields); checkpoints
        without a config.json are refused (they cannot be checked).
        """
        _check_writable(self.path)
        if not self.config.exists():
            if (self.checkpoints / "checkpoint").exists():
                raise ConfigError(
                    f"{self.checkpoints} holds checkpoints but {self.config} is "
                    "missing, so they cannot be checked against this configuration: "
                    f"{self.start_over}"
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

    def write_config(self, config):
        """Creates the directory and writes config.json: the run starts."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config, config.as_dict())

    def read_config(self, what_to_do):
        """The config in config.json, of the task it names (fields that task
        does not know are dropped)."""
        return tasks.config_from_saved(read_json(self.config, what_to_do))

    def exported(self):
        """Whether the run got as far as its export and report."""
        return (self.export / "saved_model.pb").exists() and self.report.exists()


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


def _check_writable(path):
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "not a directory" if not existing.is_dir() else "permission denied"
        raise ConfigError(
            f"--model_dir={path} is not writable ({existing}: {reason}); "
            "choose a directory you can write to"
        )


def write_json(path, record):
    """Writes `record` to `path` atomically (a reader never sees half a file),
    with the mode `open` would give (0644 under umask 022)."""
    path = pathlib.Path(path)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp"
    ) as f:
        json.dump(record, f, indent=2, default=str)
        f.write("\n")
    os.chmod(f.name, 0o666 & ~_umask())  # tempfile's are 0600
    os.replace(f.name, path)


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
