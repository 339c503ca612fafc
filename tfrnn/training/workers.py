"""A multi-worker run's faults (`--strategy=multi_worker`, `TF_CONFIG`): no
worker trains apart from the others, and an interrupted or lost worker
loses nothing.

- Waiting for the cluster (`waiting_for_workers`, said in one line as it
  starts): TensorFlow blocks in C++, holding the interpreter, until every
  worker of `TF_CONFIG` has started, so no Python signal handler or timer
  can run. A watchdog process keeps the deadline (`--worker_timeout`) and
  says one line when it passes or when the worker is interrupted (nothing
  is trained yet). SIGINT keeps its default action meanwhile (exit 130);
  SIGTERM stays blocked (TensorFlow installs a handler of its own that
  would swallow it) and ends the worker by the watchdog's SIGKILL (exit
  137, not 143: README's "Several devices and machines" says why).
- An interrupt of any worker (`Interrupts`): TensorFlow's
  `tf.distribute.experimental.PreemptionCheckpointHandler` agrees, through
  the cluster's coordination service, on the step at which every worker
  saves, then each saves its checkpoint and stops with one line.
- A lost worker (`lost_worker`): the step's collective fails on the others;
  each saves the state of its last completed step and stops with one line
  naming the worker.
- At a restart (`agree_on_state`): the workers compare the step each one
  restored; when they differ (a worker lost or killed between checkpoints)
  every worker takes the state of the newest one, so none trains apart.

Each worker saves into its own directory (`MODEL_DIR/checkpoints` for the
chief, `MODEL_DIR/worker-N/checkpoints` for worker N) and restores from it:
a shared `--model_dir` and one per machine both work.
"""

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

import tensorflow as tf

from tfrnn.training.errors import ConfigError
from tfrnn.training.errors import TfrnnError
from tfrnn.training.errors import one_line

# The watchdog: stdin is a pipe from the worker, which writes "ok" once the
# cluster is up; EOF before that: the worker died waiting (SIGINT). A SIGTERM
# stays pending in the worker (blocked: TensorFlow's own handler would
# swallow it), seen in /proc. The deadline and SIGTERM end the worker (SIGKILL).
_WATCHDOG = r"""
import os, select, signal, sys, time
worker, seconds, timed_out, interrupted = sys.argv[1:]
deadline = time.monotonic() + float(seconds)

def sigterm_pending():
    try:
        with open(f"/proc/{worker}/status") as status:
            pending = [int(line.split()[1], 16) for line in status
                       if line.startswith(("ShdPnd:", "SigPnd:"))]
    except OSError:
        return False
    return any(mask & (1 << (signal.SIGTERM - 1)) for mask in pending)

while True:
    left = deadline - time.monotonic()
    if select.select([0], [], [], max(0.0, min(left, 0.2)))[0]:
        if os.read(0, 2) != b"ok":
            sys.stderr.write(interrupted + "\n")
        break
    if sigterm_pending() or left <= 0:
        sys.stderr.write((interrupted if left > 0 else timed_out) + "\n")
        sys.stderr.flush()
        os.kill(int(worker), signal.SIGKILL)
        break
"""

# The names of PreemptionCheckpointHandler's threads.
_WATCHERS = ("PeerTerminationWatcher", "WorkerTerminationSignalWatcher")

# The collective errors of a step whose peer has gone.
_LOST = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
)


class WorkerLost(TfrnnError):
    """Another worker of the cluster stopped answering; a checkpoint was saved.

    The process cannot end cleanly once its cluster is gone (TensorFlow's
    thread pools fail at exit): the CLI ends it at once after the line."""

    end_process_now = True


