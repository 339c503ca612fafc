"""The training loop: to a target test accuracy, nothing lost when stopped.

The training set stays in memory as one tensor; a `tf.data` pipeline of
example indices (a seeded permutation per epoch) says which rows make each
batch. The data position is then two integers, `epoch` and `step`, saved in
the same checkpoint as the weights and the optimizer (`tfrnn.state`): a run
killed at any moment resumes from its last checkpoint and, with op
determinism on, ends with the same weights as a run never interrupted.
SIGINT and SIGTERM stop it at the next step boundary, after a checkpoint.

    report = tfrnn.loop.train(tfrnn.config.Config(mode="static"))

Pieces: `tfrnn.run_dir` (the directory and when it is written),
`tfrnn.state` (the checkpoint), `tfrnn.clock` (times and evaluation
records), `tfrnn.evaluation` (test accuracy), `tfrnn.export` and
`tfrnn.report` (what a finished run leaves).
"""

import contextlib
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from tfrnn import data as data_lib
from tfrnn import evaluation
from tfrnn import export as export_lib
from tfrnn import report as report_lib
from tfrnn import state as state_lib
from tfrnn.clock import Clock
from tfrnn.clock import first_at_target
from tfrnn.errors import ConfigError
from tfrnn.errors import Interrupted
from tfrnn.run_dir import RunDir
from tfrnn.run_dir import read_json
from tfrnn.run_dir import write_json


def train(config, strategy=None, log=print):
    """Trains as `config` says and returns the run report (also report.json)."""
    return TrainingLoop(config, strategy, log).run()


class TrainingLoop:
    """One run: checked and built at construction (nothing written), then `run`."""

    def __init__(self, config, strategy=None, log=print):
        config.validate()
        self.config, self.log = config, log
        self.already_finished = False  # set by `run`
        self.run_dir = RunDir(config.model_dir)
        self.run_dir.check(config)
        # Thread pools and a multi-worker strategy must be set before
        # TensorFlow starts its runtime (in a CLI, here).
        self.threads = set_threads(config.intra_op_threads, config.inter_op_threads)
        self.strategy = strategy or state_lib.make_strategy(config.strategy)
        self.chief = state_lib.is_chief(self.strategy)
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
            pipelines=False,  # the loop batches example indices (index_batches)
        )
        self.steps_per_epoch = steps_per_epoch(config, len(self.data.x_train))
        notice = static_build_notice(config, self.data.time_steps)
        if notice:
            log(notice)
        self.state = state_lib.TrainingState(
            config, self.data, self.strategy, self.steps_per_epoch, self._checkpoints()
        )
        self.model, self.optimizer = self.state.model, self.state.optimizer
        self.x_train = tf.constant(self.data.x_train)
        self.y_train = tf.constant(self.data.y_train)
        # No AutoGraph: the step has no tensor-dependent Python control flow,
        # and converting the Keras call tree took most of the trace time.
        self.train_step = tf.function(
            self._train_step, jit_compile=config.jit_compile, autograph=False
        )
        self.predict = evaluation.predictor(self.model)
        self.clock = self.writer = self.trace_seconds = None  # set by `run`

    def _checkpoints(self):
        if self.chief:
            return self.run_dir.checkpoints
        # Other workers write where nobody reads.
        return self.run_dir.path / f"worker-{self.strategy.cluster_resolver.task_id}"

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
        return evaluation.accuracy(self.predict, self.data.x_test, self.data.y_test)

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
        config = self.config
        resumed_from = self._resume()
        if self._finished():
            self.already_finished = True
            return read_report(self.run_dir)
        if resumed_from:
            epoch, step = self.state.position()
            self.log(
                f"resumed from {resumed_from}: epoch {epoch}, step "
                f"{step}/{self.steps_per_epoch}"
            )
        self.run_dir.write_config(config)  # a failed start has written nothing
        self.writer = tf.summary.create_file_writer(str(self.run_dir.logs))
        self.progress = _Progress()
        self.clock.begin()
        with stop_requests() as stop:
            while not self.clock.reached and int(self.state.epoch) < config.max_epochs:
                self._epoch(stop)
        if not self.clock.reached:
            best = max(e["test_accuracy"] for e in self.clock.evaluations)
            self.log(
                f"stopped at --max_epochs={config.max_epochs} short of the target "
                f"{config.target_accuracy} (best test accuracy {best:.4f}); "
                "report.json says target_reached: false"
            )
        return self._finish()

    def _resume(self):
        """Restores the newest readable checkpoint and the clock; returns its
        path (None for a new run)."""
        config = self.config
        path, clock_state = self.state.restore(self.log, self.run_dir.start_over)
        self.clock = Clock(
            config.target_accuracy,
            config.eval_every_steps,
            self.steps_per_epoch,
            self.log,
            state=clock_state,
        )
        self.clock.step = self.state.global_step
        return path

    def _epoch(self, stop):
        """Steps through the rest of the current epoch (or to the target or a
        stop request, raising `Interrupted` after a checkpoint)."""
        config = self.config
        for indices in self.index_batches(int(self.state.epoch), int(self.state.step)):
            if self.trace_seconds is None:
                started = time.perf_counter()
                self.train_step.get_concrete_function(indices)
                self.trace_seconds = time.perf_counter() - started
            started = time.perf_counter()
            loss_sum, correct = self.train_step(indices)
            loss_sum = float(loss_sum)  # waits for the step to finish
            evaluate_now = self.clock.stepped(time.perf_counter() - started)
            self.progress.add(config.batch_size, loss_sum, float(correct))
            epoch, step = self.state.position()
            end_of_epoch = self.state.advance()
            global_step = self.clock.step
            if global_step % config.log_every_steps == 0 or end_of_epoch:
                self._log_progress(epoch, step + 1, global_step)
            if evaluate_now:
                self._evaluate()
            saved = (
                self.clock.reached
                or global_step % config.checkpoint_every_steps == 0
                or end_of_epoch
            )
            if saved:
                self.state.save(self.clock.state())
            if stop:
                if not saved:
                    self.state.save(self.clock.state())
                raise Interrupted(*self.state.position(), stop[0])
            if self.clock.reached:
                return

    def _log_progress(self, epoch, step, global_step):
        loss, accuracy, per_second = self.progress.take()
        self.log(
            f"epoch {epoch} step {step}/{self.steps_per_epoch} loss {loss:.4f} "
            f"train acc {accuracy:.4f} {per_second:.0f} examples/s"
        )
        with self.writer.as_default(step=global_step):
            tf.summary.scalar("train/loss", loss)
            tf.summary.scalar("train/accuracy", accuracy)
            tf.summary.scalar("train/examples_per_second", per_second)

    def _evaluate(self):
        started = time.perf_counter()
        accuracy = self.evaluate()
        reached = self.clock.evaluated(accuracy, time.perf_counter() - started)
        with self.writer.as_default(step=self.clock.step):
            tf.summary.scalar("test/accuracy", accuracy)
        if reached and self.chief:
            self.state.write(self.run_dir.target)
            self.log(
                f"target {self.config.target_accuracy} reached: kept "
                f"{self.run_dir.target.parent}"
            )

    def _finished(self):
        """Whether the run ended (target or `max_epochs`) and exported: a rerun
        then says so and does nothing."""
        config = self.config
        ended = self.clock.reached or int(self.state.epoch) >= config.max_epochs
        if not (ended and self.run_dir.exported()):
            return False  # to train, or stopped while exporting: export again
        if self.clock.reached:
            first = first_at_target(self.clock.evaluations, config.target_accuracy)
            how = f"target {config.target_accuracy} reached at epoch {first['epoch']}"
        else:
            how = (
                f"--max_epochs={config.max_epochs} run, short of the target "
                f"{config.target_accuracy}"
            )
        self.log(
            f"{self.run_dir} holds a finished run ({how}): nothing to do; its "
            f"report is {self.run_dir.report} (raise --max_epochs to train on)"
        )
        return True

    def _finish(self):
        """Exports the model and writes the report (the chief only)."""
        exported = None
        if self.chief:
            exported = export_lib.export_run(
                self.model,
                self.config,
                self.data,
                self.run_dir.export,
                self.run_dir.keras_model,
            )
        report = report_lib.run_report(
            self.config,
            self.clock,
            self.data,
            self.model,
            trace_seconds=self.trace_seconds,
            xla=self.xla_ran(),
            threads=self.threads,
            replicas=self.strategy.num_replicas_in_sync,
            exported=exported,
        )
        if self.chief:
            write_json(self.run_dir.report, report)
        self.writer.flush()
        return report

    def xla_ran(self):
        """Whether the traced train step is marked for XLA (it then must compile)."""
        concrete = self.train_step._list_all_concrete_functions()
        return (
            any(fn.function_def.attr["_XlaMustCompile"].b for fn in concrete)
            if concrete
            else bool(self.config.jit_compile)
        )


