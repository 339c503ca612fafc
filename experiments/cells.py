"""Which cell: vanilla, GRU, LSTM, peephole LSTM, 2-layer LSTM, CNN+LSTM.

    python -m experiments.cells --quick     # tiny: MNIST, 1024 examples, 1 epoch, 16 units
    python -m experiments.cells             # 128 units, 5 epochs of MNIST and Fashion-MNIST

Each model trains with `tfrnn.training.loop.train` (dynamic, Adam 5e-3, clip 1, batch
128, image rows: T=28, F=28) for all `--epochs`, evaluated every
`--eval_every_steps` steps and at epoch ends; time to the target (0.98 MNIST,
0.88 Fashion-MNIST): that of the first evaluation at or above it. `rnn`, `gru`:
Keras's cells; `lstm`, `peephole_lstm`: `tfrnn.LSTMCell`; `lstm_2layers`: a
`tfrnn.MultiRNNCell`; `cnn_rnn`: two conv + pool blocks, then an LSTM over 7 rows.
"""

import itertools
import time

from experiments import harness
from tfrnn.training.clock import Target, target_fields  # TF-free

NAME = "cells"
MODELS = dict(  # tfrnn.tasks.classify.config.Config's cell, layers (1) and model ("rnn")
    rnn=dict(cell="rnn"), gru=dict(cell="gru"), lstm=dict(cell="lstm"),
    peephole_lstm=dict(cell="peephole_lstm"), lstm_2layers=dict(cell="lstm", layers=2),
    cnn_rnn=dict(cell="lstm", model="cnn_rnn"),
)
FULL = dict(
    models=list(MODELS), datasets=["mnist", "fashion_mnist"], units=128, epochs=5,
    train_examples=None, test_examples=None, eval_every_steps=200,
    mnist_target=0.98, fashion_target=0.88, batch_size=128, learning_rate=5e-3,
    seed=0, deterministic=True,
)  # fmt: skip
QUICK = dict(datasets=["mnist"], units=16, epochs=1, train_examples=1024, test_examples=256,
             eval_every_steps=1000)  # MNIST only: shipped with tfrnn (Fashion-MNIST: optional)
HELP = dict(deterministic="TensorFlow op determinism (as tfrnn.train)")
CHOICES = dict(models=list(MODELS), datasets=FULL["datasets"])
POSITIVE = ("epochs", "units")
TRAINING = ("units", "batch_size", "learning_rate", "eval_every_steps", "train_examples",
            "test_examples", "seed", "deterministic")  # fmt: skip
MEASURED = ("parameters", "best_test_accuracy", "step_seconds", "eval_seconds", "trace_seconds",
            "median_step_ms", "examples_per_second", "evaluations")  # fmt: skip


def train_one(dataset, name, s):
    """Trains one model for the whole budget (the target is 1.0); its record."""
    spec = {"layers": 1, "model": "rnn", **MODELS[name]}
    target = s["mnist_target" if dataset == "mnist" else "fashion_target"]
    started = time.perf_counter()
    run = harness.train_tfrnn(
        mode="dynamic", **spec, dataset=dataset, clip_norm=1.0, schedule="constant",
        target_accuracy=1.0, max_epochs=s["epochs"], checkpoint_every_steps=10**9,
        log_every_steps=10**9, **{k: s[k] for k in TRAINING},
    )  # fmt: skip
    config = dict(dataset=dataset, model_name=name, **spec, units=s["units"], mode="dynamic",
                  T=28, F=28, batch=s["batch_size"], learning_rate=s["learning_rate"],
                  epochs=s["epochs"], train_examples=run["train_examples"],
                  test_examples=run["test_examples"], target_accuracy=target)  # fmt: skip
    values = dict(test_accuracy=run["final_test_accuracy"], **{k: run[k] for k in MEASURED},
                  **target_fields(run["evaluations"], Target("test_accuracy", target)),
                  wall_seconds=time.perf_counter() - started)  # fmt: skip
    return harness.Record(NAME, config, values=values, environment=run["environment"]).flat()


COLUMNS = ("dataset", ("model", lambda r: r["model_name"]), "parameters", "test_accuracy",
           "best_test_accuracy", ("target", lambda r: r["target_accuracy"]), "seconds_to_target",
           ("train s to target", lambda r: r["train_seconds_to_target"]), "epochs_to_target",
           ("step ms", lambda r: r["median_step_ms"]), "step_seconds")  # fmt: skip


def markdown(records):
    title = "Cells on MNIST and Fashion-MNIST rows (T=28, F=28), dynamic unrolling"
    note = ("`tfrnn.training.loop.train`, Adam {learning_rate}, batch {batch}, {units} units, {epochs} "
            "epoch(s). Seconds to target: wall time since the start at the first evaluation at "
            "or above the target; train s: the same without the evaluations; steps s: the "
            "whole budget's training steps. Timings on a shared machine are noisy.")
    text = harness.header(title, records, note.format(**records[0]))
    return text + harness.table(records, COLUMNS) + "\n"


def run(s, output, quick, log=print):
    json_path, records = harness.result_paths(output, NAME, quick)["json"], []
    for dataset, name in itertools.product(s["datasets"], s["models"]):
        records.append(train_one(dataset, name, s))
        keys = ("test_accuracy", "target_reached", "seconds_to_target")
        log(f"{dataset} {name}: {harness.summary(records[-1], keys)}")
        harness.write_json(json_path, records)
    return harness.write_results(output, NAME, quick, records, markdown(records), log)


if __name__ == "__main__":
    harness.main(__import__(__name__))
