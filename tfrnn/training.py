"""Train a classifier to a target test accuracy; nothing lost when interrupted.

The training set stays in memory as one tensor; a `tf.data` pipeline of
example indices (a seeded permutation per epoch) says which rows make each
batch. The data position is then two integers, `epoch` and `step`, saved in
the same checkpoint as the weights and the optimizer: a run killed at any
moment resumes from its last checkpoint and, with op determinism on, ends
with the same weights as a run never interrupted.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from tfrnn import data as data_lib
from tfrnn import export as export_lib
from tfrnn import models
from tfrnn import report as report_lib
from tfrnn.errors import ConfigError
from tfrnn.errors import Interrupted
from tfrnn.errors import RunDirError
from tfrnn.config import COSINE_FLOOR  # noqa: F401 - the library's names
from tfrnn.config import EVAL_BATCH
from tfrnn.config import OPTIMIZERS  # noqa: F401
from tfrnn.config import SCHEDULES  # noqa: F401
from tfrnn.config import STRATEGIES  # noqa: F401
from tfrnn.config import Config


def check_model_dir(config):
    """Refuses a `model_dir` this run cannot use; writes nothing.

    The directory must be creatable; a `config.json` there must be readable
    and hold this configuration (up to `Config.RESUMABLE`); checkpoints there
    without a `config.json` are refused (they cannot be checked).
    """
    model_dir = pathlib.Path(config.model_dir)
    existing = model_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "not a directory" if not existing.is_dir() else "permission denied"
        raise ConfigError(
            f"--model_dir={model_dir} is not writable ({existing}: {reason}); "
            "choose a directory you can write to"
        )
    config_file = model_dir / "config.json"
    if not config_file.exists():
        if (model_dir / "checkpoints" / "checkpoint").exists():
            raise ConfigError(
                f"{model_dir}/checkpoints holds checkpoints but {config_file} is "
                "missing, so they cannot be checked against this configuration: "
                f"delete {model_dir} to start over, or use another --model_dir"
            )
        return model_dir
    saved = report_lib.read_json(
        config_file,
        f"delete {model_dir} to start over, or use another --model_dir",
    )
    differs = [
        f"{name}={saved.get(name)!r} there, {value!r} now"
        for name, value in config.as_dict().items()
        if name not in Config.RESUMABLE and saved.get(name) != value
    ]
    if differs:
        raise ConfigError(
            f"--model_dir={model_dir} holds a run with another configuration "
            f"({'; '.join(differs)}). Resume it with the same flags, or use "
            "another --model_dir."
        )
    return model_dir


def write_config(config):
    """Creates `model_dir` and writes config.json: the run is about to step."""
    model_dir = pathlib.Path(config.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    report_lib.write_json(model_dir / "config.json", config.as_dict())


def make_strategy(name):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def make_optimizer(config, steps_per_epoch):
    """The optimizer, its learning rate constant or cosine-decayed per step.

    `cosine`: `lr * (FLOOR + (1 - FLOOR) * (1 + cos(pi * min(step, D) / D)) / 2)`
    with `D` the steps of `decay_epochs` epochs: from `lr` down to
    `FLOOR * lr`, then constant there, so that a run that has not reached its
    target by then still learns (decayed to 0, one stalled at 97.7 % for 15
    epochs). The step is the optimizer's own count, saved in checkpoints, so a
    resumed run continues the decay.
    """
    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate,
            max(1, round(config.decay_epochs * steps_per_epoch)),
            alpha=COSINE_FLOOR,
        )
    kwargs = {"learning_rate": learning_rate}
    if config.clip_norm:
        kwargs["global_clipnorm"] = config.clip_norm
    return {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }[config.optimizer](**kwargs)


def kernel_name(config):
    """The recurrence kernel that runs: tfrnn's generic unrolls."""
    if config.mode == "static":
        return f"generic: unrolled ({config.cell} cell, one copy per step)"
    return f"generic: tf.while_loop ({config.cell} cell)"


