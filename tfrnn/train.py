"""`python -m tfrnn.train`: train a task's RNN to its target (the command;
the run is `tfrnn.training.loop`, the task `tfrnn.tasks.NAME`).

    python -m tfrnn.train --mode=dynamic            # LSTM-128 on MNIST rows to 98 %
    python -m tfrnn.train --mode=static --cell=gru --model_dir=runs/gru
    python -m tfrnn.train --mode=dynamic --unroll=4 --bidirectional

Re-running the same command with the same --model_dir resumes where it stopped;
a rerun may change the flags marked "A rerun may change it" below, and is
refused if any other differs.
The defaults are the fastest to 98 % measured on a 2-core CPU
(experiments/results/fast_path.md, rerun with `python -m experiments.steps`):
TensorFlow's thread pools at 1 thread per op and 2 ops at once; float32, no
XLA, one step per loop iteration.
"""

import dataclasses

from absl import flags

from tfrnn import tasks
from tfrnn.training import cli
from tfrnn.training.errors import ConfigError

FLAGS = flags.FLAGS
_DEFINE = {
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    bool: flags.DEFINE_bool,
    str: flags.DEFINE_string,
}


def define_flags(flag_values=FLAGS):
    """The command line: `--task`, and one flag per field of the tasks'
    configs (a field two tasks share is one flag; where their defaults
    differ, its default is None: each task's own, said in its help). The
    help of a field a rerun may change (`RESUMABLE`) says so."""
    flags.DEFINE_enum("task", tasks.DEFAULT, tasks.NAMES,
                      tasks.config_class().HELP["task"], flag_values=flag_values)  # fmt: skip
    for config_class in map(tasks.config_class, tasks.NAMES):
        for field in dataclasses.fields(config_class):
            if field.name in flag_values:
                continue
            help_ = config_class.HELP[field.name]
            if field.name in config_class.RESUMABLE and field.name != "model_dir":
                help_ += " A rerun may change it."  # (--model_dir: its spelling)
            defaults = _task_defaults(field.name)
            default = next(iter(defaults.values()))
            if len(set(defaults.values())) > 1:
                default = None
                help_ += " (default: " + ", ".join(
                    f"{value} for --task={name}" for name, value in defaults.items()) + ")"  # fmt: skip
            if field.name in config_class.CHOICES:
                choices = config_class.CHOICES[field.name]
                flags.DEFINE_enum(field.name, default, choices, help_, flag_values=flag_values)
            else:
                _DEFINE[field.type](field.name, default, help_, flag_values=flag_values)


def config_from_flags(flag_values=FLAGS):
    """The `Config` of `--task` from the flags; a flag set on the command line
    that the task has no field for raises `ConfigError`."""
    fields = _fields(flag_values.task)
    for name in flag_values:
        if flag_values[name].present and name not in fields and name != "task":
            owners = [task for task in tasks.NAMES if name in _fields(task)]
            if owners:
                raise ConfigError(
                    f"--{name} applies to --task={' or '.join(owners)}, not "
                    f"--task={flag_values.task}: drop it"
                )
    values = {name: flag_values[name].value for name in fields}
    return tasks.config_class(flag_values.task)(
        **{name: value for name, value in values.items()
           if value is not None or len(set(_task_defaults(name).values())) == 1}  # fmt: skip
    )


def _fields(task):
    """The field names of task `task`'s config."""
    return {field.name for field in dataclasses.fields(tasks.config_class(task))}


def _task_defaults(name):
    """`{task: default}` of field `name`, for the tasks that have it."""
    return {task: getattr(tasks.config_class(task)(), name)
            for task in tasks.NAMES if name in _fields(task)}  # fmt: skip


def main(argv, flag_values=FLAGS):
    """Trains the run of the flags (`argv`: the program only, `cli.main`'s)."""
    cli.quiet_tensorflow()
    cli.run(lambda: _train(config_from_flags(flag_values)))


def _train(config):
    from tfrnn.training import loop
    from tfrnn.training import report

    training_loop = loop.TrainingLoop(config)
    result = training_loop.run()
    if training_loop.already_finished:
        return
    if not training_loop.chief:
        print("done: this worker's part of the run is over; the chief writes report.json")
        return
    print(report.table(report.summary_rows(result, training_loop.task)))
    print(f"report: {training_loop.run_dir.report}")


if __name__ == "__main__":
    cli.main(define_flags, main)
