"""Which cell: vanilla, GRU, LSTM, peephole LSTM, 2-layer LSTM, CNN+LSTM.

    python -m experiments.cells --quick     # tiny: 1024 examples, 1 epoch, 16 units
    python -m experiments.cells             # 128 units, 5 epochs of MNIST and Fashion-MNIST

Each model is trained with `tfrnn.training.train` (dynamic unrolling, a fixed
recipe: Adam 5e-3 at a constant rate, global-norm clip 1, batch 128, rows as
the sequence: T=28, F=28) for a fixed budget of
`--epochs` epochs, evaluated on the whole test set every `--eval_every_steps`
steps and at each epoch's end. The run's target is set out of reach (1.0) so
that every model gets the same budget; the time to the target (0.98 MNIST,
0.88 Fashion-MNIST by default) is then read off the evaluations: the first
one at or above it, with its wall seconds since the start (training and the
evaluations so far), the same without the evaluations
(`train_seconds_to_target`), the training steps' own seconds
(`step_seconds_to_target`), and epochs. `None` when the target was not
reached within the budget.

Models (`--models`): `rnn` (Keras `SimpleRNNCell`), `gru` (Keras `GRUCell`),
`lstm` (`tfrnn.LSTMCell`), `peephole_lstm` (`tfrnn.LSTMCell(use_peepholes=True)`),
`lstm_2layers` (two `tfrnn.LSTMCell`s in a `tfrnn.MultiRNNCell`) and `cnn_rnn`
(two 3x3 conv + 2x2 pool blocks, then an LSTM over the 7 rows of the feature
map). Writes `cells[-quick].json` (one record per dataset and model) and
`cells[-quick].md`.
"""

import pathlib
import tempfile
import time

from absl import app
from absl import flags

import experiments

FLAGS = flags.FLAGS
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
TARGETS = {"mnist": 0.98, "fashion_mnist": 0.88}

QUICK = dict(
    units=16, epochs=1, train_examples=1024, test_examples=256, eval_every_steps=1000
)
FULL = dict(
    units=128, epochs=5, train_examples=None, test_examples=None, eval_every_steps=200
)


def define_flags():
    flags.DEFINE_bool(
        "quick", False, "Tiny: 16 units, 1 epoch of 1024 examples, 256 test."
    )
    flags.DEFINE_string(
        "output", "experiments/results", "Directory for JSON and Markdown."
    )
    flags.DEFINE_list("models", list(MODELS), f"Subset of {', '.join(MODELS)}.")
    flags.DEFINE_list("datasets", list(DATASETS), f"Subset of {', '.join(DATASETS)}.")
    flags.DEFINE_integer("epochs", None, "Training budget in epochs (5; quick 1).")
    flags.DEFINE_integer("units", None, "Units per recurrent layer (128; quick 16).")
    flags.DEFINE_integer(
        "train_examples", None, "First N training examples (all; quick 1024)."
    )
    flags.DEFINE_integer(
        "test_examples", None, "First N test examples (all; quick 256)."
    )
    flags.DEFINE_integer(
        "eval_every_steps", None, "Evaluate every N steps and at epoch ends (200)."
    )
    flags.DEFINE_float(
        "mnist_target", TARGETS["mnist"], "Target test accuracy on MNIST."
    )
    flags.DEFINE_float(
        "fashion_target",
        TARGETS["fashion_mnist"],
        "Target test accuracy on Fashion-MNIST.",
    )
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_float(
        "learning_rate", 5e-3, "Adam learning rate (constant; clip_norm 1)."
    )
    flags.DEFINE_integer("seed", 0, "Seed of weights and data order.")
    flags.DEFINE_bool(
        "deterministic", True, "Turn on TensorFlow op determinism (as tfrnn.train)."
    )


def settings(quick, **overrides):
    chosen = dict(QUICK if quick else FULL)
    chosen.update(
        models=list(MODELS),
        datasets=list(DATASETS),
        targets=dict(TARGETS),
        batch_size=128,
        learning_rate=5e-3,
        seed=0,
        deterministic=True,
    )
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    for name in chosen["models"]:
        if name not in MODELS:
            raise ValueError(f"--models: {name!r} is not one of {', '.join(MODELS)}")
    for name in chosen["datasets"]:
        if name not in DATASETS:
            raise ValueError(
                f"--datasets: {name!r} is not one of {', '.join(DATASETS)}"
            )
    if chosen["epochs"] <= 0 or chosen["units"] <= 0:
        raise ValueError("--epochs and --units must be > 0")
    return chosen