def in_cluster(strategy):
    """Whether `strategy` runs over several workers (`TF_CONFIG`)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return bool(resolver and resolver.cluster_spec().jobs)


def cluster_from_environment():
    """`(this worker's name, the names of the others)` from `TF_CONFIG`, e.g.
    `("worker 0", ["worker 1 (127.0.0.1:20001)"])`; None without `TF_CONFIG`
    or another worker in it. A `TF_CONFIG` that cannot be read raises
    `ConfigError`."""
    text = os.environ.get("TF_CONFIG", "")
    try:
        cluster = json.loads(text).get("cluster", {}) if text else {}
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        resolver.cluster_spec()
        task = (resolver.task_type, resolver.task_id)
        if cluster and (task[0] not in cluster or not 0 <= task[1] < len(cluster[task[0]])):
            raise ValueError(f"its task {task[0]} {task[1]} is not in its cluster")
    except (ValueError, AttributeError, TypeError) as error:
        raise ConfigError(
            f"TF_CONFIG cannot be used ({one_line(error)}); it must be JSON like "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
            '"index": i}}, i this worker\'s place in the list'
        ) from None
    others = [
        f"{job} {index} ({address})"
        for job, addresses in cluster.items()
        for index, address in enumerate(addresses)
        if (job, index) != (resolver.task_type, resolver.task_id)
    ]
    return (f"{resolver.task_type} {resolver.task_id}", others) if others else None


@contextlib.contextmanager
def waiting_for_workers(seconds, cluster, log=print):
    """Runs the body (the strategy's construction, which waits for every
    worker of `TF_CONFIG`, `cluster_from_environment()`) under a deadline of
    `seconds`, interruptible; `log`s first the line "worker 0 waiting for
    worker 1 (HOST:PORT) of TF_CONFIG: up to --worker_timeout=300 s"."""
    this, others = cluster
    read_end, write_end = os.pipe()
    watchdog = subprocess.Popen(
        [sys.executable, "-S", "-c", _WATCHDOG, str(os.getpid()), str(seconds),
         f"error: {this} waited {seconds:g} s for {', '.join(others)} of TF_CONFIG, "
         "which did not start: start every worker's command (within --worker_timeout "
         "of each other), or check TF_CONFIG's addresses",
         f"{this} interrupted while waiting for {', '.join(others)} of TF_CONFIG; "
         "nothing was trained"],
        stdin=read_end, start_new_session=True,  # fmt: skip
    )
    os.close(read_end)
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        log(f"{this} waiting for {', '.join(others)} of TF_CONFIG: up to "
            f"--worker_timeout={seconds:g} s")
        sys.stdout.flush()  # nothing is written while TensorFlow waits
        yield
    finally:
        os.write(write_end, b"ok")
        os.close(write_end)
        watchdog.wait()
        signal.signal(signal.SIGINT, previous)
        # TensorFlow installed a SIGTERM handler of its own meanwhile: the
        # process's is put back before SIGTERM is let through again.
        signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class Interrupts:
    """SIGINT/SIGTERM of any worker stop every worker at one step, after a
    checkpoint: TensorFlow's `PreemptionCheckpointHandler`, told of a signal
    by `stop` (the list `loop.stop_requests` fills), saving with `save()`
    and stopping with `stopped(signal_number)` (which raises).

    `run(train_step, batch)` runs a step; before it, at the step the workers
    agreed on, it saves and stops.
    """

    def __init__(self, strategy, stop, save, stopped):
        self._stop = stop
        # The handler's own restore is not used (tfrnn restores, falling back
        # past damaged files): it is given an empty checkpoint to manage.
        unused = os.path.join(tempfile.gettempdir(), f"tfrnn-unused-{os.getpid()}")
        config = tf.distribute.experimental.TerminationConfig(
            termination_watcher_fn=lambda: bool(stop),
            exit_fn=lambda: stopped(stop[0] if stop else signal.SIGTERM),
            grace_period=0,
            save_fn=save,
        )
        self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver,
            tf.train.CheckpointManager(tf.train.Checkpoint(), unused, max_to_keep=1),
            termination_config=config,
        )
        self._quiet_watchers()
        # Read once quietly: the handler reads its own deprecated property
        # when it saves, which TensorFlow logs once per process.
        logger, level = tf.get_logger(), tf.get_logger().level
        logger.setLevel("ERROR")
        try:
            self._handler.total_run_calls  # noqa: B018
        finally:
            logger.setLevel(level)

    @staticmethod
    def _quiet_watchers(previous=threading.excepthook):
        """Drops the handler's watcher threads' errors when the cluster goes
        (the main thread reports the lost worker, in one line)."""

        def hook(args):
            watcher = args.thread is not None and args.thread.name.startswith(_WATCHERS)
            if not (watcher and issubclass(args.exc_type, tf.errors.OpError)):
                previous(args)

        threading.excepthook = hook

    def run(self, train_step, batch):
        return self._handler.run(train_step, batch)

    def close(self):
        """Stops the handler's watcher threads (a finished run)."""
        self._handler._stop_poll_termination_signal_thread()  # noqa: SLF001
        self._handler._stop_cluster_wise_termination_watcher_thread()  # noqa: SLF001


