"""`python -m experiments.bench`: LSTM-128 on MNIST rows to 98 %: tfrnn, Keras, PyTorch.

    python -m experiments.bench --quick                 # tiny, a minute or two
    python -m experiments.bench                         # the real one, on a quiet machine
    python -m experiments.bench --systems=tfrnn_dynamic,keras_while --recipes=shared
    python -m experiments.bench --sweep                 # the recipe sweep (SWEEP_RECIPES)

Each system and recipe trains in a process of its own (`harness.isolated`),
one after the other: tfrnn_dynamic, tfrnn_static (`tfrnn.loop.train`),
keras_while, keras_unroll (`keras.layers.LSTM(unroll=False / True)` under
`fit`), keras_cudnn (a GPU only), torch (`nn.LSTM`, if installed). Recipes:
`shared` (SHARED_RECIPE for all: compares kernels) and `best` (TFRNN_RECIPE,
tfrnn's default, for all). Writes `bench[-quick].json`
(every key of RECORD_FIELDS per record) and `.md` (the table, then the ratios
tfrnn / other of this run only). Time to target (`train_seconds_to_target`):
training wall clock to the evaluation that reached it, less evaluations only.
"""

import datetime
import importlib.util
import math
import pathlib
import statistics
import tempfile
import types
import uuid

from experiments import harness

NAME = "bench"
TFRNN_SYSTEMS, KERAS_SYSTEMS = harness.TFRNN_SYSTEMS, harness.KERAS_SYSTEMS
SYSTEMS = TFRNN_SYSTEMS + KERAS_SYSTEMS + ("torch",)
RECIPES = ("shared", "best")
SHARED_RECIPE = {
    "optimizer": "adam",  # adam, sgd or rmsprop
    "learning_rate": 1e-3,
    "clip_norm": None,  # clip gradients to this global norm
    "schedule": "constant",  # or "cosine": decay to a tenth over decay_epochs
    "decay_epochs": 3.0,
    "batch_size": 128,
    "jit_compile": False,  # XLA (tfrnn, Keras; PyTorch ignores it)
    "deterministic": False,  # TF op determinism / torch deterministic algorithms
}


def _sweep_recipe(learning_rate, batch_size=128, schedule="constant", decay_epochs=3.0):
    return {
        **SHARED_RECIPE, "learning_rate": learning_rate, "clip_norm": 1.0,
        "batch_size": batch_size, "schedule": schedule, "decay_epochs": decay_epochs,
    }  # fmt: skip


# tfrnn's default recipe (tfrnn.config.Config; a test keeps them equal), the
# fastest of the sweep (results/recipe_sweep.md): `best`, for every system.
TFRNN_RECIPE = _sweep_recipe(1e-2, 256, "cosine", 2.0)
SWEEP_RECIPES = {  # "cosine N": the rate decays to a tenth over N epochs
    "adam 5e-3 clip 1": _sweep_recipe(5e-3),
    "adam 5e-3 clip 1 cosine 3": _sweep_recipe(5e-3, schedule="cosine"),
    "adam 1e-2 clip 1 cosine 3": _sweep_recipe(1e-2, schedule="cosine"),
    "adam 1e-2 clip 1 batch 256 cosine 2": TFRNN_RECIPE,
    "adam 2e-2 clip 1 batch 256 cosine 2": _sweep_recipe(2e-2, 256, "cosine", 2.0),
    "adam 2e-2 clip 1 batch 512 cosine 2": _sweep_recipe(2e-2, 512, "cosine", 2.0),
    "adam 3e-2 clip 1 batch 512 cosine 2": _sweep_recipe(3e-2, 512, "cosine", 2.0),
    "adam 3e-2 clip 1 batch 1024 cosine 3": _sweep_recipe(3e-2, 1024, "cosine"),
}

