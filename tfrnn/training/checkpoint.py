"""What a training checkpoint holds, and how it is built, saved and restored.

The state of a run is the model's weights, the optimizer (its step count
drives the learning-rate schedule), the data position (`epoch`, `step`) and
the evaluation clock's records (`tfrnn.training.clock.Clock.state`, as
JSON) and what the task keeps (`Task.checkpointed`), all in one
`tf.train.Checkpoint`: a run restored from it continues exactly where it
was saved. A checkpoint that cannot be read gives a warning and the one
before it is used.
"""

import json
import pathlib

import tensorflow as tf

from tfrnn.training import run_dir
from tfrnn.training.errors import NoReadableCheckpoint
from tfrnn.training.errors import RunDirError
from tfrnn.training.errors import one_line
from tfrnn.training.optimizers import make_optimizer

KEEP = 2  # checkpoints kept: the newest, and one to fall back to


def last_step(global_step, steps_per_epoch):
    """`(epoch, step)` of the last step taken, `global_step` steps in, as the
    progress lines name it (and the lines of a stop: interrupted, a lost
    worker): epoch from 1, step from 1 to `steps_per_epoch` in it; (1, 0)
    before any.

    >>> last_step(100, 25), last_step(101, 25), last_step(0, 25)
    ((4, 25), (5, 1), (1, 0))
    """
    if global_step == 0:
        return 1, 0
    epoch, step = divmod(global_step - 1, steps_per_epoch)
    return epoch + 1, step + 1


class TrainingState:
    """Model, optimizer, data position, clock records and the task's own
    state, in one checkpoint; the model is `task.build_model()`."""

    def __init__(self, task, strategy, directory):
        with strategy.scope():
            self.model = task.build_model()
            self.optimizer = make_optimizer(task.config, task.steps_per_epoch)
            self.optimizer.build(self.model.trainable_variables)
        self.steps_per_epoch = task.steps_per_epoch
        # Plain variables, outside the strategy: the data position and the
        # clock's records, saved with the weights they belong to.
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.clock_record = tf.Variable("", dtype=tf.string, trainable=False)
        self.task_state = task.checkpointed()
        self.checkpoint = tf.train.Checkpoint(
            model=model_variables(self.model),
            optimizer=self.optimizer,
            epoch=self.epoch,
            step=self.step,
            progress=self.clock_record,
            **self.task_state,
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(directory), max_to_keep=KEEP
        )

    @property
    def global_step(self):
        return int(self.epoch) * self.steps_per_epoch + int(self.step)

    def position(self):
        """`(epoch, step)` as people count them: epoch from 1, step in it."""
        return int(self.epoch) + 1, int(self.step)

    def last_step(self):
        """`last_step(global_step, steps_per_epoch)` of this state."""
        return last_step(self.global_step, self.steps_per_epoch)

    def advance(self):
        """One step on; the next epoch after the last step of one."""
        self.step.assign_add(1)
        if int(self.step) == self.steps_per_epoch:
            self.epoch.assign_add(1)
            self.step.assign(0)
            return True
        return False

    def numeric_variables(self):
        """The checkpoint's variables but the clock's record (a string)."""
        return [
            *model_variables(self.model),
            *(variable.value for variable in self.optimizer.variables),
            self.epoch,
            self.step,
            *tf.nest.flatten(self.task_state),
        ]

    def clock_state(self):
        """The clock's records as restored (`Clock.state`), None before any."""
        record = self.clock_record.numpy().decode()
        return json.loads(record) if record else None

    def restore(self, log, what_to_do):
        """Restores the newest readable checkpoint; returns `(path, clock
        state)`, or `(None, None)` when there is none yet."""
        if not self.manager.checkpoints:
            return None, None
        path = restore_first_readable(
            lambda path: self.checkpoint.restore(path).assert_existing_objects_matched(),
            self.manager.checkpoints[::-1],
            log,
            what_to_do,
        )
        return path, self.clock_state()

    def save(self, clock_state):
        """Saves a checkpoint numbered by the global step (atomically: TF
        writes it under a temporary name first; a full disk keeps the ones
        before it and raises `run_dir.writing`'s one line)."""
        self.clock_record.assign(json.dumps(clock_state))
        prefix = f"{self.manager.directory}/ckpt-{self.global_step}"
        needed = lambda: run_dir.checkpoint_bytes(self.manager.directory)
        with run_dir.writing(prefix, needed, partial=f"{prefix}_temp"):  # TF's temporary
            self.manager.save(checkpoint_number=self.global_step)

    def write(self, path):
        """Writes the checkpoint to `path` (outside the kept two)."""
        self.checkpoint.write(str(path))


def model_variables(model):
    """The model's variables as TensorFlow variables, for `tf.train.Checkpoint`.

    Keras 3 models are not trackable by `tf.train.Checkpoint` themselves; the
    list of their variables (in the model's fixed order) is.
    """
    return [variable.value for variable in model.variables]


def restore_model(model, checkpoint_path):
    """Loads a training checkpoint's weights into `model` (built alike)."""
    tf.train.Checkpoint(model=model_variables(model)).read(
        str(checkpoint_path)
    ).expect_partial().assert_existing_objects_matched()


def restore_first_readable(restore, paths, log, what_to_do):
    """Calls `restore(path)` on `paths` in order until one can be read.

    Each checkpoint before it that cannot be read (a damaged or truncated
    file) gives one warning line naming the file. Returns the path restored;
    raises `NoReadableCheckpoint` naming the files (one line, no warnings)
    when none can be read.
    """
    warnings = []
    for path in paths:
        try:
            restore(path)
        except Exception as error:  # noqa: BLE001 - damaged files raise anything
            warnings.append((damaged_file(path), one_line(error)))
            continue
        for name, reason in warnings:
            log(f"warning: {name} cannot be read ({reason}); using an older one")
        return path
    raise NoReadableCheckpoint([name for name, _ in warnings], what_to_do)


def damaged_file(path):
    """The file of checkpoint `path` that fails: its index, else its data."""
    try:
        tf.train.load_checkpoint(str(path))
    except Exception:  # noqa: BLE001
        return f"{path}.index"
    prefix = pathlib.Path(path)
    data_files = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    return str(data_files[0]) if len(data_files) == 1 else f"{path}.data-*"


def checkpoint_paths(model_dir):
    """The checkpoints to read, best first: MODEL_DIR/target/ckpt (the target
    was reached), then MODEL_DIR/checkpoints newest first."""
    run = run_dir.existing(model_dir)
    paths = []
    if run.target.with_name("ckpt.index").exists():
        paths.append(str(run.target))
    state = tf.train.get_checkpoint_state(str(run.checkpoints))
    if state is not None:
        paths += list(state.all_model_checkpoint_paths)[::-1]
    if not paths:
        raise RunDirError(
            f"no checkpoint in {run}/target or {run}/checkpoints; "
            + run_dir.TRAIN_FIRST.format(model_dir=run)
        )
    return paths