def lost_worker(error, strategy, last_step, checkpoints):
    """The `WorkerLost` of collective error `error` (raised by a step after the
    checkpoint of `last_step`, `(epoch, step)` as the progress lines name it,
    `checkpoint.last_step`, was saved in `checkpoints`), or None when `error`
    is not a lost worker's."""
    if not isinstance(error, _LOST):
        return None
    resolver = strategy.cluster_resolver
    this = (resolver.task_type, str(resolver.task_id))
    named = re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", str(error))
    others = [task for task in named if task != this]
    who = " ".join(others[0]) if others else "another worker"
    return WorkerLost(
        f"lost {who} of the cluster ({type(error).__name__}); checkpoint saved at "
        f"epoch {last_step[0]} step {last_step[1]} in {checkpoints}: restart every "
        "worker with its same command to resume"
    )


# Fields the workers of one run may set differently (all others must agree).
PER_WORKER = ("model_dir", "intra_op_threads", "inter_op_threads", "worker_timeout",
              "log_every_steps")  # fmt: skip


def agree_on_config(strategy, config):
    """Refuses (`ConfigError`, on every worker alike) workers started with
    different flags, before they build anything (a model of another shape
    would fail in a collective)."""
    fields = [name for name in sorted(config.as_dict()) if name not in PER_WORKER]
    digests = [
        int.from_bytes(hashlib.sha256(repr(getattr(config, name)).encode()).digest()[:8],
                       "big", signed=True)
        for name in fields
    ]  # fmt: skip
    gathered = _gathered(strategy, tf.constant([digests], tf.int64))
    differ = [name for i, name in enumerate(fields) if len(set(gathered[:, i])) > 1]
    if differ:
        raise ConfigError(
            "the workers were started with different flags ("
            + ", ".join(f"--{name}" for name in differ)
            + "): give every worker the same flags (only "
            + ", ".join(f"--{name}" for name in PER_WORKER) + " may differ)"
        )


def agree_on_state(strategy, state, log):
    """Makes every worker hold the restored state of the newest one.

    Each worker restored its own newest checkpoint (`state`, a
    `checkpoint.TrainingState`); their global steps are compared and, if
    they differ, every variable of the checkpoint and the clock's record are
    taken from the worker with the most steps. Returns that worker's index
    when this worker took another's state, else None.
    """
    steps = _gathered(strategy, tf.constant([state.global_step], tf.int64))
    newest = int(steps.argmax())
    if (steps == steps[newest]).all():
        return None
    source = strategy.cluster_resolver.task_id == newest
    variables = state.numeric_variables()
    values = _broadcast(strategy, [tf.identity(v) for v in variables], source)
    for variable, value in zip(variables, values):
        variable.assign(value)
    state.clock_record.assign(_broadcast_string(strategy, state.clock_record, source))
    log(
        "workers restored different steps ("
        + ", ".join(f"worker {i}: {int(s)}" for i, s in enumerate(steps))
        + f"); all continue from worker {newest}'s step {int(steps[newest])}"
    )
    return None if source else newest


def _gathered(strategy, value):
    """`value` of every worker, stacked in worker order (numpy)."""
    gather = tf.function(lambda: strategy.run(
        lambda: tf.distribute.get_replica_context().all_gather(value, axis=0)))  # fmt: skip
    return strategy.experimental_local_results(gather())[0].numpy()


def _broadcast(strategy, values, source):
    """`values` of the worker where `source` is true, on every worker."""

    def replica():
        context = tf.distribute.get_replica_context()
        return [
            context.all_reduce("SUM", value if source else tf.zeros_like(value))
            for value in values
        ]

    return strategy.experimental_local_results(tf.function(lambda: strategy.run(replica))())[0]


def _broadcast_string(strategy, variable, source):
    """The string in `variable` of the worker where `source` is true (as its
    bytes, padded to the longest worker's)."""
    data = tf.io.decode_raw(variable.read_value(), tf.uint8)
    length = int(_gathered(strategy, tf.shape(data)).max())
    padded = tf.cast(tf.pad(data, [[0, length - data.shape[0]]]), tf.int32)
    received = _broadcast(strategy, [padded], source)[0]
    return bytes(received.numpy().astype("uint8")).rstrip(b"\0")