TRAINING = ("target", "max_epochs", "units", "train_examples", "test_examples")
TRAINING += ("eval_every_steps", "seed")
FULL = dict(
    systems=list(SYSTEMS), recipes=list(RECIPES), target=0.98, max_epochs=20,
    units=128, train_examples=None, test_examples=None, eval_every_steps=200,
    seed=0, sweep=False, sweep_recipes=list(SWEEP_RECIPES), seeds=[0, 1],
    timeout_per_system=3600.0,
)  # fmt: skip
QUICK = dict(target=0.4, max_epochs=3, units=32, train_examples=4096)
QUICK.update(test_examples=512, eval_every_steps=16)
HELP = dict(
    systems="Systems: " + ", ".join(SYSTEMS),
    recipes="Recipes: shared, best",
    eval_every_steps="Evaluate every N steps of batch 128 (scaled to the recipe's "
    "batch: the same examples between evaluations) and at epoch ends",
    sweep="Run the recipe sweep instead: tfrnn_dynamic under each sweep recipe and seed",
    sweep_recipes="The sweep's recipes: " + "; ".join(SWEEP_RECIPES),
    timeout_per_system="Kill a system's process after this many seconds",
)
RESULT_FIELDS = (
    "target_reached", "best_test_accuracy", "seconds_to_target",
    "train_seconds_to_target", "step_seconds_to_target", "overhead_seconds_to_target",
    "epochs_to_target", "steps_to_target", "trace_seconds", "first_step_seconds",
    "first_step_total_seconds", "median_step_ms", "examples_per_second", "steps",
    "steps_timed", "wall_seconds", "train_seconds", "step_seconds", "eval_seconds",
    "peak_memory_bytes", "kernel", "xla", "parameters", "gpu", "evaluations",
    "process_seconds", "extra",
)  # fmt: skip
RECORD_FIELDS = ("experiment", "run_id", "system", "recipe", "recipe_values")
RECORD_FIELDS += ("status", "error", "note", "environment", "settings", "target")
RECORD_FIELDS += RESULT_FIELDS


CHOICES = dict(systems=SYSTEMS, recipes=RECIPES, sweep_recipes=list(SWEEP_RECIPES))
POSITIVE = ("max_epochs", "units", "eval_every_steps", "train_examples", "test_examples")


def check(s):
    if not 0 < s["target"] <= 1:
        raise ValueError("--target must be in (0, 1], e.g. 0.98")


def training_settings(s, recipe_values):
    """The record's `settings`: `eval_every_steps` scaled from batch 128 to the
    recipe's, so that evaluations come after the same number of examples."""
    every = s["eval_every_steps"] * SHARED_RECIPE["batch_size"] / recipe_values["batch_size"]
    values = {key: s[key] for key in TRAINING}
    return {"dataset": "mnist", "sequence": "rows", "time_steps": 28, "features": 28,
            "num_classes": 10, **values, "eval_every_steps": max(1, round(every))}


def new_record(run_id, system, recipe, s):
    values = dict({"shared": SHARED_RECIPE, "best": TFRNN_RECIPE, **SWEEP_RECIPES}[recipe])
    config = dict(run_id=run_id, system=system, recipe=recipe, recipe_values=values)
    config.update(settings=training_settings(s, values), target=s["target"])
    record = harness.Record(NAME, config, status=None, environment=None).flat()
    return {**dict.fromkeys(RECORD_FIELDS), **record, "target_reached": False,
            "evaluations": [], "extra": {}}  # fmt: skip


# --- one system, in its own process (harness.isolated -> measure) -------------


def measure(record, partial=None):
    """Trains `record["system"]` as the record says; returns its result fields."""
    system, recipe, s = record["system"], record["recipe_values"], record["settings"]
    log = lambda line: print(line, flush=True)  # noqa: E731 (relayed by the parent)
    if system in TFRNN_SYSTEMS:
        result = _tfrnn(system.split("_")[1], recipe, s, log)
    else:
        from experiments import baselines

        data = _load_data(record["workdir"])
        args = (recipe, s["target"], s["max_epochs"], s["eval_every_steps"], s["seed"])
        if system == "torch":
            result = baselines.train_torch(data, *args, s["units"], log=log)
        else:
            import keras
            import tensorflow as tf

            keras.utils.set_random_seed(s["seed"])
            if recipe["deterministic"]:
                tf.config.experimental.enable_op_determinism()
            model = harness.build_model(system, "lstm", s["units"])
            result = baselines.train_keras(model, data, *args, log=log)
    return _derived(result, s["target"])


def _derived(result, target):
    """The fields computed the same way for every system."""
    trace, first = result.get("trace_seconds") or 0.0, result.get("first_step_seconds")
    result["first_step_total_seconds"] = None if first is None else trace + first
    if result.get("train_seconds_to_target") is not None:
        result["overhead_seconds_to_target"] = (
            result["train_seconds_to_target"] - result["step_seconds_to_target"] - trace
        )
    at = next((e for e in result["evaluations"] if e["test_accuracy"] >= target), {})
    result["steps_to_target"] = at.get("step")
    result["best_test_accuracy"] = max((e["test_accuracy"] for e in result["evaluations"]), default=None)
    return {key: value for key, value in result.items() if key in RESULT_FIELDS}


