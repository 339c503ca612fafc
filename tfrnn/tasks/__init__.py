"""The tasks `python -m tfrnn.train --task=NAME` can train, by name.

A task is a package `tfrnn.tasks.NAME` with a `config` module (its
`Config`, a `tfrnn.training.config.RunConfig` with the task's own fields; no
TensorFlow) and a `task` module (its `Task`, a `tfrnn.training.task.Task`).
A new task is a new package and one line here; the training loop, run
directory, checkpoints and report stay as they are.
"""

import importlib

NAMES = ("classify", "language_model")
# Runs written before tasks existed hold no "task" in config.json: classifiers.
DEFAULT = "classify"


def config_class(name=None):
    """The `Config` class of task `name` (None: `DEFAULT`)."""
    return importlib.import_module(f"tfrnn.tasks.{_known(name)}.config").Config


def config_from_saved(saved):
    """The config of a saved config.json dict, of the task it names."""
    return config_class(saved.get("task")).from_saved(saved)


def task_for(config):
    """The `Task` that runs `config` (TensorFlow is imported here)."""
    return importlib.import_module(f"tfrnn.tasks.{_known(config.task)}.task").Task(config)


def _known(name):
    name = name or DEFAULT
    if name not in NAMES:
        from tfrnn.training.errors import ConfigError

        raise ConfigError(f"--task={name} is not one of: {', '.join(NAMES)}")
    return name
