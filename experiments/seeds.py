"""`python -m experiments.seeds`: four MNIST-as-a-sequence tutorials, run as written on tfrnn.

    python -m experiments.seeds --quick    # 512 examples, 1 epoch, each recipe (about a minute)
    python -m experiments.seeds            # every recipe as its tutorial ran it, --seeds=0,1,2

Each recipe (`RECIPES`) is the tutorial's model, initialisation, optimizer, batch, pixel
scale, reading order, epochs and evaluation schedule, trained by `tfrnn.training.loop.train`
(the classifier task's `Config`; `--optimizer=adadelta`, `--sequence=columns` and
`--normalize=symmetric` are the CLI's own). Two things are the experiment's, in `RecipeTask`
(the classifier's task with its `build_model` and `loss` overridden): the tutorial's
initialisation, and the TF1 `dynamic_rnn` tutorial's loss, `softmax_cross_entropy_with_logits`
of probabilities (softmax applied twice). The two PyTorch tutorials also run in PyTorch
(`train_torch`, written for this experiment from the tutorials' descriptions, in a process that
loads no TensorFlow; skipped without PyTorch). Each run is a process of its own, one after
another, seed by seed (`harness.run_all`); `--rewrite` remakes the Markdown and plot from the
JSON (of a run stopped early, say).
"""

import os
import pathlib
import time

import numpy as np

from experiments import baselines, harness
from tfrnn.training.clock import Clock, Target  # TF-free

NAME = "seeds"
NEVER = 1.0  # a target accuracy only a perfect evaluation meets: the epochs stop the run
RECIPES = {
    "torch_lstm_columns": dict(
        title="PyTorch, 2-layer LSTM-100, columns, Adadelta 0.1",
        cell="lstm", units=100, layers=2, mode="dynamic", optimizer="adadelta",
        learning_rate=0.1, batch_size=64, normalize="symmetric", sequence="columns",
        epochs=10, eval_every_steps=None, target=NEVER, init="torch", loss="logits",
        printed=[0.5781, 0.9126, 0.9465, 0.9540, 0.9696, 0.9728, 0.9693, 0.9767, 0.9777, 0.9807],
        printed_what="validation accuracy after each epoch, at about 9-10 s per epoch",
    ),
    "torch_rnn_rows": dict(
        title="PyTorch, vanilla RNN-128 (tanh), rows, Adam",
        cell="rnn", units=128, layers=1, mode="dynamic", optimizer="adam",
        learning_rate=1e-3, batch_size=64, normalize="symmetric", sequence="rows",
        epochs=10, eval_every_steps=None, target=NEVER, init="torch", loss="logits",
        printed=[0.9590, 0.9598, 0.9644, 0.9596, 0.9678, 0.9605, 0.9708, 0.9723, 0.9456, 0.9740],
        printed_what="test accuracy after each epoch",
    ),
    "tf1_static_lstm": dict(
        title="TF1 static_rnn, BasicLSTMCell(256), rows, Adam 0.01, to 90 %",
        cell="lstm", units=256, layers=1, mode="static", optimizer="adam",
        learning_rate=1e-2, batch_size=100, normalize="unit", sequence="rows",
        epochs=1, eval_every_steps=10, target=0.90, init="tf1", loss="logits",
        dense_init="normal",
        printed=None, printed_what="evaluated every 10 steps on the whole test set until 90 %",
    ),
    "tf1_dynamic_lstm": dict(
        title="TF1 dynamic_rnn, BasicLSTMCell(100), final_state[1], Adam 1e-4, softmax twice",
        cell="lstm", units=100, layers=1, mode="dynamic", optimizer="adam",
        learning_rate=1e-4, batch_size=50, normalize="unit", sequence="rows",
        epochs=6, eval_every_steps=None, target=NEVER, init="tf1", loss="softmax_twice",
        dense_init="truncated_normal",
        printed=None, printed_what="6 epochs",
    ),
}  # fmt: skip
RECIPES["tf1_dynamic_lstm_one_softmax"] = dict(
    RECIPES["tf1_dynamic_lstm"],
    title="tf1_dynamic_lstm with the quirk removed: one softmax, the usual cross-entropy",
    loss="logits",
    printed_what="none: this experiment's comparison for the quirk",
)
TORCH_RECIPES = ("torch_lstm_columns", "torch_rnn_rows")
SYSTEMS = ("tfrnn", "torch")
FULL = dict(recipes=list(RECIPES), systems=list(SYSTEMS), seeds=[0, 1, 2], epochs=None,
            train_examples=None, test_examples=None, budget=3600, rewrite=False)  # fmt: skip
