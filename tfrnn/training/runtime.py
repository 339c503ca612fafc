"""The process's TensorFlow runtime: thread pools and the distribution
strategy, both set before the runtime starts (the training loop's first job),
and tf.data without its autotuning."""

import tensorflow as tf

from tfrnn.training.errors import ConfigError
from tfrnn.training.errors import one_line


def make_strategy(name, worker_timeout=None, log=print):
    """The `tf.distribute` strategy of `--strategy=name`; a multi-worker one
    waits at most `worker_timeout` seconds for the workers of `TF_CONFIG`
    (`tfrnn.training.workers.waiting_for_workers`, which `log`s one line
    as it starts waiting)."""
    from tfrnn.training import workers

    cluster = workers.cluster_from_environment()
    if name != "multi_worker":
        if cluster:
            raise ConfigError(
                f"TF_CONFIG lists a cluster ({', '.join(cluster[1])} besides {cluster[0]}) "
                f"but --strategy={name}: add --strategy=multi_worker, or unset TF_CONFIG"
            )
        if name == "mirrored":
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if cluster is None:  # one worker: nothing to wait for
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        with workers.waiting_for_workers(worker_timeout, cluster, log):
            return tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.UnknownError as error:  # its gRPC server did not start
        raise ConfigError(
            f"{cluster[0]} cannot listen at its address in TF_CONFIG ({one_line(error)}): "
            "is another process using that port? Choose free ports in TF_CONFIG"
        ) from None


def is_chief(strategy):
    """Whether this process writes the run's files: the chief (or worker 0)
    of a cluster, or the only process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


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


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with a fixed prefetch of 2 batches and tf.data's autotuning off.

    With autotuning on, epoch starts stalled for seconds on 2 cores: Keras
    `fit`, and tfrnn's own loop (20-26 s pauses in 4 of 9 runs; none in 3 runs
    with it off), deleting the last epoch's iterator (8-40 s in the language
    model's, experiments/results/language_model.md). The training loop reads
    every task's batches through it.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)
