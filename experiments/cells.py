"""Which cell: vanilla, GRU, LSTM, peephole LSTM, 2-layer LSTM, CNN+LSTM.

    python -m experiments.cells --quick     # tiny: MNIST, 1024 examples, 1 epoch, 16 units
    python -m experiments.cells             # 128 units, 5 epochs of MNIST and Fashion-MNIST

Each model trains with `tfrnn.loop.train` (dynamic, Adam 5e-3 constant,
clip 1, batch 128, MNIST rows: T=28, F=28) for the same budget of `--epochs`
(the run's target is out of reach), evaluated every `--eval_every_steps` steps
and at epoch ends; the time to the target (0.98 MNIST, 0.88 Fashion-MNIST) is
read off the evaluations: the first at or above it (None if none). Models:
`rnn` (Keras `SimpleRNNCell`), `gru` (Keras `GRUCell`), `lstm`
(`tfrnn.LSTMCell`), `peephole_lstm`, `lstm_2layers` (`tfrnn.MultiRNNCell`),
`cnn_rnn` (two conv + pool blocks, then an LSTM over the 7 feature-map rows).
"""

import time

from experiments import harness
from tfrnn.clock import target_fields  # TF-free

NAME = "cells"
MODELS = {
    "rnn": dict(cell="rnn", layers=1, model="rnn"),
    "gru": dict(cell="gru", layers=1, model="rnn"),
    "lstm": dict(cell="lstm", layers=1, model="rnn"),
    "peephole_lstm": dict(cell="peephole_lstm", layers=1, model="rnn"),
    "lstm_2layers": dict(cell="lstm", layers=2, model="rnn"),
    "cnn_rnn": dict(cell="lstm", layers=1, model="cnn_rnn"),
}
DATASETS = ("mnist", "fashion_mnist")
FULL = dict(
    models=list(MODELS), datasets=list(DATASETS), units=128, epochs=5,
    train_examples=None, test_examples=None, eval_every_steps=200,
    mnist_target=0.98, fashion_target=0.88, batch_size=128, learning_rate=5e-3,
    seed=0, deterministic=True,
)  # fmt: skip
# quick: MNIST only (shipped with tfrnn); Fashion-MNIST is optional data
QUICK = dict(datasets=["mnist"], units=16, epochs=1, train_examples=1024)
QUICK.update(test_examples=256, eval_every_steps=1000)
HELP = dict(deterministic="TensorFlow op determinism (as tfrnn.train)")


CHOICES = dict(models=list(MODELS), datasets=DATASETS)
POSITIVE = ("epochs", "units")


def train_one(dataset, name, s):
    """Trains one model for the budget; returns its record."""
    spec, target = MODELS[name], s["mnist_target" if dataset == "mnist" else "fashion_target"]
    keys = ("units", "batch_size", "learning_rate", "eval_every_steps", "train_examples")
    keys += ("test_examples", "seed", "deterministic")
    started = time.perf_counter()
    run = harness.train_tfrnn(
        mode="dynamic", **spec, dataset=dataset, clip_norm=1.0, schedule="constant",
        target_accuracy=1.0, max_epochs=s["epochs"],  # every model: the whole budget
        checkpoint_every_steps=10**9, log_every_steps=10**9, **{k: s[k] for k in keys},
    )  # fmt: skip
    config = dict(dataset=dataset, model_name=name, **spec, units=s["units"], mode="dynamic",
                  T=28, F=28, batch=s["batch_size"], learning_rate=s["learning_rate"],
                  epochs=s["epochs"], train_examples=run["train_examples"],
                  test_examples=run["test_examples"], target_accuracy=target)  # fmt: skip
    keys = ("parameters", "best_test_accuracy", "step_seconds", "eval_seconds", "trace_seconds")
    keys += ("median_step_ms", "examples_per_second", "evaluations")
    values = {"test_accuracy": run["final_test_accuracy"], **{k: run[k] for k in keys},
              **target_fields(run["evaluations"], target), "wall_seconds": time.perf_counter() - started}
    return harness.Record(NAME, config, values=values, environment=run["environment"]).flat()


COLUMNS = ("dataset", ("model", lambda r: r["model_name"]), "parameters", "test_accuracy",
           "best_test_accuracy", ("target", lambda r: r["target_accuracy"]),
           "seconds_to_target", ("train s to target", lambda r: r["train_seconds_to_target"]),
           "epochs_to_target", ("step ms", lambda r: r["median_step_ms"]), "step_seconds")  # fmt: skip


def markdown(records):
    first = records[0] if records else {}
    return harness.header(
        "Cells on MNIST and Fashion-MNIST rows (T=28, F=28), dynamic unrolling", records,
        f"`tfrnn.loop.train`, Adam {first.get('learning_rate')}, batch "
        f"{first.get('batch')}, {first.get('units')} units, budget {first.get('epochs')} "
        "epoch(s). Seconds to target: wall time since the start (training and "
        "evaluations) at the first evaluation at or above the target; train s: the same "
        "without the evaluations; steps s: the training steps alone, the whole budget. "
        "Timings on a shared machine are noisy.",
    ) + harness.table(records, COLUMNS) + "\n"  # fmt: skip


def run(s, output, quick, log=print):
    paths, records = harness.result_paths(output, NAME, quick), []
    for dataset in s["datasets"]:
        for name in s["models"]:
            records.append(r := train_one(dataset, name, s))
            reached = f"after {r['seconds_to_target']:.1f} s" if r["target_reached"] else "not reached"
            log(f"{dataset} {name}: test accuracy {r['test_accuracy']:.4f}, "
                f"{r['target_accuracy']} {reached}")
            harness.write_json(paths["json"], records)
            paths["md"].write_text(markdown(records))
    return paths


if __name__ == "__main__":
    harness.main(__import__(__name__))
