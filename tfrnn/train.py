"""`python -m tfrnn.train`: train an RNN classifier to a target test accuracy.

    python -m tfrnn.train --mode=dynamic            # LSTM-128 on MNIST rows to 98 %
    python -m tfrnn.train --mode=static --cell=gru --model_dir=runs/gru
    python -m tfrnn.train --mode=dynamic --unroll=4 --bidirectional

Re-running the same command with the same --model_dir resumes where it stopped.
The defaults are the fastest to 98 % measured on a 2-core CPU
(experiments/results/fast_path.md, rerun with `python -m experiments.steps`):
TensorFlow's thread pools at 1 thread per op and 2 ops at once; float32, no
XLA, one step per loop iteration.
"""

import dataclasses

from absl import app
from absl import flags

from tfrnn import cli
from tfrnn import config as config_lib

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.Config()


# One flag per field of `tfrnn.config.Config`, with its default and choices.
HELP = {
    "mode": "static or dynamic unrolling.",
    "unroll": "Dynamic: steps per while-loop iteration, each block unrolled "
    "(1: the plain loop; static is K = T).",
    "bidirectional": "Read the sequence both ways (keras.layers.Bidirectional "
    "over tfrnn.RNN; 2 x units features to the classes).",
    "cell": "Recurrent cell.",
    "units": "Units per recurrent layer.",
    "layers": "Stacked recurrent layers.",
    "model": "rnn, or cnn_rnn (conv features as a sequence).",
    "dataset": "mnist, fashion_mnist or tfds:NAME.",
    "data_dir": "Data directory (Fashion-MNIST files, or TFDS data_dir).",
    "sequence": "rows (T=28), pixels (T=784) or permuted pixels.",
    "batch_size": "Global batch size.",
    "optimizer": "Optimizer.",
    "learning_rate": "Learning rate.",
    "clip_norm": "Clip gradients to this global norm (0: no clipping).",
    "schedule": "Learning rate: constant, or cosine decay to a tenth over "
    "--decay_epochs.",
    "decay_epochs": "Epochs of the cosine decay.",
    "target_accuracy": "Stop at this test accuracy, in (0, 1].",
    "max_epochs": "Stop after this many epochs.",
    "eval_every_steps": "Evaluate on the test set every N steps (and at each "
    "epoch end).",
    "checkpoint_every_steps": "Checkpoint every N steps (and at each epoch end).",
    "log_every_steps": "Print progress every N steps.",
    "model_dir": "Checkpoints, export, report.json, TensorBoard logs.",
    "seed": "Seed of weights and data order.",
    "train_examples": "Use the first N training examples.",
    "test_examples": "Use the first N test examples.",
    "jit_compile": "Compile the training step with XLA.",
    "precision": "float32, or mixed_bfloat16 (float32 weights, bfloat16 "
    "computations; 1.05-1.18x float32's step on a 2-core AVX512_BF16 CPU).",
    "intra_op_threads": "Threads inside one op (0: TensorFlow's choice; 1 with "
    "--inter_op_threads=2 measured fastest on 2 cores).",
    "inter_op_threads": "Ops run at once (0: TensorFlow's choice).",
    "strategy": "tf.distribute strategy.",
    "deterministic": "Turn on TensorFlow op determinism.",
}
_DEFINE = {
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    bool: flags.DEFINE_bool,
    str: flags.DEFINE_string,
}


def define_flags(flag_values=FLAGS):
    """The command line: one flag per field of `tfrnn.config.Config`."""
    for field in dataclasses.fields(config_lib.Config):
        default = getattr(_DEFAULTS, field.name)
        if field.name in config_lib.CHOICES:
            flags.DEFINE_enum(
                field.name,
                default,
                config_lib.CHOICES[field.name],
                HELP[field.name],
                flag_values=flag_values,
            )
        else:
            _DEFINE[field.type](
                field.name, default, HELP[field.name], flag_values=flag_values
            )


def main(argv, flag_values=FLAGS):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_lib.Config(
        **{
            f.name: flag_values[f.name].value
            for f in dataclasses.fields(config_lib.Config)
        }
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
    cli.main(define_flags, main)