def _tfrnn(mode, recipe, s, log):
    """`tfrnn.loop.train`, the peak memory read at each evaluation (before export)."""
    import tensorflow as tf

    peak = {}

    def progress(line):
        if line.startswith(("evaluation at", "target")):
            peak["bytes"] = harness.peak_memory_bytes()  # training and evaluating so far
            log(line)

    result = harness.train_tfrnn(
        progress, mode=mode, cell="lstm", target_accuracy=s["target"],
        **{key: s[key] for key in TRAINING if key != "target"}, **recipe,
    )  # fmt: skip
    result["peak_memory_bytes"] = peak.get("bytes", result["peak_memory_bytes"])
    return {**result, "gpu": bool(tf.config.list_physical_devices("GPU"))}


def write_data(s, workdir):
    """MNIST rows for the baselines, as `workdir/data.npz` (no TF needed to read)."""
    import numpy as np

    from tfrnn import data

    arrays, train, test = data.load_arrays("mnist"), s["train_examples"], s["test_examples"]
    np.savez(pathlib.Path(workdir) / "data.npz",
             x_train=data.to_sequences(arrays.x_train[:train], "rows"), y_train=arrays.y_train[:train],
             x_test=data.to_sequences(arrays.x_test[:test], "rows"), y_test=arrays.y_test[:test])


def _load_data(workdir):
    import numpy as np

    with np.load(pathlib.Path(workdir) / "data.npz") as arrays:
        return types.SimpleNamespace(**{name: arrays[name] for name in arrays.files})


# --- the run ------------------------------------------------------------------


def available(system):
    """None when `system` can run here, else why not."""
    if system == "keras_cudnn":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return "no GPU visible to TensorFlow: cuDNN cannot run"
    if system == "torch" and importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (`pip install torch`; never a tfrnn dependency)"
    return None


def run(s, output, quick, log=print):
    """The comparison (or `s["sweep"]`: the recipe sweep); returns the paths written."""
    if s["sweep"]:
        plan = [("tfrnn_dynamic", recipe, {**s, "seed": seed})
                for recipe in s["sweep_recipes"] for seed in s["seeds"]]  # fmt: skip
    else:
        plan = [(system, recipe, s) for recipe in s["recipes"] for system in s["systems"]]
    paths = harness.result_paths(output, "recipe_sweep" if s["sweep"] else NAME, quick)
    records = run_plan(plan, s["timeout_per_system"], log, paths["json"])
    text = sweep_markdown(records, quick) if s["sweep"] else markdown(records, quick)
    paths["md"].write_text(text + "\n")
    log(text)
    return paths