class Trainer:
    """The state of one run: data, model, optimizer, checkpoints, timings."""

    def __init__(self, config, strategy=None, log=print):
        config.validate()
        self.config = config
        self.log = log
        self.already_finished = False  # set by `run`
        self.model_dir = check_model_dir(config)
        # A multi-worker strategy must exist before TensorFlow starts its runtime.
        self.strategy = strategy or make_strategy(config.strategy)
        self.chief = is_chief(self.strategy)
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.data = data_lib.load(
            config.dataset,
            config.sequence,
            config.batch_size,
            config.seed,
            config.train_examples,
            config.test_examples,
            config.data_dir,
        )
        self.steps_per_epoch = len(self.data.x_train) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"--batch_size={config.batch_size} is larger than the "
                f"{len(self.data.x_train)} training examples; lower it"
            )
        notice = static_build_notice(config, self.data.time_steps)
        if notice:
            log(notice)
        with self.strategy.scope():
            self.model = models.build_classifier(
                config.mode,
                config.cell,
                config.units,
                config.layers,
                self.data.num_classes,
                self.data.time_steps,
                self.data.features,
                config.model,
            )
            self.optimizer = make_optimizer(config, self.steps_per_epoch)
            self.optimizer.build(self.model.trainable_variables)
        # The data position, and the evaluations and seconds so far: saved with
        # the weights they belong to (plain variables, outside the strategy).
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.progress_record = tf.Variable("", dtype=tf.string, trainable=False)
        self.x_train = tf.constant(self.data.x_train)
        self.y_train = tf.constant(self.data.y_train)
        self.checkpoint = tf.train.Checkpoint(
            model=model_variables(self.model),
            optimizer=self.optimizer,
            epoch=self.epoch,
            step=self.step,
            progress=self.progress_record,
        )
        checkpoint_dir = self.model_dir / "checkpoints"
        if not self.chief:  # other workers write where nobody reads
            checkpoint_dir = (
                self.model_dir / f"worker-{self.strategy.cluster_resolver.task_id}"
            )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, checkpoint_dir, max_to_keep=2
        )
        self.progress = {
            "evaluations": [],
            "step_seconds": 0.0,
            "eval_seconds": 0.0,
            "wall_seconds": 0.0,
        }
        # No AutoGraph: the step has no tensor-dependent Python control flow,
        # and converting the Keras call tree took most of the trace time.
        self.train_step = tf.function(
            self._train_step, jit_compile=config.jit_compile, autograph=False
        )
        self.predict = tf.function(
            lambda x: self.model(x, training=False), autograph=False
        )
        self.writer = None  # created with the directory, at the first step

    # --- the steps -----------------------------------------------------------

    def _train_step(self, indices):
        def replica_step(indices):
            x = tf.gather(self.x_train, indices)
            y = tf.gather(self.y_train, indices)
            with tf.GradientTape() as tape:
                probabilities = self.model(x, training=True)
                per_example = keras.losses.sparse_categorical_crossentropy(
                    y, probabilities
                )
                loss = tf.reduce_sum(per_example) / self.config.batch_size
            variables = self.model.trainable_variables
            gradients = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(gradients, variables))
            correct = tf.reduce_sum(
                tf.cast(tf.argmax(probabilities, -1) == y, tf.float32)
            )
            return tf.reduce_sum(per_example), correct

        loss_sum, correct = self.strategy.run(replica_step, args=(indices,))
        total = self.strategy.reduce("SUM", loss_sum, axis=None)
        correct = self.strategy.reduce("SUM", correct, axis=None)
        return total, correct

    def evaluate(self):
        """Test accuracy over the whole test set."""
        correct = 0
        for start in range(0, len(self.data.x_test), EVAL_BATCH):
            x = self.data.x_test[start : start + EVAL_BATCH]
            probabilities = self.predict(tf.constant(x))
            correct += int(
                np.sum(
                    np.argmax(probabilities, -1)
                    == self.data.y_test[start : start + EVAL_BATCH]
                )
            )
        return correct / len(self.data.x_test)

    def index_batches(self, epoch, first_step):
        """This epoch's batches of example indices, from step `first_step` on."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(
            len(self.data.x_train)
        )
        batches = data_lib.without_autotune(
            tf.data.Dataset.from_tensor_slices(order.astype(np.int32))
            .skip(first_step * self.config.batch_size)
            .batch(self.config.batch_size, drop_remainder=True)
        )
        return self.strategy.experimental_distribute_dataset(batches)

    # --- the run ---------------------------------------------------------------

    def run(self):
        """Trains to the target (or `max_epochs`); returns the run report."""
        config, log = self.config, self.log
        if self.manager.checkpoints:
            restored = restore_first_readable(
                lambda path: self.checkpoint.restore(
                    path
                ).assert_existing_objects_matched(),
                self.manager.checkpoints[::-1],
                log,
                f"delete {self.model_dir} to start over, or use another --model_dir",
            )
            self.progress = json.loads(self.progress_record.numpy().decode())
            log(
                f"resumed from {restored}: epoch "
                f"{int(self.epoch) + 1}, step {int(self.step)}/{self.steps_per_epoch}"
            )
        reached = self._reached_target()
        self.already_finished = self._is_finished(reached)
        if self.already_finished:
            return report_lib.read_json(
                self.model_dir / "report.json",
                f"delete it and rerun to report again, or delete {self.model_dir}",
            )
        write_config(config)  # nothing was written before: a failed start leaves no trace
        self.writer = tf.summary.create_file_writer(str(self.model_dir / "logs"))
        step_seconds, first_step_seconds, trace_seconds = [], None, None
        examples_seen, interval_start, interval_loss, interval_correct = (
            0,
            time.perf_counter(),
            0.0,
            0.0,
        )
        run_start = time.perf_counter() - self.progress["wall_seconds"]
        with stop_requests() as stop:
            while not reached and int(self.epoch) < config.max_epochs:
                epoch = int(self.epoch)
                for indices in self.index_batches(epoch, int(self.step)):
                    if trace_seconds is None:
                        started = time.perf_counter()
                        self.train_step.get_concrete_function(indices)
                        trace_seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    loss_sum, correct = self.train_step(indices)
                    loss_sum = float(loss_sum)  # waits for the step to finish
                    seconds = time.perf_counter() - started
                    if first_step_seconds is None:
                        first_step_seconds = seconds
                    else:
                        step_seconds.append(seconds)
                    self.progress["step_seconds"] += seconds
                    examples_seen += config.batch_size
                    interval_loss += loss_sum
                    interval_correct += float(correct)
                    self.step.assign_add(1)
                    global_step = epoch * self.steps_per_epoch + int(self.step)
                    end_of_epoch = int(self.step) == self.steps_per_epoch
                    if global_step % config.log_every_steps == 0 or end_of_epoch:
                        elapsed = time.perf_counter() - interval_start
                        log(
                            f"epoch {epoch + 1} step {int(self.step)}/{self.steps_per_epoch} "
                            f"loss {interval_loss / max(examples_seen, 1):.4f} "
                            f"train acc {interval_correct / max(examples_seen, 1):.4f} "
                            f"{examples_seen / elapsed:.0f} examples/s"
                        )
                        with self.writer.as_default(step=global_step):
                            tf.summary.scalar(
                                "train/loss", interval_loss / max(examples_seen, 1)
                            )
                            tf.summary.scalar(
                                "train/accuracy", interval_correct / max(examples_seen, 1)
                            )
                            tf.summary.scalar(
                                "train/examples_per_second", examples_seen / elapsed
                            )
                        examples_seen, interval_loss, interval_correct = 0, 0.0, 0.0
                        interval_start = time.perf_counter()
                    if end_of_epoch:
                        self.epoch.assign_add(1)
                        self.step.assign(0)
                    if global_step % config.eval_every_steps == 0 or end_of_epoch:
                        reached = self._evaluate(global_step, run_start)
                    if (
                        reached
                        or global_step % config.checkpoint_every_steps == 0
                        or end_of_epoch
                    ):
                        self._save(run_start)
                    if stop:
                        self._save(run_start)
                        raise Interrupted(int(self.epoch) + 1, int(self.step), stop[0])
                    if reached:
                        break
        if not reached:
            best = max(e["test_accuracy"] for e in self.progress["evaluations"])
            log(
                f"stopped at --max_epochs={config.max_epochs} short of the target "
                f"{config.target_accuracy} (best test accuracy {best:.4f}); "
                "report.json says target_reached: false"
            )
        return self._finish(run_start, trace_seconds, first_step_seconds, step_seconds)

    def _is_finished(self, reached):
        """Whether the run in `model_dir` ended (target, or `max_epochs`) and
        exported; a rerun then says so and does nothing."""
        model_dir = self.model_dir
        if not (reached or int(self.epoch) >= self.config.max_epochs):
            return False
        if not (model_dir / "export" / "saved_model.pb").exists() or not (
            model_dir / "report.json"
        ).exists():
            return False  # stopped while exporting: export again
        if reached:
            at = next(
                e for e in self.progress["evaluations"]
                if e["test_accuracy"] >= self.config.target_accuracy
            )
            how = f"target {self.config.target_accuracy} reached at epoch {at['epoch']}"
        else:
            how = (
                f"--max_epochs={self.config.max_epochs} run, short of the target "
                f"{self.config.target_accuracy}"
            )
        self.log(
            f"{model_dir} holds a finished run ({how}): nothing to do; its report is "
            f"{model_dir / 'report.json'} (raise --max_epochs to train on)"
        )
        return True

    def _reached_target(self):
        return any(
            e["test_accuracy"] >= self.config.target_accuracy
            for e in self.progress["evaluations"]
        )

    def _evaluate(self, global_step, run_start):
        started = time.perf_counter()
        accuracy = self.evaluate()
        self.progress["eval_seconds"] += time.perf_counter() - started
        record = {
            "step": global_step,
            "epoch": round(global_step / self.steps_per_epoch, 3),
            "seconds": round(time.perf_counter() - run_start, 3),
            "train_seconds": round(
                time.perf_counter() - run_start - self.progress["eval_seconds"], 3
            ),
            "step_seconds": round(self.progress["step_seconds"], 3),
            "test_accuracy": accuracy,
        }
        self.progress["evaluations"].append(record)
        with self.writer.as_default(step=global_step):
            tf.summary.scalar("test/accuracy", accuracy)
        self.log(
            f"evaluation at step {global_step} (epoch {record['epoch']}): test accuracy "
            f"{accuracy:.4f} after {record['seconds']:.1f} s"
        )
        reached = accuracy >= self.config.target_accuracy
        if reached and self.chief:
            self.checkpoint.write(str(self.model_dir / "target" / "ckpt"))
            self.log(
                f"target {self.config.target_accuracy} reached: kept "
                f"{self.model_dir / 'target'}"
            )
        return reached

    def _save(self, run_start):
        self.progress["wall_seconds"] = time.perf_counter() - run_start
        self.progress_record.assign(json.dumps(self.progress))
        self.manager.save(
            checkpoint_number=int(self.epoch) * self.steps_per_epoch + int(self.step)
        )

    def _finish(self, run_start, trace_seconds, first_step_seconds, step_seconds):
        config = self.config
        evaluations = self.progress["evaluations"]
        exported = None
        if self.chief:
            meta = export_lib.meta_for(config, self.data)
            size, seconds = export_lib.export(
                self.model, self.model_dir / "export", meta
            )
            exported = {
                "path": str(self.model_dir / "export"),
                "bytes": size,
                "seconds": seconds,
            }
        median = report_lib.median_ms(step_seconds)
        report = {
            "environment": report_lib.environment(),
            "run": config.as_dict(),
            "kernel": kernel_name(config),
            "xla": self._xla_ran(),
            "replicas": self.strategy.num_replicas_in_sync,
            "parameters": models.count_parameters(self.model),
            "train_examples": len(self.data.x_train),
            "test_examples": len(self.data.x_test),
            "timing": {
                "trace_seconds": trace_seconds,
                "first_step_seconds": first_step_seconds,
                "median_step_ms": median,
                "examples_per_second": config.batch_size / median * 1000
                if median
                else None,
                "step_seconds": self.progress["step_seconds"],
                "eval_seconds": self.progress["eval_seconds"],
                "steps_timed": len(step_seconds),
            },
            "peak_memory_bytes": report_lib.peak_memory_bytes(),
            "evaluations": evaluations,
            **report_lib.target_fields(evaluations, config.target_accuracy),
            "export": exported,
        }
        if self.chief:
            report_lib.write_json(self.model_dir / "report.json", report)
        self.writer.flush()
        return report

    def _xla_ran(self):
        """Whether the traced train step is marked for XLA (it then must compile)."""
        concrete = self.train_step._list_all_concrete_functions()
        return (
            any(fn.function_def.attr["_XlaMustCompile"].b for fn in concrete)
            if concrete
            else bool(self.config.jit_compile)
        )


@contextlib.contextmanager
def stop_requests():
    """SIGINT and SIGTERM append their number to the yielded list, no more.

    The loop reads the list at each step boundary, saves a checkpoint there and
    raises `Interrupted`: a step is never cut in half. (Outside the main
    thread Python delivers no signals; the list then stays empty.)
    """
    requested = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    numbers = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in numbers}
    for number in numbers:
        signal.signal(number, lambda number, frame: requested.append(number))
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def model_variables(model):
    """The model's variables as TensorFlow variables, for `tf.train.Checkpoint`.

    Keras 3 models are not trackable by `tf.train.Checkpoint` themselves; the
    list of their variables (in the model's fixed order) is.
    """
    return [variable.value for variable in model.variables]


def static_build_notice(config, time_steps, threshold=100):
    """The line said before a static model of more than `threshold` steps is
    built (tracing it takes long enough to look like a hang), else None."""
    if config.mode != "static" or time_steps <= threshold:
        return None
    return (
        f"building the static graph: {time_steps} copies of the {config.cell} cell, "
        "then tracing the train step (minutes on a CPU for T=784; --mode=dynamic "
        "builds one copy)"
    )


def restore_first_readable(restore, paths, log, what_to_do):
    """Calls `restore(path)` on `paths` in order until one can be read.

    A checkpoint that cannot be read (a damaged or truncated file) gives one
    warning line naming the file, and the next one is tried. Returns the path
    restored; raises `RunDirError` naming the files when none can be read.
    """
    damaged = []
    for path in paths:
        try:
            restore(path)
        except Exception as error:  # noqa: BLE001 - damaged files raise anything
            damaged.append(damaged_file(path))
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            log(
                f"warning: {damaged[-1]} cannot be read "
                f"({type(error).__name__}: {reason[:120]}); trying the checkpoint before"
            )
            continue
        return path
    raise RunDirError(
        f"no checkpoint can be read ({', '.join(map(str, damaged))}): {what_to_do}"
    )


def damaged_file(path):
    """The file of checkpoint `path` that fails: its index, else its data."""
    try:
        tf.train.load_checkpoint(str(path))
    except Exception:  # noqa: BLE001
        return f"{path}.index"
    data_files = sorted(pathlib.Path(path).parent.glob(pathlib.Path(path).name + ".data-*"))
    return str(data_files[0]) if len(data_files) == 1 else f"{path}.data-*"


def restore_model(model, checkpoint_path):
    """Loads a training checkpoint's weights into `model` (built alike)."""
    tf.train.Checkpoint(model=model_variables(model)).read(
        str(checkpoint_path)
    ).expect_partial().assert_existing_objects_matched()


def train(config, strategy=None, log=print):
    """Trains as `config` says and returns the run report (also report.json)."""
    return Trainer(config, strategy, log).run()
