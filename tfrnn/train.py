"""`python -m tfrnn.train`: train an RNN classifier to a target test accuracy.

    python -m tfrnn.train --mode=dynamic            # LSTM-128 on MNIST rows to 98 %
    python -m tfrnn.train --mode=static --cell=gru --model_dir=runs/gru

Re-running the same command with the same --model_dir resumes where it stopped.
"""

import dataclasses

from absl import app
from absl import flags

from tfrnn import cli
from tfrnn import config as config_lib

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.Config()


def define_flags():
    """The command line: one flag per field of `tfrnn.config.Config`."""
    flags.DEFINE_enum(
        "mode", _DEFAULTS.mode, config_lib.MODES, "static or dynamic unrolling."
    )
    flags.DEFINE_enum("cell", _DEFAULTS.cell, config_lib.CELLS, "Recurrent cell.")
    flags.DEFINE_integer("units", _DEFAULTS.units, "Units per recurrent layer.")
    flags.DEFINE_integer("layers", _DEFAULTS.layers, "Stacked recurrent layers.")
    flags.DEFINE_enum(
        "model",
        _DEFAULTS.model,
        config_lib.MODELS,
        "rnn, or cnn_rnn (conv features as a sequence).",
    )
    flags.DEFINE_string(
        "dataset", _DEFAULTS.dataset, "mnist, fashion_mnist or tfds:NAME."
    )
    flags.DEFINE_string(
        "data_dir",
        _DEFAULTS.data_dir,
        "Data directory (Fashion-MNIST files, or TFDS data_dir).",
    )
    flags.DEFINE_enum(
        "sequence",
        _DEFAULTS.sequence,
        config_lib.SEQUENCES,
        "rows (T=28), pixels (T=784) or permuted pixels.",
    )
    flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size.")
    flags.DEFINE_enum(
        "optimizer", _DEFAULTS.optimizer, config_lib.OPTIMIZERS, "Optimizer."
    )
    flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Learning rate.")
    flags.DEFINE_float(
        "clip_norm",
        _DEFAULTS.clip_norm,
        "Clip gradients to this global norm (0: no clipping).",
    )
    flags.DEFINE_enum(
        "schedule",
        _DEFAULTS.schedule,
        config_lib.SCHEDULES,
        "Learning rate: constant, or cosine decay to a tenth over --decay_epochs.",
    )
    flags.DEFINE_float(
        "decay_epochs", _DEFAULTS.decay_epochs, "Epochs of the cosine decay."
    )
    flags.DEFINE_float(
        "target_accuracy",
        _DEFAULTS.target_accuracy,
        "Stop at this test accuracy, in (0, 1].",
    )
    flags.DEFINE_integer(
        "max_epochs", _DEFAULTS.max_epochs, "Stop after this many epochs."
    )
    flags.DEFINE_integer(
        "eval_every_steps",
        _DEFAULTS.eval_every_steps,
        "Evaluate on the test set every N steps (and at each epoch end).",
    )
    flags.DEFINE_integer(
        "checkpoint_every_steps",
        _DEFAULTS.checkpoint_every_steps,
        "Checkpoint every N steps (and at each epoch end).",
    )
    flags.DEFINE_integer(
        "log_every_steps", _DEFAULTS.log_every_steps, "Print progress every N steps."
    )
    flags.DEFINE_string(
        "model_dir",
        _DEFAULTS.model_dir,
        "Checkpoints, export, report.json, TensorBoard logs.",
    )
    flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of weights and data order.")
    flags.DEFINE_integer(
        "train_examples", _DEFAULTS.train_examples, "Use the first N training examples."
    )
    flags.DEFINE_integer(
        "test_examples", _DEFAULTS.test_examples, "Use the first N test examples."
    )
    flags.DEFINE_bool(
        "jit_compile", _DEFAULTS.jit_compile, "Compile the training step with XLA."
    )
    flags.DEFINE_enum(
        "strategy", _DEFAULTS.strategy, config_lib.STRATEGIES, "tf.distribute strategy."
    )
    flags.DEFINE_bool(
        "deterministic", _DEFAULTS.deterministic, "Turn on TensorFlow op determinism."
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_lib.Config(
        **{f.name: FLAGS[f.name].value for f in dataclasses.fields(config_lib.Config)}
    )
    cli.quiet_tensorflow()
    cli.run(_train, config)


def _train(config):
    from tfrnn import loop
    from tfrnn import report

    training_loop = loop.TrainingLoop(config)
    result = training_loop.run()
    if training_loop.already_finished:
        return
    print(report.table(report.summary_rows(result)))
    print(f"report: {training_loop.run_dir.report}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