def run_plan(plan, timeout, log, json_path):
    """Runs each `(system, recipe, settings)` of `plan`, its records written to
    `json_path` as they come; returns them."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{now}-{uuid.uuid4().hex[:6]}"
    log(f"benchmark {run_id}: {len(plan)} runs")
    records, data_written = [], None
    with tempfile.TemporaryDirectory(prefix="tfrnn-bench-") as workdir:
        for number, (system, recipe, s) in enumerate(plan, 1):
            name = f"[{number}/{len(plan)}] {system} ({recipe}, seed {s['seed']})"
            record = new_record(run_id, system, recipe, s)
            if available(system):
                record.update(status="skipped", note=available(system))
            else:
                sizes = (s["train_examples"], s["test_examples"])
                if system not in TFRNN_SYSTEMS and sizes != data_written:
                    write_data(s, workdir)
                    data_written = sizes
                log(f"{name}: start")
                record = _isolated(record, workdir, timeout, log)
            record["environment"] = record["environment"] or harness.environment()
            records.append(record)
            harness.write_json(json_path, records)
            log(f"{name}: {result_text(record, progress=True)}")
    return records


def _isolated(record, workdir, timeout, log):
    prefix = f"    {record['system']} ({record['recipe']}): "
    config = {**record, "workdir": workdir}
    result = harness.isolated("experiments.bench:measure", config, timeout,
                              lambda line: log(prefix + line), workdir)  # fmt: skip
    record = {**record, **{k: v for k, v in result.items() if k in RECORD_FIELDS}}
    if result["status"] != "ok":  # failed or over_budget
        record.update(status=result["status"], error=result["note"])
    if record.get("extra") and "torch" in record["extra"]:
        record["environment"] = {**harness.environment(), "torch": record["extra"]["torch"]}
    return record


# --- ratios and tables ----------------------------------------------------------

# (metric, tfrnn system, other systems: the fastest of them that has a value)
RATIOS = (
    ("median_step_ms", "tfrnn_dynamic", ("keras_while",)),
    ("median_step_ms", "tfrnn_static", ("keras_while",)),
    ("median_step_ms", "tfrnn_static", ("keras_unroll",)),
    ("train_seconds_to_target", "tfrnn_dynamic", KERAS_SYSTEMS),
    ("train_seconds_to_target", "tfrnn_static", KERAS_SYSTEMS),
    ("median_step_ms", "tfrnn_dynamic", ("torch",)),
    ("median_step_ms", "tfrnn_static", ("torch",)),
    ("train_seconds_to_target", "tfrnn_dynamic", ("torch",)),
    ("train_seconds_to_target", "tfrnn_static", ("torch",)),
)
# tfrnn's `best` against stock Keras as a user runs it (`shared`: Keras's Adam 1e-3)
STOCK_RATIOS = RATIOS[3:5]


def ratios(records):
    """tfrnn / other from one run's ok records: RATIOS within a recipe,
    STOCK_RATIOS as "best / shared". Below 1: tfrnn is faster."""
    by_recipe = {}
    for r in records:
        if r["status"] == "ok":
            by_recipe.setdefault(r["recipe"], {})[r["system"]] = r
    comparisons = [(recipe, by, by, RATIOS) for recipe, by in by_recipe.items()]
    if {"best", "shared"} <= set(by_recipe):
        comparisons.append(("best / shared", by_recipe["best"], by_recipe["shared"], STOCK_RATIOS))
    found = []
    for recipe, mine, others, pairs in comparisons:
        for metric, system, against in pairs:
            candidates = [others[o] for o in against if (others.get(o) or {}).get(metric) is not None]
            if (mine.get(system) or {}).get(metric) is None or not candidates:
                continue
            other = min(candidates, key=lambda r: r[metric])
            found.append(dict(run_id=other["run_id"], recipe=recipe, metric=metric, numerator=system,
                              denominator=other["system"], value=mine[system][metric] / other[metric]))
    return found


def _ratio_name(f):
    return f"{harness.METRICS[f['metric']].label}: {f['numerator']} / {f['denominator']}"


RATIO_COLUMNS = ("recipe", ("ratio", _ratio_name), ("value", lambda f: f"{f['value']:.3f}"))


def result_text(r, progress=False):
    """How a system's run ended: a table cell, or (`progress`) a line of the log."""
    if r["status"] != "ok":
        return f"{r['status']}: {r['error'] or r['note']}"
    text = f"reached {r['target']}" if r["target_reached"] else (
        f"not reached (best {harness.fmt(r['best_test_accuracy'])})")  # fmt: skip
    if progress and r["target_reached"]:
        text += f" in {harness.fmt(r['train_seconds_to_target'])} s, epoch {r['epochs_to_target']}"
    return text + (f", median step {harness.fmt(r['median_step_ms'])} ms" if progress else "")


COLUMNS = (
    "system", "recipe", "train_seconds_to_target", "first_step_total_seconds",
    ("epochs", lambda r: r["epochs_to_target"]), "median_step_ms",
    ("examples/s", lambda r: r["examples_per_second"] and round(r["examples_per_second"])),
    "peak_memory_bytes", "kernel", ("XLA", lambda r: r["xla"]), ("result", result_text),
)  # fmt: skip


def describe(records):
    """The run: model, data, schedule, machine, versions and the load."""
    first = records[0] if records else None
    if not first:
        return ""
    s, env = first["settings"], first["environment"] or {}
    torch = next((f", PyTorch {r['environment']['torch']}" for r in records
                  if (r["environment"] or {}).get("torch")), "")  # fmt: skip
    loads = ", ".join(harness.fmt((r["environment"] or {}).get("load_average", [None])[0])
                      for r in records if r["status"] != "skipped")  # fmt: skip
    every = s["eval_every_steps"] * first["recipe_values"]["batch_size"]
    return (
        f"LSTM-{s['units']} classifier on MNIST rows (T=28, F=28) to {s['target']} test "
        f"accuracy; {s['train_examples'] or 60000} training / {s['test_examples'] or 10000} "
        f"test examples, at most {s['max_epochs']} epochs, evaluated every {every:,} "
        f"training examples and at epoch ends. Run {first['run_id']}: {env.get('device')}, "
        f"TensorFlow {env.get('tensorflow')}, Keras {env.get('keras')}, tfrnn "
        f"{env.get('tfrnn')}{torch}. Load average (1 min) after each system: {loads}: "
        "other work on the machine makes timings noisy."
    )