QUICK = dict(seeds=[0], epochs=1, train_examples=512, test_examples=256, budget=300)
HELP = dict(
    recipes="Recipes: " + ", ".join(RECIPES),
    systems="tfrnn (tfrnn.training.loop), torch (the PyTorch recipes in PyTorch)",
    seeds="Seeds: each recipe and system once per seed",
    epochs="Epochs of every recipe (default: the tutorial's)",
    budget="Seconds one run may take before its process is killed",
    rewrite="Rewrite the Markdown and plot from OUTPUT/seeds.json, training nothing",
)
CHOICES = dict(recipes=list(RECIPES), systems=list(SYSTEMS))
POSITIVE = ("epochs", "train_examples", "test_examples", "budget")


# --- tfrnn: the classifier task, with the tutorial's initialisation and loss -----------------


def initialize(model, recipe, seed):
    """Sets the recurrent and output weights of `model` as the tutorial's framework did.

    init "torch": every weight and bias of nn.LSTM / nn.RNN and nn.Linear ~ U(-1/sqrt(H),
    1/sqrt(H)) (`set_torch_weights`). "tf1": BasicLSTMCell's one kernel over [x; h],
    glorot-uniform over its [F + H, 4H] shape (tfrnn's: glorot over [F, 4H] and an orthogonal
    [H, 4H]), zero bias, forget_bias 1 (tfrnn's default); the output layer as the tutorial's
    `tf.Variable`s (tests/tf1_programs.py, `train_tutorial`), `dense_init` "normal":
    `random_normal` weights and biases (std 1), "truncated_normal": `truncated_normal(stddev=0.1)`
    weights, biases 0.1. "tfrnn": as built."""
    init = recipe["init"]
    if init == "tfrnn":
        return
    rng = np.random.default_rng([seed, 7])
    rnn = model.get_layer("rnn").cell
    for cell in getattr(rnn, "cells", [rnn]):
        (features, width), units = cell.kernel.shape, cell.recurrent_kernel.shape[0]
        if init == "torch":
            draw = lambda *shape: rng.uniform(-1, 1, shape) / np.sqrt(units)  # noqa: E731
            set_torch_weights(cell, draw(width, features), draw(width, units), draw(width),
                              draw(width))  # fmt: skip
        else:
            limit = np.sqrt(6 / (features + units + width))
            cell.kernel.assign(rng.uniform(-limit, limit, cell.kernel.shape))
            cell.recurrent_kernel.assign(rng.uniform(-limit, limit, cell.recurrent_kernel.shape))
            cell.bias.assign(np.zeros(width))
    dense = model.get_layer("classes")
    shape = dense.kernel.shape
    if init == "torch":
        bound = 1 / np.sqrt(shape[0])
        dense.kernel.assign(rng.uniform(-bound, bound, shape))
        dense.bias.assign(rng.uniform(-bound, bound, shape[1]))
    elif recipe["dense_init"] == "normal":
        dense.kernel.assign(rng.normal(size=shape))
        dense.bias.assign(rng.normal(size=shape[1]))
    else:
        weights = rng.normal(size=shape)
        while np.any(np.abs(weights) > 2):  # TF's truncated normal: redrawn beyond 2 std
            weights = np.where(np.abs(weights) > 2, rng.normal(size=shape), weights)
        dense.kernel.assign(0.1 * weights)
        dense.bias.assign(np.full(shape[1], 0.1))


