"""The training loop: to a task's target, nothing lost when stopped.

What is learned is the task's (`tfrnn.training.task.Task`, chosen by
`config.task`): its data, model, loss, evaluation, target and export. The
loop owns the run. A task's batches are the same for every run of a config
from `(epoch, step)` on, so the data position is two integers, saved in the
same checkpoint as the weights, the optimizer and the task's own state
(`tfrnn.training.checkpoint`): a run killed at any moment resumes from its
last checkpoint and, with op determinism on, ends with the same weights as
a run never interrupted. SIGINT and SIGTERM stop it at the next step
boundary, after a checkpoint.

    report = loop.train(tasks.config_class("classify")(mode="static"))

Pieces: `run_dir` (the directory and when it is written), `checkpoint`,
`runtime` (threads, strategy), `clock` (times, evaluation records, target),
`report` (what a finished run says).
"""

import contextlib
import signal
import threading
import time

import keras
import tensorflow as tf

from tfrnn import tasks
from tfrnn.training import report as report_lib
from tfrnn.training import runtime
from tfrnn.training import workers
from tfrnn.training.checkpoint import TrainingState
from tfrnn.training.clock import Clock
from tfrnn.training.clock import first_at_target
from tfrnn.training.errors import Interrupted
from tfrnn.training.run_dir import RunDir
from tfrnn.training.run_dir import read_json
from tfrnn.training.run_dir import write_json
from tfrnn.training.run_dir import writing