def recipes_text(records):
    """`recipe (systems): values` for each distinct recipe in `records`."""
    groups = {}
    for r in records:
        values = ", ".join(f"{k}={v}" for k, v in r["recipe_values"].items())
        groups.setdefault((r["recipe"], values), []).append(r["system"])
    return "; ".join(f"{recipe} ({', '.join(dict.fromkeys(systems))}): {values}"
                     for (recipe, values), systems in groups.items())  # fmt: skip


def markdown(records, quick=False):
    found = ratios(records)
    lines = [f"# tfrnn benchmark{' (quick)' if quick else ''}", "", describe(records), ""]
    lines += [harness.table(records, COLUMNS), ""]
    lines += [
        "Time to target: training wall clock to the evaluation that reached the target, "
        "less evaluation time; tracing, compiling, the first step, data stalls, "
        "checkpoints and per-step overhead are in it. First step: with its graph "
        "trace/compile (tfrnn traces before the step, Keras inside it). Median step: "
        "the steps after the first. Peak memory: GPU peak on a GPU, else the peak RSS "
        "of the system's own process.", "",
        "Recipes: " + recipes_text(records) + ".", "",
        "## Ratios, tfrnn / other (this run only; below 1: tfrnn is faster)", "",
    ]  # fmt: skip
    none = "No ratio: no pair of comparable records in this run."
    return "\n".join(lines + [harness.table(found, RATIO_COLUMNS) if found else none])


def rank_recipes(records):
    """The sweep's recipes, fastest first: the median over seeds of the time to
    target, a seed that did not reach it counting as infinitely slow."""
    by_recipe, ranking = {}, []
    for r in records:
        by_recipe.setdefault(r["recipe"], []).append(r)
    for recipe, runs in by_recipe.items():
        times = [r["train_seconds_to_target"] if r["status"] == "ok" and r["target_reached"]
                 else math.inf for r in runs]  # fmt: skip
        median = statistics.median(times)
        steps = [r["median_step_ms"] for r in runs if r["median_step_ms"]]
        ranking.append({
            "recipe": recipe, "recipe_values": runs[0]["recipe_values"],
            "seeds": [r["settings"]["seed"] for r in runs],
            "reached": sum(t < math.inf for t in times),
            "median_seconds_to_target": None if math.isinf(median) else median,
            "seconds_to_target": [None if math.isinf(t) else t for t in times],
            "epochs_to_target": [r["epochs_to_target"] for r in runs],
            "median_step_ms": statistics.median(steps) if steps else None,
        })  # fmt: skip
    return sorted(ranking, key=lambda row: row["median_seconds_to_target"] or math.inf)


def sweep_markdown(records, quick=False):
    ranking = rank_recipes(records)
    seeds = ", ".join(str(x) for x in (ranking[0]["seeds"] if ranking else []))
    one = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    columns = (
        ("rank", lambda row: ranking.index(row) + 1), ("recipe", lambda row: row["recipe"]),
        ("reached", lambda row: f"{row['reached']}/{len(row['seeds'])}"),
        ("median s to target", lambda row: one(row["median_seconds_to_target"])),
        ("s to target per seed", lambda row: ", ".join(one(t) for t in row["seconds_to_target"])),
        ("epochs per seed", lambda row: ", ".join(harness.fmt(e) for e in row["epochs_to_target"])),
        ("median step ms", lambda row: one(row["median_step_ms"])),
    )  # fmt: skip
    return "\n".join([
        f"# Recipe sweep{' (quick)' if quick else ''}: `python -m experiments.bench --sweep`",
        "", describe(records)[: describe(records).find(" Load average")]
        + f" Seeds {seeds}; ranked by the median over the seeds of the time to target "
        "(a seed that did not reach the target counts as infinitely slow).", "",
        harness.table(ranking, columns), "", "Recipes: " + recipes_text(records) + ".",
    ])  # fmt: skip


if __name__ == "__main__":
    harness.main(__import__(__name__))
