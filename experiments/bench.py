"""`python -m experiments.bench`: LSTM-128 on MNIST rows to 98 %: tfrnn, Keras, PyTorch.

    python -m experiments.bench --quick                 # tiny, a minute or two
    python -m experiments.bench                         # the real one, on a quiet machine
    python -m experiments.bench --systems=tfrnn_dynamic --recipes=sweep --seeds=0,1  # the sweep

Each recipe, seed and system trains in a process of its own (`harness.run_all`): tfrnn_dynamic,
tfrnn_static, and `experiments.baselines`: Keras `LSTM` under `fit` (keras_while, keras_unroll,
keras_cudnn on a GPU), PyTorch `nn.LSTM` (torch, if installed). Recipes: `shared` (Keras's stock
Adam 1e-3: compares kernels), `best` (tfrnn's default), the sweep's (`sweep`: all of them).
"""

import math
import statistics
import tempfile
import time
import uuid

from experiments import baselines, harness
from tfrnn.training.clock import Target, first_at_target  # TF-free

NAME = "bench"
TFRNN_SYSTEMS, KERAS_SYSTEMS = harness.TFRNN_SYSTEMS, harness.KERAS_SYSTEMS
SYSTEMS = TFRNN_SYSTEMS + KERAS_SYSTEMS + ("torch",)
# jit_compile: XLA (not PyTorch); deterministic: TF op determinism / torch deterministic algorithms
SHARED_RECIPE = dict(optimizer="adam", learning_rate=1e-3, clip_norm=None, schedule="constant",
                     decay_epochs=3.0, batch_size=128, jit_compile=False, deterministic=False)


# The recipe sweep (results/recipe_sweep.md); "cosine N": to a tenth of the rate over N epochs
SWEEP = {f"adam {rate} clip 1" + f" batch {batch}" * (batch != 128) + f" cosine {decay}" * bool(decay):
         {**SHARED_RECIPE, "learning_rate": float(rate), "clip_norm": 1.0, "batch_size": batch,
          **(dict(schedule="cosine", decay_epochs=float(decay)) if decay else {})}
         for rate, batch, decay in (("5e-3", 128, 0), ("5e-3", 128, 3), ("1e-2", 128, 3),
                                    ("1e-2", 256, 2), ("2e-2", 256, 2), ("2e-2", 512, 2),
                                    ("3e-2", 512, 2), ("3e-2", 1024, 3))}  # fmt: skip
# tfrnn's default recipe (tfrnn.tasks.classify.config.Config; a test keeps them equal), the sweep's
# fastest: `best`, for every system.
TFRNN_RECIPE = SWEEP["adam 1e-2 clip 1 batch 256 cosine 2"]
RECIPES = {"shared": SHARED_RECIPE, "best": TFRNN_RECIPE, **SWEEP}

FULL = dict(systems=list(SYSTEMS), recipes=["shared", "best"], seeds=[0], target=0.98,
            max_epochs=20, units=128, train_examples=None, test_examples=None,
            eval_every_steps=200, timeout_per_system=3600.0)  # fmt: skip
QUICK = dict(target=0.4, max_epochs=3, units=32, train_examples=4096, test_examples=512,
             eval_every_steps=16)  # fmt: skip
HELP = dict(
    systems="Systems: " + ", ".join(SYSTEMS), seeds="Train each recipe and system once per seed",
    recipes="Recipes: shared, best, sweep (all of the sweep's) or one of: " + "; ".join(SWEEP),
    eval_every_steps="Evaluate every N steps of batch 128 (scaled to the recipe's batch: the "
    "same examples between evaluations) and at epoch ends",
)  # fmt: skip
CHOICES = dict(systems=SYSTEMS, recipes=[*RECIPES, "sweep"])
POSITIVE = ("max_epochs", "units", "eval_every_steps", "train_examples", "test_examples")
RESULT_FIELDS = """target_reached best_test_accuracy seconds_to_target train_seconds_to_target
    step_seconds_to_target overhead_seconds_to_target epochs_to_target steps_to_target trace_seconds
    first_step_seconds first_step_total_seconds median_step_ms examples_per_second steps steps_timed
    wall_seconds train_seconds step_seconds eval_seconds peak_memory_bytes kernel xla parameters
    gpu evaluations""".split()


def check(s):
    if not 0 < s["target"] <= 1:
        raise ValueError("--target must be in (0, 1], e.g. 0.98")
    if not s["seeds"]:
        raise ValueError("--seeds: name one or more, e.g. 0,1")