class _Progress:
    """Loss, accuracy and speed over the steps since the last progress line."""

    def __init__(self):
        self.examples, self.loss, self.correct = 0, 0.0, 0.0
        self.start = time.perf_counter()

    def add(self, examples, loss_sum, correct):
        self.examples += examples
        self.loss += loss_sum
        self.correct += correct

    def take(self):
        """`(mean loss, accuracy, examples per second)`, and starts over."""
        seen = max(self.examples, 1)
        taken = (
            self.loss / seen,
            self.correct / seen,
            self.examples / (time.perf_counter() - self.start),
        )
        self.__init__()
        return taken


def set_threads(intra_op, inter_op):
    """Sets TensorFlow's thread pools where asked (0 leaves TensorFlow's
    choice); returns those the process has: `{"intra_op": n, "inter_op": m}`
    (0: TensorFlow's choice, one thread per core).

    A per-process setting: once TensorFlow's runtime has started (any op ran
    in this process) they no longer change, and the ones kept are returned,
    for the report to say what ran.
    """
    threading_config = tf.config.threading
    for wanted, get, set_ in (
        (
            intra_op,
            threading_config.get_intra_op_parallelism_threads,
            threading_config.set_intra_op_parallelism_threads,
        ),
        (
            inter_op,
            threading_config.get_inter_op_parallelism_threads,
            threading_config.set_inter_op_parallelism_threads,
        ),
    ):
        if wanted and get() != wanted:
            try:
                set_(wanted)
            except RuntimeError:  # the runtime has started: kept as it is
                pass
    return {
        "intra_op": threading_config.get_intra_op_parallelism_threads(),
        "inter_op": threading_config.get_inter_op_parallelism_threads(),
    }


def read_report(run_dir):
    """The report.json of a finished run."""
    return read_json(
        run_dir.report, f"delete it to report again, or {run_dir.start_over}"
    )


def steps_per_epoch(config, examples):
    """Full batches per epoch (the last partial one is dropped)."""
    if examples // config.batch_size == 0:
        raise ConfigError(
            f"--batch_size={config.batch_size} is larger than the "
            f"{examples} training examples; lower it"
        )
    return examples // config.batch_size


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