def set_torch_weights(cell, w_ih, w_hh, b_ih, b_hh):
    """One layer of PyTorch's nn.LSTM / nn.RNN (`weight_ih_l0` `[G*H, F]`, ...) into a
    `tfrnn.LSTMCell` or Keras `SimpleRNNCell`: kernel `w_ih^T`, recurrent kernel `w_hh^T`, bias
    `b_ih + b_hh`, less the LSTM's forget_bias on the f gate (tfrnn adds it at run time, PyTorch
    adds none). PyTorch's gates i, f, g, o are tfrnn's i, f, j, o."""
    bias = np.asarray(b_ih) + np.asarray(b_hh)
    if hasattr(cell, "forget_bias"):
        units = cell.recurrent_kernel.shape[0]
        bias[units : 2 * units] -= cell.forget_bias
    cell.kernel.assign(np.transpose(w_ih))
    cell.recurrent_kernel.assign(np.transpose(w_hh))
    cell.bias.assign(bias)


def recipe_task(recipe, seed):
    """The classifier's `Task` class with `recipe`'s initialisation and loss."""
    import keras
    import tensorflow as tf

    from tfrnn.tasks.classify import task

    class RecipeTask(task.Task):
        def build_model(self):
            model = super().build_model()
            initialize(model, recipe, seed)
            return model

        def loss(self, model, indices):
            """"softmax_twice": the cross-entropy of softmax(probabilities), as
            `softmax_cross_entropy_with_logits(logits=tf.nn.softmax(z))`."""
            if recipe["loss"] != "softmax_twice":
                return super().loss(model, indices)
            x, y = tf.gather(self.x_train, indices), tf.gather(self.y_train, indices)
            probabilities = model(x, training=True)
            # A new tensor: Keras's loss reads z back from the softmax's output
            # (`_keras_logits`), which would undo the quirk.
            as_logits = tf.identity(probabilities)
            per_example = keras.losses.sparse_categorical_crossentropy(
                y, as_logits, from_logits=True)  # fmt: skip
            correct = tf.reduce_sum(tf.cast(tf.argmax(probabilities, -1) == y, tf.float32))
            return tf.reduce_sum(per_example), {"accuracy": correct}

    return RecipeTask


def train_tfrnn(c, partial):
    """`harness.train_tfrnn` (the loop in a scratch run directory) with `recipe_task` as the
    task `tfrnn.tasks.task_for` gives the loop."""
    from unittest import mock

    from tfrnn import tasks

    recipe = RECIPES[c["recipe"]]
    eval_every = recipe["eval_every_steps"] or 10**9  # None: at epoch ends only
    config = dict(
        mode=recipe["mode"], cell=recipe["cell"], units=recipe["units"], layers=recipe["layers"],
        optimizer=recipe["optimizer"], learning_rate=recipe["learning_rate"], clip_norm=0.0,
        schedule="constant", batch_size=recipe["batch_size"], normalize=recipe["normalize"],
        sequence=recipe["sequence"], max_epochs=c["epochs"], target_accuracy=recipe["target"],
        eval_every_steps=eval_every, checkpoint_every_steps=10**9, log_every_steps=10**9,
        train_examples=c["train_examples"], test_examples=c["test_examples"], seed=c["seed"],
    )  # fmt: skip
    task_class = recipe_task(recipe, c["seed"])
    with mock.patch.object(tasks, "task_for", task_class):
        run = harness.train_tfrnn(**config)
    keep = ("evaluations", "parameters", "median_step_ms", "trace_seconds", "train_seconds",
            "step_seconds", "eval_seconds", "best_test_accuracy", "final_test_accuracy",
            "environment")  # fmt: skip
    return {k: run.get(k) for k in keep}


# --- PyTorch: the two PyTorch tutorials ---------------------------------------------------