def configs(s, run_id, data):
    """A config per recipe, seed and system, in that order; `data`: the baselines' npz. The
    evaluations come after the same number of examples for every batch size."""
    names = dict.fromkeys(n for r in s["recipes"] for n in (SWEEP if r == "sweep" else [r]))
    keys = ("target", "max_epochs", "units", "train_examples", "test_examples")
    settings = {"dataset": "mnist", "sequence": "rows", "time_steps": 28, "features": 28,
                "num_classes": 10, **{k: s[k] for k in keys}}  # fmt: skip
    every = {n: max(1, round(s["eval_every_steps"] * 128 / RECIPES[n]["batch_size"])) for n in names}
    return [dict(run_id=run_id, system=system, recipe=name, recipe_values=RECIPES[name],
                 settings={**settings, "eval_every_steps": every[name], "seed": seed},
                 target=s["target"], data=data)
            for name in names for seed in s["seeds"] for system in s["systems"]]  # fmt: skip


def measure(config, partial=None):
    """Trains `config["system"]` (in a process of its own); returns RESULT_FIELDS."""
    system, recipe, s = config["system"], config["recipe_values"], config["settings"]
    args = (recipe, s["target"], s["max_epochs"], s["eval_every_steps"], s["seed"], s["units"])
    if system in TFRNN_SYSTEMS:
        import tensorflow as tf

        peak = {}  # read at each evaluation: training and evaluating so far, not the export

        def progress(line):
            if line.startswith(("evaluation at", "target")):
                peak["bytes"] = harness.peak_memory_bytes()
                print(line, flush=True)  # relayed by harness.run_all

        keys = ("max_epochs", "units", "train_examples", "test_examples", "eval_every_steps", "seed")
        result = harness.train_tfrnn(progress, mode=system[6:], cell="lstm", **recipe,
                                     target_accuracy=s["target"], **{k: s[k] for k in keys})
        result["peak_memory_bytes"] = peak.get("bytes", result["peak_memory_bytes"])
        result["gpu"] = bool(tf.config.list_physical_devices("GPU"))
    elif system == "torch":
        result = baselines.train_torch(config["data"], *args)
    else:
        result = baselines.train_keras(config["data"], *args, system=system)
    trace, first = result.get("trace_seconds") or 0.0, result["first_step_seconds"]
    result["first_step_total_seconds"] = None if first is None else trace + first
    if result["train_seconds_to_target"] is not None:
        result["overhead_seconds_to_target"] = (
            result["train_seconds_to_target"] - result["step_seconds_to_target"] - trace)  # fmt: skip
    at = first_at_target(result["evaluations"], Target("test_accuracy", s["target"])) or {}
    best = max((e["test_accuracy"] for e in result["evaluations"]), default=None)
    result.update(steps_to_target=at.get("step"), best_test_accuracy=best)
    return {**{k: result.get(k) for k in RESULT_FIELDS}, "environment": harness.environment()}


def run(s, output, quick, log=print):
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="tfrnn-bench-") as workdir:
        plan = configs(s, run_id, f"{workdir}/data.npz")
        if set(s["systems"]) - set(TFRNN_SYSTEMS):
            baselines.write_data(plan[0]["data"], s["train_examples"], s["test_examples"])
        log(f"benchmark {run_id}: {len(plan)} runs")
        json_path = harness.result_paths(output, NAME, quick)["json"]
        name = lambda c: f"{c['system']} ({c['recipe']}, seed {c['settings']['seed']})"  # noqa: E731
        skip = lambda c: baselines.unavailable(c["system"])  # noqa: E731
        records = harness.run_all(NAME, "experiments.bench:measure", plan, s["timeout_per_system"],
                                  log, json_path, name=name, skip=skip)  # fmt: skip
    return harness.write_results(output, NAME, quick, records, markdown(records, quick) + "\n", log)


# (metric, tfrnn system, other systems: the fastest of them that has a value)
RATIOS = [("median_step_ms", "tfrnn_dynamic", ("keras_while",))]
RATIOS += [("median_step_ms", "tfrnn_static", (o,)) for o in ("keras_while", "keras_unroll")]
RATIOS += [("train_seconds_to_target", tfrnn, KERAS_SYSTEMS) for tfrnn in TFRNN_SYSTEMS]
RATIOS += [(metric, tfrnn, ("torch",)) for metric in ("median_step_ms", "train_seconds_to_target")
           for tfrnn in TFRNN_SYSTEMS]  # fmt: skip
STOCK_RATIOS = RATIOS[3:5]  # tfrnn's `best` against Keras as a user runs it (`shared`)


def ratios(records):
    """tfrnn / other within each recipe and seed (RATIOS), and tfrnn's `best` over the others'
    `shared` (STOCK_RATIOS, "best / shared"); below 1: tfrnn is faster."""
    ok = {}
    for r in records:
        if r["status"] == "ok":
            ok.setdefault((r["recipe"], r["settings"]["seed"]), {})[r["system"]] = r
    seeds = len({seed for _, seed in ok}) > 1
    name = lambda recipe, seed: f"{recipe}, seed {seed}" if seeds else recipe  # noqa: E731
    comparisons = [(name(*key), by, by, RATIOS) for key, by in ok.items()]
    comparisons += [(name("best / shared", seed), by, ok["shared", seed], STOCK_RATIOS)
                    for (recipe, seed), by in ok.items() if recipe == "best" and ("shared", seed) in ok]
    found = []
    for recipe, mine, others, pairs in comparisons:
        for metric, system, against in pairs:
            candidates = [others[o] for o in against if others.get(o, {}).get(metric) is not None]
            if mine.get(system, {}).get(metric) is not None and candidates:
                other = min(candidates, key=lambda r: r[metric])
                value = mine[system][metric] / other[metric]
                found.append(dict(run_id=other["run_id"], recipe=recipe, metric=metric,
                                  numerator=system, denominator=other["system"], value=value))
    return found