def run_one(dataset, name, s, workdir, log=print):
    """Trains one model for the budget; returns its record."""
    from tfrnn import report
    from tfrnn import training

    spec = MODELS[name]
    target = s["targets"][dataset]
    config = training.Config(
        mode="dynamic",
        cell=spec["cell"],
        layers=spec["layers"],
        model=spec["model"],
        units=s["units"],
        dataset=dataset,
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        clip_norm=1.0,
        schedule="constant",  # a fixed recipe, whatever tfrnn.train's default
        target_accuracy=1.0,  # out of reach: every model trains for the whole budget
        max_epochs=s["epochs"],
        eval_every_steps=s["eval_every_steps"],
        checkpoint_every_steps=10**9,  # only at epoch ends
        log_every_steps=10**9,
        train_examples=s["train_examples"],
        test_examples=s["test_examples"],
        seed=s["seed"],
        deterministic=s["deterministic"],
        model_dir=str(pathlib.Path(workdir) / f"{dataset}-{name}"),
    )
    started = time.perf_counter()
    run = training.train(config, log=lambda line: None)
    wall = time.perf_counter() - started
    evaluations = run["evaluations"]
    record = {
        "experiment": NAME,
        "environment": run["environment"],
        "dataset": dataset,
        "model_name": name,
        "cell": spec["cell"],
        "layers": spec["layers"],
        "model": spec["model"],
        "units": s["units"],
        "mode": "dynamic",
        "T": 28,
        "F": 28,
        "batch": s["batch_size"],
        "learning_rate": s["learning_rate"],
        "epochs": s["epochs"],
        "train_examples": run["train_examples"],
        "test_examples": run["test_examples"],
        "parameters": run["parameters"],
        "target_accuracy": target,
        "test_accuracy": evaluations[-1]["test_accuracy"],
        "best_test_accuracy": max(e["test_accuracy"] for e in evaluations),
        **report.target_fields(evaluations, target),
        # the training steps alone (tfrnn's report called it train_seconds before)
        "step_seconds": run["timing"].get(
            "step_seconds", run["timing"].get("train_seconds")
        ),
        "eval_seconds": run["timing"]["eval_seconds"],
        "wall_seconds": wall,
        "trace_seconds": run["timing"]["trace_seconds"],
        "median_step_ms": run["timing"]["median_step_ms"],
        "examples_per_second": run["timing"]["examples_per_second"],
        "evaluations": evaluations,
    }
    log(
        f"{dataset} {name}: test accuracy {record['test_accuracy']:.4f} after "
        f"{s['epochs']} epoch(s), target {target} "
        + (
            f"at {record['seconds_to_target']:.0f} s (epoch {record['epochs_to_target']})"
            if record["target_reached"]
            else "not reached"
        )
    )
    return record


def result_paths(output, quick):
    return experiments.result_paths(output, quick, json=NAME, md=NAME)


def _fmt(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(records):
    first = records[0] if records else {}
    env = first.get("environment", {})
    lines = [
        "# Cells on MNIST and Fashion-MNIST rows (T=28, F=28), dynamic unrolling",
        "",
        f"{env.get('device', '?')}; TensorFlow {env.get('tensorflow', '?')}, Keras "
        f"{env.get('keras', '?')}; {env.get('date', '?')}. `tfrnn.training.train`, Adam "
        f"{first.get('learning_rate')}, batch {first.get('batch')}, {first.get('units')} units, "
        f"budget {first.get('epochs')} epoch(s). Seconds to target: wall time since the start "
        "(training and evaluations) at the first evaluation at or above the target; train s: "
        "the same without the evaluations; steps s: the training steps alone, the whole "
        "budget. Timings on a shared machine are noisy.",
        "",
        "| dataset | model | parameters | test accuracy | best | target | seconds to target "
        "| train s to target | epochs to target | step ms | steps s |",
        "|" + "---|" * 11,
    ]
    for r in records:
        lines.append(
            "| "
            + " | ".join(
                [
                    r["dataset"],
                    r["model_name"],
                    _fmt(r["parameters"]),
                    _fmt(r["test_accuracy"]),
                    _fmt(r["best_test_accuracy"]),
                    _fmt(r["target_accuracy"]),
                    _fmt(r["seconds_to_target"]),
                    _fmt(r["train_seconds_to_target"]),
                    _fmt(r["epochs_to_target"]),
                    _fmt(r["median_step_ms"]),
                    _fmt(r["step_seconds"]),
                ]
            )
            + " |"
        )
    lines.append("")
    return "\n".join(lines)


def run(s, output, quick, log=print):
    from tfrnn import report

    paths = result_paths(output, quick)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    records = []
    with tempfile.TemporaryDirectory(prefix="cells_") as workdir:
        for dataset in s["datasets"]:
            for name in s["models"]:
                records.append(run_one(dataset, name, s, workdir, log))
                report.write_json(paths["json"], records)
                paths["md"].write_text(markdown(records))
    return records


def main(argv):
    s = experiments.settings_from_flags(
        argv,
        settings,
        FLAGS.quick,
        models=FLAGS.models,
        datasets=FLAGS.datasets,
        epochs=FLAGS.epochs,
        units=FLAGS.units,
        train_examples=FLAGS.train_examples,
        test_examples=FLAGS.test_examples,
        eval_every_steps=FLAGS.eval_every_steps,
        targets={
            "mnist": FLAGS.mnist_target,
            "fashion_mnist": FLAGS.fashion_target,
        },
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        seed=FLAGS.seed,
        deterministic=FLAGS.deterministic,
    )
    records = run(
        s, FLAGS.output, FLAGS.quick, log=lambda line: print(line, flush=True)
    )
    print(markdown(records))
    paths = result_paths(FLAGS.output, FLAGS.quick)
    print(f"wrote {paths['json']} and {paths['md']}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
