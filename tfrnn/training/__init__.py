"""The application: training and reading back a run, for any task.

`python -m tfrnn.train` and `python -m tfrnn.predict` are its commands.
Nothing here names a task: what is learned comes from `tfrnn.tasks` through
the `Task` interface (`task.py`).

* `config`: `RunConfig`, the fields every run has (each task's `Config`
  adds its own); `errors`: the typed errors the commands print as one line.
* `loop`: the training loop, over `run_dir` (the run's files), `checkpoint`
  (what a checkpoint holds), `runtime` (threads, `tf.distribute`),
  `optimizers`, `models` (cells by name, the recurrence) and `clock` (step
  times, evaluations, the target).
* `export` and `report`: what a finished run leaves; `machine`: the device
  and memory, without TensorFlow; `cli`: what the two commands share.

No module of the library (`tfrnn.*` outside `training/` and `tasks/`)
imports this package. Its modules import TensorFlow where they need it;
`config`, `errors`, `clock`, `run_dir`, `machine` and `cli` do not, so
`--help` answers at once.
"""
