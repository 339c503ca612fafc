"""`python -m tfrnn.train`: train an RNN classifier to a target test accuracy.

    python -m tfrnn.train --mode=dynamic            # LSTM-128 on MNIST rows to 98 %
    python -m tfrnn.train --mode=static --cell=gru --model_dir=runs/gru

Re-running the same command with the same --model_dir resumes where it stopped.
"""

import dataclasses
import signal
import sys

from absl import app
from absl import flags
from absl import logging

from tfrnn import data
from tfrnn import models
from tfrnn import report
from tfrnn import training
from tfrnn.errors import Interrupted
from tfrnn.errors import TfrnnError

FLAGS = flags.FLAGS
_DEFAULTS = training.Config()


def define_flags():
    """The command line: one flag per field of `tfrnn.training.Config`."""
    flags.DEFINE_enum(
        "mode", _DEFAULTS.mode, models.MODES, "static or dynamic unrolling."
    )
    flags.DEFINE_enum("cell", _DEFAULTS.cell, models.CELLS, "Recurrent cell.")
    flags.DEFINE_integer("units", _DEFAULTS.units, "Units per recurrent layer.")
    flags.DEFINE_integer("layers", _DEFAULTS.layers, "Stacked recurrent layers.")
    flags.DEFINE_enum(
        "model",
        _DEFAULTS.model,
        models.MODELS,
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
        data.SEQUENCES,
        "rows (T=28), pixels (T=784) or permuted pixels.",
    )
    flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size.")
    flags.DEFINE_enum(
        "optimizer", _DEFAULTS.optimizer, training.OPTIMIZERS, "Optimizer."
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
        training.SCHEDULES,
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
        "strategy", _DEFAULTS.strategy, training.STRATEGIES, "tf.distribute strategy."
    )
    flags.DEFINE_bool(
        "deterministic", _DEFAULTS.deterministic, "Turn on TensorFlow op determinism."
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # progress is printed; TF's INFO is noise
    config = training.Config(
        **{f.name: FLAGS[f.name].value for f in dataclasses.fields(training.Config)}
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)  # the loop saves, then raises
    try:
        result = training.train(config)
    except Interrupted as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(interrupted.exit_code)
    except KeyboardInterrupt as interrupt:  # outside a step: nothing new to save
        number = interrupt.args[0] if interrupt.args else signal.SIGINT
        print(
            "interrupted outside a training step; the last checkpoint (if any) is "
            "kept; rerun the same command to resume",
            file=sys.stderr,
        )
        sys.exit(128 + number)
    except (ValueError, TfrnnError) as error:
        sys.exit(f"error: {error}")
    print(report.table(report.summary_rows(result)))
    print(f"report: {config.model_dir}/report.json")


def _raise_interrupt(number, frame):
    raise KeyboardInterrupt(number)


if __name__ == "__main__":
    define_flags()
    app.run(main)