def train(config, strategy=None, log=print):
    """Trains as `config` says and returns the run report (also report.json);
    the directory is unlocked after."""
    training_loop = TrainingLoop(config, strategy, log)
    with training_loop.lock:
        return training_loop.run()


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
        self.threads = runtime.set_threads(config.intra_op_threads, config.inter_op_threads)
        self.strategy = strategy or runtime.make_strategy(
            config.strategy, config.worker_timeout, log
        )
        self.chief = runtime.is_chief(self.strategy)
        self.cluster = workers.in_cluster(self.strategy)
        if self.cluster:
            workers.agree_on_config(self.strategy, config)
        if not self.chief:  # worker N's run: MODEL_DIR/worker-N (config, checkpoints, logs)
            task_id = self.strategy.cluster_resolver.task_id
            self.run_dir = RunDir(self.run_dir.path / f"worker-{task_id}")
            self.run_dir.check(config)
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.task = tasks.task_for(config)
        self.task.load_data()
        self.steps_per_epoch = self.task.steps_per_epoch
        notice = static_build_notice(config, self.task.time_steps)
        if notice:
            log(notice)
        # One process trains in a directory: locked before a checkpoint is read.
        self.lock = self.run_dir.lock(config)
        self.state = TrainingState(self.task, self.strategy, self.run_dir.checkpoints)
        self.model, self.optimizer = self.state.model, self.state.optimizer
        # No AutoGraph: the step has no tensor-dependent Python control flow,
        # and converting the Keras call tree took most of the trace time.
        self.train_step = tf.function(
            self._train_step, jit_compile=config.jit_compile, autograph=False
        )
        self.clock = self.writer = self.trace_seconds = None  # set by `run`

    # --- the steps -----------------------------------------------------------

    def _train_step(self, batch):
        """One step on `batch`: `{"loss": sum, **the task's sums}` over the
        global batch."""

        def replica_step(batch):
            with tf.GradientTape() as tape:
                loss_sum, sums = self.task.loss(self.model, batch)
                loss = loss_sum / self.task.examples_per_step
            variables = self.model.trainable_variables
            gradients = tape.gradient(loss, variables)
            # The sums are reduced before the update: a worker lost during
            # the step then leaves the weights as they were before it.
            replicas = tf.distribute.get_replica_context()
            sums = replicas.all_reduce("SUM", {"loss": loss_sum, **sums})
            with tf.control_dependencies(tf.nest.flatten(sums)):
                self.optimizer.apply_gradients(zip(gradients, variables))
            return sums

        sums = self.strategy.run(replica_step, args=(batch,))
        return {
            name: self.strategy.experimental_local_results(value)[0]
            for name, value in sums.items()
        }

    def evaluate(self):
        """The task's metrics on its held-out data."""
        return self.task.evaluate(self.model)

    def batches(self, epoch, first_step):
        """This epoch's batches (the task's), from step `first_step` on,
        without tf.data's autotuning, distributed over the replicas."""
        return self.strategy.experimental_distribute_dataset(
            runtime.without_autotune(self.task.batches(epoch, first_step))
        )

    # --- the run ---------------------------------------------------------------

    @writing()  # a full disk or a permission: one line
    def run(self):
        """Trains to the target (or `max_epochs`); returns the run report."""
        config = self.config
        resumed_from = self._resume()
        if self._finished():
            self.already_finished = True
            return read_report(self.run_dir) if self.chief else None
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
            interrupts = self._interrupts(stop)
            while not self.clock.reached and int(self.state.epoch) < config.max_epochs:
                if interrupts:
                    self._cluster_epoch(stop, interrupts)
                else:
                    self._epoch(stop)
            if interrupts:
                interrupts.close()
        if not self.clock.reached:
            target = self.task.target
            self.log(
                f"stopped at --max_epochs={config.max_epochs} short of the target "
                f"{target.value} (best {target.metric.replace('_', ' ')} "
                f"{target.best(self.clock.evaluations):.4f}); "
                "report.json says target_reached: false"
            )
        return self._finish()

    def _resume(self):
        """Restores the newest readable checkpoint and the clock; returns its
        path (None for a new run)."""
        config = self.config
        path, clock_state = self.state.restore(self.log, self.run_dir.start_over)
        source = None
        if self.cluster:
            source = workers.agree_on_state(self.strategy, self.state, self.log)
        if source is not None:  # another worker's state, newer
            clock_state = self.state.clock_state()
            path = f"worker {source}'s checkpoint"
        self.clock = Clock(
            self.task.target,
            config.eval_every_steps,
            self.steps_per_epoch,
            self.log,
            state=clock_state,
        )
        self.clock.step = self.state.global_step
        return path

    def _interrupts(self, stop):
        """A cluster's `workers.Interrupts` (every worker stops at one step
        when any is asked to); None for one worker (it stops at its next step)."""
        if not self.cluster:
            return None

        def stopped(number):
            raise Interrupted(*self.state.last_step(), number, rerun="rerun every worker's command")

        def save():
            self.state.save(self.clock.state())

        return workers.Interrupts(self.strategy, stop, save, stopped)

    def _step(self, batch, interrupts):
        """`{name: float}` of one training step (in a cluster, through `interrupts`)."""
        sums = interrupts.run(self.train_step, batch) if interrupts else self.train_step(batch)
        return {name: float(value) for name, value in sums.items()}  # waits for the step

    def _cluster_epoch(self, stop, interrupts):
        """`_epoch` in a cluster: a lost worker (a collective of a step or of
        reading its batch failed) saves a checkpoint of the last step and
        raises `workers.WorkerLost`."""
        try:
            self._epoch(stop, interrupts)
        except tf.errors.OpError as error:
            lost = workers.lost_worker(
                error, self.strategy, self.state.last_step(), self.state.manager.directory
            )
            if lost is None:
                raise
            self.state.save(self.clock.state())
            raise lost from None

    def _epoch(self, stop, interrupts=None):
        """Steps through the rest of the current epoch (or to the target or a
        stop request, raising `Interrupted` after a checkpoint; in a cluster
        `interrupts` decides the step)."""
        config = self.config
        for batch in self.batches(int(self.state.epoch), int(self.state.step)):
            if self.trace_seconds is None:
                started = time.perf_counter()
                self.train_step.get_concrete_function(batch)
                self.trace_seconds = time.perf_counter() - started
            started = time.perf_counter()
            sums = self._step(batch, interrupts)
            evaluate_now = self.clock.stepped(time.perf_counter() - started)
            self.progress.add(self.task.examples_per_step, sums)
            end_of_epoch = self.state.advance()
            global_step = self.clock.step
            if global_step % config.log_every_steps == 0 or end_of_epoch:
                self._log_progress(*self.state.last_step(), global_step)
            if evaluate_now:
                self._evaluate()
            saved = (
                self.clock.reached
                or global_step % config.checkpoint_every_steps == 0
                or end_of_epoch
            )
            if saved:
                self.state.save(self.clock.state())
            if stop and interrupts is None:
                if not saved:
                    self.state.save(self.clock.state())
                raise Interrupted(*self.state.last_step(), stop[0])
            if self.clock.reached:
                return

    def _log_progress(self, epoch, step, global_step):
        means, per_second = self.progress.take()
        labels = {"loss": "loss", **self.task.progress_labels}
        measured = " ".join(f"{labels[name]} {means[name]:.4f}" for name in labels)
        unit = self.task.unit
        self.log(
            f"epoch {epoch} step {step}/{self.steps_per_epoch} {measured} "
            f"{per_second:.0f} {unit}/s"
        )
        with self.writer.as_default(step=global_step):
            for name, mean in means.items():
                tf.summary.scalar(f"train/{name}", mean)
            tf.summary.scalar(f"train/{unit}_per_second", per_second)

    def _evaluate(self):
        started = time.perf_counter()
        metrics = self.evaluate()
        reached = self.clock.evaluated(metrics, time.perf_counter() - started)
        with self.writer.as_default(step=self.clock.step):
            for name, value in metrics.items():  # "split_metric" as split/metric
                tf.summary.scalar(name.replace("_", "/", 1), value)
        if reached and self.chief:
            self.state.write(self.run_dir.target)
            self.log(
                f"target {self.task.target.value} reached: kept "
                f"{self.run_dir.target.parent}"
            )

    def _finished(self):
        """Whether the run ended (target or `max_epochs`) and exported: a rerun
        then says so and does nothing."""
        config = self.config
        ended = self.clock.reached or int(self.state.epoch) >= config.max_epochs
        if not (ended and (not self.chief or self.run_dir.exported(self.log))):
            return False  # to train, or stopped while exporting: export again
        target = self.task.target
        if self.clock.reached:
            first = first_at_target(self.clock.evaluations, target)
            how = f"target {target.value} reached at epoch {first['epoch']}"
        else:
            how = f"--max_epochs={config.max_epochs} run, short of the target {target.value}"
        report = self.run_dir.report if self.chief else "the chief's"
        self.log(
            f"{self.run_dir} holds a finished run ({how}): nothing to do; its "
            f"report is {report} (raise --max_epochs to train on)"
        )
        return True

    def _finish(self):
        """Exports the model and writes the report (the chief only)."""
        exported = self.task.export(self.model, self.run_dir) if self.chief else None
        report = report_lib.run_report(
            self.config,
            self.clock,
            self.task,
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
    """The step sums (loss, the task's) and speed since the last progress line."""

    def __init__(self):
        self.examples, self.sums = 0, {}
        self.start = time.perf_counter()

    def add(self, examples, sums):
        self.examples += examples
        for name, value in sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value

    def take(self):
        """`({name: mean per example}, examples per second)`, and starts over."""
        seen = max(self.examples, 1)
        taken = (
            {name: total / seen for name, total in self.sums.items()},
            self.examples / (time.perf_counter() - self.start),
        )
        self.__init__()
        return taken


def read_report(run_dir):
    """The report.json of a finished run."""
    return read_json(
        run_dir.report, f"delete it to report again, or {run_dir.start_over}"
    )


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
