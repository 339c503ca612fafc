"""The one seam of the training loop: what a task is.

The loop (`tfrnn.training.loop`) owns the run: the runtime, the optimizer,
the checkpoints and resume, the evaluation schedule, interrupts, export
timing and the report. A task owns everything that says *what* is learned,
as Model Garden's `Task` does (`build_inputs`, `build_model`,
`build_losses`, `build_metrics`):

    task = Task(config)             # light: reads nothing
    task.load_data()                # its data; sets steps_per_epoch, time_steps
    model = task.build_model()      # under the strategy's scope
    for batch in task.batches(epoch, first_step):
        loss_sum, sums = task.loss(model, batch)  # under the gradient tape
    metrics = task.evaluate(model)  # e.g. {"test_accuracy": 0.981}
    task.target.met(metrics)        # "target reached"
    task.export(model, run_dir)     # what serving reads
    task.predict(...)               # `python -m tfrnn.predict`: figures

A new task subclasses `Task` in its own package `tfrnn.tasks.NAME` (see
`tfrnn.tasks`); nothing in `tfrnn.training` changes.
"""

from tfrnn.training.errors import TfrnnError


class Task:
    """The interface a task implements; `config` is its `Config`."""

    # What a step's progress line shows: `{sum name: label}` of `loss`'s sums
    # (as means per example), after the loss.
    progress_labels = {}
    unit = "examples"  # what `examples_per_step` counts (progress: per second)

    def __init__(self, config):
        self.config = config
        self.steps_per_epoch = None  # set by `load_data`
        self.time_steps = None  # of the model's input sequences; set by `load_data`

    # --- data --------------------------------------------------------------------

    def load_data(self):
        """Reads the task's data (raising `DataError` / `ConfigError` saying
        what to do); sets `steps_per_epoch` and `time_steps`."""
        raise NotImplementedError

    def batches(self, epoch, first_step):
        """A `tf.data.Dataset` of epoch `epoch`'s global batches, from step
        `first_step` on: the same batches on every run of the same config
        (the loop turns tf.data's autotuning off and prefetches 2)."""
        raise NotImplementedError

    # --- model and loss ------------------------------------------------------------

    def build_model(self):
        """The Keras model; its recurrence is the layer named "rnn"
        (`tfrnn.training.models.recurrence`)."""
        raise NotImplementedError

    def checkpointed(self):
        """Trackables the checkpoint keeps beside the model, optimizer and
        data position (a carried state, a stream position): `{name: object}`."""
        return {}

    @property
    def examples_per_step(self):
        """What the loss of one global step is averaged over (in `unit`s)."""
        return self.config.batch_size

    def loss(self, model, batch):
        """`(loss_sum, sums)` over one replica's part of `batch`: the loss
        summed over its examples, and `{name: sum}` for the progress line."""
        raise NotImplementedError

    # --- evaluation and target -------------------------------------------------------

    @property
    def target(self):
        """The `tfrnn.training.clock.Target` that ends training."""
        raise NotImplementedError

    def evaluate(self, model):
        """`{metric: value}` on the held-out data; `target.metric` among them."""
        raise NotImplementedError

    # --- what a finished run leaves ------------------------------------------------------

    def export(self, model, run_dir):
        """Exports `model` into `run_dir` (a `RunDir`); returns the report's
        `export` record."""
        raise NotImplementedError

    def report_fields(self, evaluations):
        """The task's own fields of report.json (its data's sizes; what it
        reads off the run's `evaluations`)."""
        return {}

    def summary_rows(self, report):
        """The task's own `(name, value)` rows of the table printed at the end."""
        return []

    def predict(self, model_dir, output_dir, options, log):
        """`python -m tfrnn.predict`: reads the run in `model_dir`, prints
        (`log`) what it measures and writes its figures to `output_dir`;
        `options`: the command's flags (`examples`, `format`, `units_to_show`)."""
        raise TfrnnError(
            f"python -m tfrnn.predict reads no --task={self.config.task} run yet"
        )