def ranking(records):
    """Per system and recipe run with several seeds, fastest first: the median over the seeds
    of the time to target, a seed that did not reach it counting as infinitely slow (inf)."""
    times = {}
    for r in records:
        times.setdefault((r["system"], r["recipe"]), []).append(
            r["train_seconds_to_target"] if r.get("target_reached") else math.inf)
    rows = [dict(system=system, recipe=recipe, reached=f"{sum(t < math.inf for t in ts)}/{len(ts)}",
                 median=statistics.median(ts), seconds=ts)
            for (system, recipe), ts in times.items() if len(ts) > 1]  # fmt: skip
    return sorted(rows, key=lambda row: row["median"])


def result_text(r):
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('error') or r['note']}"
    return f"reached {r['target']}" if r["target_reached"] else (
        f"not reached (best {harness.fmt(r['best_test_accuracy'])})")  # fmt: skip


COLUMNS = ("system", "recipe", "train_seconds_to_target", "first_step_total_seconds",
           ("epochs", "epochs_to_target"), "median_step_ms", "examples_per_second",
           "peak_memory_bytes", "kernel", ("XLA", "xla"), ("result", result_text))  # fmt: skip
RANKING_COLUMNS = ("system", "recipe", "reached", ("median s to target", "median"),
                   ("s to target per seed", lambda row: ", ".join(map(harness.fmt, row["seconds"]))))
RATIO_COLUMNS = ("recipe", ("ratio", lambda f: f"{harness.METRICS[f['metric']].label}: "
                            f"{f['numerator']} / {f['denominator']}"),
                 ("value", lambda f: f"{f['value']:.3f}"))  # fmt: skip
NOTES = (
    "Time to target: training wall clock to the evaluation that reached the target, less "
    "evaluation time; tracing, compiling, the first step, data stalls, checkpoints and per-step "
    "overhead are in it. First step: with its graph trace/compile (tfrnn traces before the step, "
    "Keras inside it). Median step: the steps after the first. Peak memory: GPU peak on a GPU, "
    "else the peak RSS of the system's own process."
)


def describe(records):
    """The run: model, data, schedule, machine, versions and the load."""
    first, env = records[0], records[0]["environment"]
    s, batch = first["settings"], first["recipe_values"]["batch_size"]
    torch = "".join({f", PyTorch {r['environment']['torch']}" for r in records
                     if "torch" in r["environment"]})  # fmt: skip
    loads = ", ".join(harness.fmt(r["environment"].get("load_average", [None])[0])
                      for r in records if r["status"] != "skipped")  # fmt: skip
    return (
        f"LSTM-{s['units']} classifier on MNIST rows (T=28, F=28) to {s['target']} test accuracy; "
        f"{s['train_examples'] or 60000} training / {s['test_examples'] or 10000} test examples, "
        f"at most {s['max_epochs']} epochs, evaluated every {s['eval_every_steps'] * batch:,} training "
        f"examples and at epoch ends. Run {first['run_id']}: {env.get('device')}, TensorFlow "
        f"{env.get('tensorflow')}, Keras {env.get('keras')}, tfrnn {env.get('tfrnn')}{torch}. Load "
        f"average (1 min) after each system: {loads}: other work on the machine makes timings noisy."
    )


def markdown(records, quick=False):
    recipes, ranked = {}, ranking(records)
    for r in records:
        recipes.setdefault(r["recipe"], [r["recipe_values"], {}])[1][r["system"]] = None
    recipes = "; ".join(f"{name} ({', '.join(systems)}): "
                        + ", ".join(f"{k}={v}" for k, v in values.items())
                        for name, (values, systems) in recipes.items())  # fmt: skip
    seeds = len({r["settings"]["seed"] for r in records}) > 1
    columns = COLUMNS[:2] + (("seed", lambda r: r["settings"]["seed"]),) * seeds + COLUMNS[2:]
    return "\n\n".join(
        [f"# tfrnn benchmark{' (quick)' if quick else ''}", describe(records),
         harness.table(records, columns), NOTES, f"Recipes: {recipes}."]
        + ["## Recipes ranked by the median over the seeds of the time to target (inf: a seed did "
           "not reach it)", harness.table(ranked, RANKING_COLUMNS)] * bool(ranked)
        + ["## Ratios, tfrnn / other (this run only; below 1: tfrnn is faster)",
           harness.table(ratios(records), RATIO_COLUMNS)]
    )  # fmt: skip


if __name__ == "__main__":
    harness.main(__import__(__name__))
