"""Which cell: vanilla, GRU, LSTM, peephole LSTM, 2-layer LSTM, CNN+LSTM.

    python -m experiments.cells --quick     # tiny: MNIST, 1024 examples, 1 epoch, 16 units
    python -m experiments.cells             # 128 units, 5 epochs of MNIST and Fashion-MNIST

Each model trains with `tfrnn.training.train` (dynamic, Adam 5e-3 constant,
clip 1, batch 128, MNIST rows: T=28, F=28) for the same budget of `--epochs`
(the run's target is out of reach), evaluated every `--eval_every_steps` steps
and at epoch ends; the time to the target (0.98 MNIST, 0.88 Fashion-MNIST) is
read off the evaluations: the first at or above it (None if none). Models:
`rnn` (Keras `SimpleRNNCell`), `gru` (Keras `GRUCell`), `lstm`
(`tfrnn.LSTMCell`), `peephole_lstm`, `lstm_2layers` (`tfrnn.MultiRNNCell`),
`cnn_rnn` (two conv + pool blocks, then an LSTM over the 7 feature-map rows).
"""

import pathlib
import tempfile
import time

from experiments import harness

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


def train_one(dataset, name, s, workdir):
    """Trains one model for the budget; returns its record."""
    from tfrnn import training

    spec = MODELS[name]
    target = s["mnist_target" if dataset == "mnist" else "fashion_target"]
    config = training.Config(
        mode="dynamic", **spec, units=s["units"], dataset=dataset,
        batch_size=s["batch_size"], learning_rate=s["learning_rate"], clip_norm=1.0,
        schedule="constant", target_accuracy=1.0,  # every model: the whole budget
        max_epochs=s["epochs"], eval_every_steps=s["eval_every_steps"],
        checkpoint_every_steps=10**9, log_every_steps=10**9,
        train_examples=s["train_examples"], test_examples=s["test_examples"],
        seed=s["seed"], deterministic=s["deterministic"],
        model_dir=str(pathlib.Path(workdir) / f"{dataset}-{name}"),
    )  # fmt: skip
    started = time.perf_counter()
    run = training.train(config, log=lambda line: None)
    evaluations, timing = run["evaluations"], run["timing"]
    at = next((e for e in evaluations if e["test_accuracy"] >= target), {})
    config = dict(dataset=dataset, model_name=name, **spec, units=s["units"], mode="dynamic",
                  T=28, F=28, batch=s["batch_size"], learning_rate=s["learning_rate"],
                  epochs=s["epochs"], train_examples=run["train_examples"],
                  test_examples=run["test_examples"], target_accuracy=target)  # fmt: skip
    values = {
        "parameters": run["parameters"],
        "test_accuracy": evaluations[-1]["test_accuracy"],
        "best_test_accuracy": max(e["test_accuracy"] for e in evaluations),
        "target_reached": bool(at), "seconds_to_target": at.get("seconds"),
        "train_seconds_to_target": at.get("train_seconds"),
        "step_seconds_to_target": at.get("step_seconds"), "epochs_to_target": at.get("epoch"),
        "step_seconds": timing["step_seconds"], "eval_seconds": timing["eval_seconds"],
        "wall_seconds": time.perf_counter() - started, "trace_seconds": timing["trace_seconds"],
        "median_step_ms": timing["median_step_ms"],
        "examples_per_second": timing["examples_per_second"], "evaluations": evaluations,
    }  # fmt: skip
    return harness.Record(NAME, config, values=values, environment=run["environment"]).flat()


COLUMNS = ("dataset", ("model", lambda r: r["model_name"]), "parameters", "test_accuracy",
           "best_test_accuracy", ("target", lambda r: r["target_accuracy"]),
           "seconds_to_target", ("train s to target", lambda r: r["train_seconds_to_target"]),
           "epochs_to_target", ("step ms", lambda r: r["median_step_ms"]), "step_seconds")  # fmt: skip


def markdown(records):
    first = records[0] if records else {}
    return harness.header(
        "Cells on MNIST and Fashion-MNIST rows (T=28, F=28), dynamic unrolling", records,
        f"`tfrnn.training.train`, Adam {first.get('learning_rate')}, batch "
        f"{first.get('batch')}, {first.get('units')} units, budget {first.get('epochs')} "
        "epoch(s). Seconds to target: wall time since the start (training and "
        "evaluations) at the first evaluation at or above the target; train s: the same "
        "without the evaluations; steps s: the training steps alone, the whole budget. "
        "Timings on a shared machine are noisy.",
    ) + harness.table(records, COLUMNS) + "\n"  # fmt: skip


def run(s, output, quick, log=print):
    paths = harness.result_paths(output, NAME, quick)
    records = []
    with tempfile.TemporaryDirectory(prefix="tfrnn-cells-") as workdir:
        for dataset in s["datasets"]:
            for name in s["models"]:
                records.append(train_one(dataset, name, s, workdir))
                r = records[-1]
                reached = f"after {r['seconds_to_target']:.1f} s" if r["target_reached"] else "not reached"
                log(f"{dataset} {name}: test accuracy {r['test_accuracy']:.4f}, {r['target_accuracy']} {reached}")
                harness.write_json(paths["json"], records)
                paths["md"].write_text(markdown(records))
    return paths


if __name__ == "__main__":
    harness.main(__import__(__name__))