def torch_model(recipe):
    """nn.LSTM(28, 100, num_layers=2) read time-major (`x.permute(2, 0, 1)` of [N, 28, 28]:
    columns), or nn.RNN(28, 128, batch_first=True) over rows; nn.Linear on the last output."""
    import torch

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            layer = torch.nn.LSTM if recipe["cell"] == "lstm" else torch.nn.RNN
            self.columns = recipe["sequence"] == "columns"
            self.rnn = layer(28, recipe["units"], num_layers=recipe["layers"],
                             batch_first=not self.columns)  # fmt: skip
            self.dense = torch.nn.Linear(recipe["units"], 10)

        def forward(self, images):  # [N, 28, 28], row-major
            if self.columns:
                return self.dense(self.rnn(images.permute(2, 0, 1))[0][-1])
            return self.dense(self.rnn(images)[0][:, -1])

    return Model()


def train_torch(c, partial):
    """A PyTorch recipe as its tutorial wrote it: torchvision's ToTensor + Normalize((0.5,),
    (0.5,)) on the uint8 images, a shuffled DataLoader of `batch_size` (last batch kept),
    nn.CrossEntropyLoss on logits, torch.optim.Adadelta(lr=0.1) or Adam() with PyTorch's
    defaults, the test set evaluated after each epoch, all timed by tfrnn's `Clock`."""
    import torch

    recipe = RECIPES[c["recipe"]]
    torch.manual_seed(c["seed"])
    # One thread per op, as tfrnn's default --intra_op_threads=1: on the shared 2 cores two
    # threads took the LSTM's step from 47 to 172 ms (load average 3).
    torch.set_num_threads(1)
    arrays = np.load(c["data"])
    x_train, x_test = ((torch.as_tensor(arrays[k]).float() / 255 - 0.5) / 0.5
                       for k in ("x_train", "x_test"))  # fmt: skip
    y_train, y_test = (torch.as_tensor(arrays[k]).long() for k in ("y_train", "y_test"))
    model = torch_model(recipe)
    optimizer = {"adadelta": torch.optim.Adadelta, "adam": torch.optim.Adam}[recipe["optimizer"]](
        model.parameters(), lr=recipe["learning_rate"])  # fmt: skip
    batch = recipe["batch_size"]
    steps_per_epoch = -(-len(x_train) // batch)
    clock = Clock(Target("test_accuracy", NEVER), 10**9, steps_per_epoch, print)
    clock.begin()
    for _ in range(c["epochs"]):
        model.train()
        order = torch.randperm(len(x_train))
        for step in range(steps_per_epoch):
            started = time.perf_counter()
            indices = order[step * batch : (step + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(x_train[indices]), y_train[indices])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if clock.stepped(time.perf_counter() - started):
                started = time.perf_counter()
                model.eval()
                with torch.no_grad():
                    predicted = torch.cat([model(x_test[i : i + 1000]).argmax(-1)
                                           for i in range(0, len(x_test), 1000)])  # fmt: skip
                accuracy = float((predicted == y_test).double().mean())
                clock.evaluated({"test_accuracy": accuracy}, time.perf_counter() - started)
                model.train()
        partial({"evaluations": clock.evaluations})
    result = clock.result(batch)
    keep = ("evaluations", "median_step_ms", "train_seconds", "step_seconds", "eval_seconds")
    return {k: result[k] for k in keep} | {
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "best_test_accuracy": max(e["test_accuracy"] for e in clock.evaluations),
        "final_test_accuracy": clock.evaluations[-1]["test_accuracy"],
    }  # fmt: skip


def write_images(path, train_examples, test_examples):
    """MNIST's uint8 images and labels as the npz `path`, for the PyTorch worker."""
    from tfrnn.tasks.classify import data

    a = data.load_arrays("mnist")
    np.savez(path, x_train=a.x_train[:train_examples], y_train=a.y_train[:train_examples],
             x_test=a.x_test[:test_examples], y_test=a.y_test[:test_examples])  # fmt: skip


def measure(c, partial):
    """One run (in its own process): `train_tfrnn` or `train_torch`, with the machine's
    1/5/15-minute load averages before and after (the machine is shared)."""
    partial({"load_average_before": list(os.getloadavg())})
    values = {"tfrnn": train_tfrnn, "torch": train_torch}[c["system"]](c, partial)
    return values | {"load_average_after": list(os.getloadavg())}


# --- the runs, the tables, the plot ----------------------------------------------------------


def plan(s, data_path):
    """One run per seed, recipe and system, seed by seed (seed 0 of every recipe first)."""
    runs = []
    for seed in s["seeds"]:
        for recipe in s["recipes"]:
            for system in s["systems"]:
                if system == "torch" and recipe not in TORCH_RECIPES:
                    continue
                epochs = s["epochs"] or RECIPES[recipe]["epochs"]
                runs.append(dict(recipe=recipe, system=system, seed=seed, epochs=epochs,
                                 train_examples=s["train_examples"],
                                 test_examples=s["test_examples"], data=data_path))  # fmt: skip
    return runs


def run(s, output, quick, log=print):
    paths = harness.result_paths(output, NAME, quick, "json", "md", "png")
    if s["rewrite"]:
        import json

        if not paths["json"].exists():
            raise SystemExit(f"error: --rewrite reads {paths['json']}, which does not exist: "
                             "run the experiment first, or name its --output")  # fmt: skip
        records = json.loads(paths["json"].read_text())
    else:
        data_path = pathlib.Path(output) / f".{NAME}-images.npz"
        data_path.parent.mkdir(parents=True, exist_ok=True)
        if "torch" in s["systems"]:
            write_images(data_path, s["train_examples"], s["test_examples"])
        runs = plan(s, str(data_path))
        log(f"{len(runs)} runs, one process each, one at a time")
        name = lambda c: f"{c['recipe']} {c['system']} seed {c['seed']}"  # noqa: E731
        try:
            records = harness.run_all(
                NAME, f"experiments.{NAME}:measure", runs, s["budget"], log, paths["json"],
                name=name, skip=lambda c: baselines.unavailable(c["system"]))  # fmt: skip
        finally:
            data_path.unlink(missing_ok=True)
    plot(paths["png"], records)
    text = markdown(records, paths["png"])
    return {**harness.write_results(output, NAME, quick, records, text, log), "png": paths["png"]}


def curves(records, recipe, system):
    """`{seed: evaluations}` of the ok runs of `recipe` on `system`."""
    return {r["seed"]: r["evaluations"] for r in records if r["recipe"] == recipe
            and r["system"] == system and r.get("evaluations")}  # fmt: skip


def recipe_table(records, recipe):
    """One row per evaluation (by epoch: PyTorch's epochs have one step more, its last batch
    partial): the tutorial's figure, tfrnn's and PyTorch's per seed, and the training seconds
    since the row before (the first seed's; evaluations excluded)."""
    printed = RECIPES[recipe]["printed"] or []
    runs = {system: curves(records, recipe, system) for system in SYSTEMS}
    at = {(system, seed): {e["epoch"]: e for e in ev}
          for system, seeds in runs.items() for seed, ev in seeds.items()}  # fmt: skip
    first = {system: min(seeds) for system, seeds in runs.items() if seeds}
    columns = [("epoch", lambda row: row["epoch"])]
    if RECIPES[recipe]["eval_every_steps"]:
        columns.append(("step", lambda row: row["step"]))
    if printed:
        columns.append(("tutorial", lambda row: row.get("printed")))
    for key in at:
        columns.append((f"{key[0]} seed {key[1]}", lambda row, k=key: row.get(k)))
    for system, seed in first.items():
        columns.append((f"{system} s (seed {seed})", lambda row, k=system: row.get(k)))
    rows, before = [], {}
    for epoch in sorted({epoch for evaluations in at.values() for epoch in evaluations}):
        row = {"epoch": epoch}
        for key, evaluations in at.items():
            record = evaluations.get(epoch)
            if record is None:
                continue
            row["step"], row[key] = record["step"], record["test_accuracy"]
            if key[1] == first[key[0]]:
                row[key[0]] = record["train_seconds"] - before.get(key[0], 0.0)
                before[key[0]] = record["train_seconds"]
        if float(epoch).is_integer() and 1 <= epoch <= len(printed):
            row["printed"] = printed[int(epoch) - 1]
        rows.append(row)
    return harness.table(rows, columns)


def verdict(records, recipe):
    """The last evaluation of each system (mean and range over seeds) against the tutorial's,
    then `against_tutorial`."""
    printed = RECIPES[recipe]["printed"]
    parts = []
    for system in SYSTEMS:
        runs = curves(records, recipe, system)
        if not runs:
            continue
        finals = [ev[-1]["test_accuracy"] for ev in runs.values()]
        where = ", ".join(sorted({f"step {ev[-1]['step']} (epoch {ev[-1]['epoch']:g})"
                                  for ev in runs.values()}))  # fmt: skip
        parts.append(f"{system} {np.mean(finals):.4f} (seeds {min(finals):.4f}-{max(finals):.4f}, "
                     f"{len(finals)} seed(s); at {where})")  # fmt: skip
    if not parts:
        return "not measured."
    head = f"tutorial {printed[-1]:.4f}; " if printed else "the issue gives no printed figure; "
    return head + "; ".join(parts) + ". " + against_tutorial(records, recipe)


def against_tutorial(records, recipe):
    """From epoch 2 on: the largest gap between each system's mean over seeds and the
    tutorial's figure, and the largest seed-to-seed range at one epoch; tfrnn's curve is
    within the noise when its gap is no larger than PyTorch's own gap or either range."""
    printed = RECIPES[recipe]["printed"]
    if not printed:
        return ""
    gap, spread = {}, {}
    for system in SYSTEMS:
        runs = curves(records, recipe, system).values()
        by_epoch = [[e["test_accuracy"] for ev in runs for e in ev if e["epoch"] == epoch]
                    for epoch in range(2, len(printed) + 1)]  # fmt: skip
        by_epoch = [(epoch, a) for epoch, a in enumerate(by_epoch, 2) if a]
        if by_epoch:
            gap[system] = max(abs(np.mean(a) - printed[epoch - 1]) for epoch, a in by_epoch)
            spread[system] = max(max(a) - min(a) for _, a in by_epoch)
    if "tfrnn" not in gap:
        return ""
    text = "From epoch 2 on, the largest gap to the tutorial's figure (mean over seeds): " + ", ".join(
        f"{system} {value:.4f}" for system, value in gap.items())  # fmt: skip
    text += "; the largest range between seeds at one epoch: " + ", ".join(
        f"{system} {value:.4f}" for system, value in spread.items())  # fmt: skip
    if len(curves(records, recipe, "tfrnn")) < 2:
        return text + ". One seed of tfrnn: no run-to-run noise measured, no verdict."
    noise = max([spread[s] for s in spread] + [gap.get("torch", 0.0)])
    within = gap["tfrnn"] <= noise
    text += (f". **tfrnn's curve is {'within' if within else 'outside'} the run-to-run noise**"
             f" (its gap {gap['tfrnn']:.4f} against {noise:.4f}).")  # fmt: skip
    return text + " " + against_torch(records, recipe)


def against_torch(records, recipe):
    """tfrnn's mean over seeds against PyTorch's, epoch by epoch: within the noise where the
    difference is no larger than the wider of the two systems' ranges between seeds."""
    runs = {system: curves(records, recipe, system).values() for system in SYSTEMS}
    if len(runs["tfrnn"]) < 2 or len(runs["torch"]) < 2:
        return ""
    epochs = sorted({e["epoch"] for ev in runs["tfrnn"] for e in ev})
    within, largest = 0, 0.0
    for epoch in epochs:
        a = {system: [e["test_accuracy"] for ev in ev_list for e in ev if e["epoch"] == epoch]
             for system, ev_list in runs.items()}  # fmt: skip
        difference = abs(np.mean(a["tfrnn"]) - np.mean(a["torch"]))
        largest = max(largest, difference)
        within += difference <= max(max(v) - min(v) for v in a.values())
    return (f"tfrnn against PyTorch (both run here): the means differ by at most {largest:.4f}, "
            f"within the seeds' range at {within} of {len(epochs)} epochs.")


def markdown(records, png):
    loads = [r["load_average_before"][0] for r in records if r.get("load_average_before")]
    loads += [r["load_average_after"][0] for r in records if r.get("load_average_after")]
    failed = [f"{r['recipe']} {r['system']} seed {r['seed']}: {r['status']} ({r['note']})"
              for r in records if r["status"] != "ok"]  # fmt: skip
    notes = [
        "Each tutorial's recipe as it wrote it, trained by `tfrnn.training.loop.train` "
        "(`experiments/seeds.py`; initialisations and the softmax-twice loss: its `initialize` "
        "and `RecipeTask`); the PyTorch tutorials also in PyTorch. Test accuracy; the seconds "
        "columns are training seconds since the row before (evaluations excluded), measured on "
        "a 2-core CPU shared with other work, **under load**: the 1-minute load average "
        f"before and after each run was {min(loads, default=0):.2f}-{max(loads, default=0):.2f} "
        "(each record has its `load_average_before` and `_after`, 1/5/15 minutes). PyTorch "
        "runs one thread per op, as tfrnn's default `--intra_op_threads=1`.",
        f"![curves]({png.name})",
    ]
    if failed:
        notes.append("Not measured: " + "; ".join(failed) + ".")
    commits = {}  # records merged from more than one run (`measured_at`, set by hand)
    for r in records:
        if r.get("measured_at") and r["recipe"] not in commits.setdefault(r["measured_at"], []):
            commits[r["measured_at"]].append(r["recipe"])
    if commits:
        notes.append("Measured at: " + "; ".join(
            f"{', '.join(recipes)}: {at}" for at, recipes in commits.items()) + ".")  # fmt: skip
    text = harness.header("The tutorials' own tables on tfrnn", records, *notes)
    for recipe, spec in RECIPES.items():
        if not any(r["recipe"] == recipe for r in records):
            continue
        dense = f" (output layer: {spec['dense_init']})" if spec.get("dense_init") else ""
        text += (f"## {recipe}: {spec['title']}\n\nTutorial: {spec['printed_what']}. Batch "
                 f"{spec['batch_size']}, {spec['normalize']} pixels, {spec['sequence']}, "
                 f"{spec['mode']} on tfrnn, initialisation {spec['init']}{dense}, loss "
                 f"{spec['loss']}.\n\n{recipe_table(records, recipe)}\n\n"
                 f"**Last evaluation**: {verdict(records, recipe)}\n\n")  # fmt: skip
    return text


def plot(path, records):
    """A panel per recipe: test accuracy by epoch, a line per system and seed, the tutorial's
    printed figures dashed."""
    series, colors = [], {"tfrnn": "C0", "torch": "C1"}
    for recipe, spec in RECIPES.items():
        if spec["printed"]:
            points = [{"x": i + 1, recipe: a} for i, a in enumerate(spec["printed"])]
            series.append(("tutorial (printed)", points, {"color": "black", "linestyle": "--"}))
        for system in SYSTEMS:
            for seed, evaluations in curves(records, recipe, system).items():
                points = [{"x": e["epoch"], recipe: e["test_accuracy"]} for e in evaluations]
                style = {"color": colors[system], "alpha": 1.0 / (1 + seed)}
                series.append((f"{system} seed {seed}", points, style))
    panels = [r for r in RECIPES if any(r in p for _, points, _ in series for p in points)]
    if panels:
        harness.plot(path, panels, series, "MNIST tutorials' recipes: test accuracy by epoch",
                     "epoch", xscale="linear", yscale="linear")  # fmt: skip


if __name__ == "__main__":
    harness.main(__import__(__name__))
