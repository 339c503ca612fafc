"""`python -m experiments.bench`: LSTM-128 on MNIST rows to 98 %: tfrnn, Keras, PyTorch.

    python -m experiments.bench --quick         # tiny configuration, a minute or two
    python -m experiments.bench                 # the real one, on a quiet machine
    python -m experiments.bench --systems=tfrnn_dynamic,keras_while --recipes=shared
    python -m experiments.bench --sweep         # the recipe sweep (SWEEP_RECIPES)

One run trains every system (below) with every recipe, each in a process of
its own (so that peak memory, thread pools and TensorFlow's global settings
belong to one system only), one after the other, and writes
`OUTPUT/bench[-quick].json` (a list of records, one per system and recipe) and
`OUTPUT/bench[-quick].md` (a table, then the ratios tfrnn / Keras and
tfrnn / PyTorch computed from the records of this run only). Step times of
two systems are read minutes apart here; `python -m experiments.steps`
compares the steps alone, in one process, in interleaved rounds.

Systems:
  tfrnn_dynamic, tfrnn_static: `tfrnn.training.train` (mode dynamic / static);
  keras_while, keras_unroll: `keras.layers.LSTM(unroll=False / True,
      use_cudnn=False)` under `model.fit` (the generic kernels: the same work
      as tfrnn's);
  keras_cudnn: `keras.layers.LSTM(use_cudnn=True)`, only when TensorFlow sees
      a GPU;
  torch: `nn.LSTM`, only when PyTorch is installed (never a dependency).
Recipes: `shared` (SHARED_RECIPE for every system: compares kernels) and
`best` (BEST_RECIPES: each system's own best). A system whose best recipe
equals its shared one is not trained twice: its `best` record repeats the
`shared` run's, saying so (`note`, `extra.same_run_as`).

A record (every key is always present; None where it does not apply):
  run_id, system, recipe, recipe_values {optimizer, learning_rate, clip_norm,
  schedule, decay_epochs, batch_size, jit_compile, deterministic}, status ("ok", "failed", "skipped"), error, note,
  environment (tfrnn.report.environment(), plus torch's version for torch and
  load_average: os.getloadavg() when the system ended),
  settings {dataset, sequence, time_steps, features, num_classes, units,
  train_examples, test_examples, target, max_epochs, eval_every_steps, seed},
  target, target_reached, best_test_accuracy,
  seconds_to_target       wall clock from the start of training to the end of
                          the evaluation that reached the target (evaluations in)
  train_seconds_to_target the same less evaluation time, less nothing else
                          (trace, compile, first step, data stalls, checkpoints
                          and per-step overhead all in): "time to target"
  step_seconds_to_target  the sum of the timed steps up to the target
  overhead_seconds_to_target  train - step - trace seconds to target
  epochs_to_target, steps_to_target,
  trace_seconds (tfrnn: tracing before the first step; None where the first
  step traces: Keras), first_step_seconds, first_step_total_seconds (trace +
  first step: compare these), median_step_ms (steps after the first),
  examples_per_second (batch / median step), steps, steps_timed,
  wall_seconds, train_seconds, step_seconds, eval_seconds (the whole run, to
  its last evaluation), peak_memory_bytes (GPU peak on a GPU, else the peak
  RSS of the system's process), kernel, xla, parameters, gpu,
  evaluations [{step, epoch, seconds, train_seconds, step_seconds,
  test_accuracy}], process_seconds (the system's process, imports included),
  extra (system-specific details).
"""

import copy
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import uuid

from absl import app
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]

SYSTEMS = (
    "tfrnn_dynamic",
    "tfrnn_static",
    "keras_while",
    "keras_unroll",
    "keras_cudnn",
    "torch",
)
TFRNN_SYSTEMS = ("tfrnn_dynamic", "tfrnn_static")
KERAS_SYSTEMS = ("keras_while", "keras_unroll", "keras_cudnn")
RECIPES = ("shared", "best")

# The training recipe. `shared` is used by every system, to compare kernels.
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
        **SHARED_RECIPE,
        "learning_rate": learning_rate,
        "clip_norm": 1.0,
        "batch_size": batch_size,
        "schedule": schedule,
        "decay_epochs": decay_epochs,
    }


# tfrnn's default recipe (tfrnn.training.Config; a test keeps them equal), the
# fastest of the sweep below (experiments/results/recipe_sweep.md).
TFRNN_RECIPE = _sweep_recipe(1e-2, 256, "cosine", 2.0)
# Each system's best recipe. The stock systems get tfrnn's too: only the
# kernels differ then, and they train no worse with it than with the shared one.
BEST_RECIPES = {
    system: dict(TFRNN_RECIPE)
    for system in (
        "tfrnn_dynamic",
        "tfrnn_static",
        "keras_while",
        "keras_unroll",
        "keras_cudnn",
        "torch",
    )
}


# `--sweep`: tfrnn_dynamic to the target under each, to choose the default
# recipe (tfrnn.training.Config); results in experiments/results/recipe_sweep.md.
# "cosine N": the rate decays to a tenth of itself over N epochs. The shared
# recipe (Adam 1e-3, 5-6 epochs to 98 %) is left out: the comparison runs it.
SWEEP_RECIPES = {
    "adam 5e-3 clip 1": _sweep_recipe(5e-3),
    "adam 5e-3 clip 1 cosine 3": _sweep_recipe(5e-3, schedule="cosine"),
    "adam 1e-2 clip 1 cosine 3": _sweep_recipe(1e-2, schedule="cosine"),
    "adam 1e-2 clip 1 batch 256 cosine 2": TFRNN_RECIPE,
    "adam 2e-2 clip 1 batch 256 cosine 2": _sweep_recipe(2e-2, 256, "cosine", 2.0),
    "adam 2e-2 clip 1 batch 512 cosine 2": _sweep_recipe(2e-2, 512, "cosine", 2.0),
    "adam 3e-2 clip 1 batch 512 cosine 2": _sweep_recipe(3e-2, 512, "cosine", 2.0),
    "adam 3e-2 clip 1 batch 1024 cosine 3": _sweep_recipe(3e-2, 1024, "cosine"),
}


@dataclasses.dataclass
class Settings:
    """What every system trains: LSTM-`units` on MNIST rows to `target`."""

    target: float = 0.98
    max_epochs: int = 20
    units: int = 128
    train_examples: int = None  # None: all 60000
    test_examples: int = None  # None: all 10000
    eval_every_steps: int = 200  # at batch 128; see settings_for
    seed: int = 0

    def as_dict(self):
        return {
            "dataset": "mnist",
            "sequence": "rows",
            "time_steps": 28,
            "features": 28,
            "num_classes": 10,
            **dataclasses.asdict(self),
        }


# --quick: values for the flags not given on the command line.
QUICK = {
    "target": 0.4,
    "max_epochs": 3,
    "units": 32,
    "train_examples": 4096,
    "test_examples": 512,
    "eval_every_steps": 16,
}

RESULT_FIELDS = (
    "target_reached",
    "best_test_accuracy",
    "seconds_to_target",
    "train_seconds_to_target",
    "step_seconds_to_target",
    "overhead_seconds_to_target",
    "epochs_to_target",
    "steps_to_target",
    "trace_seconds",
    "first_step_seconds",
    "first_step_total_seconds",
    "median_step_ms",
    "examples_per_second",
    "steps",
    "steps_timed",
    "wall_seconds",
    "train_seconds",
    "step_seconds",
    "eval_seconds",
    "peak_memory_bytes",
    "kernel",
    "xla",
    "parameters",
    "gpu",
    "evaluations",
    "process_seconds",
    "extra",
)
RECORD_FIELDS = (
    "run_id",
    "system",
    "recipe",
    "recipe_values",
    "status",
    "error",
    "note",
    "environment",
    "settings",
    "target",
) + RESULT_FIELDS


def recipe_for(system, recipe):
    """The recipe values `system` trains with under recipe name `recipe`."""
    if recipe == "shared":
        values = SHARED_RECIPE
    elif recipe in SWEEP_RECIPES:
        values = SWEEP_RECIPES[recipe]
    else:
        values = BEST_RECIPES[system]
    if set(values) != set(SHARED_RECIPE):
        raise ValueError(
            f"the recipe {recipe!r} of {system!r} must have exactly the keys "
            f"{sorted(SHARED_RECIPE)}; it has {sorted(values)}"
        )
    return dict(values)


def settings_for(settings, recipe_values):
    """`settings` with `eval_every_steps` scaled from batch 128 to the recipe's.

    Evaluations then come after the same number of examples whatever the
    batch size, so that times to target of different batches are measured
    on the same grid.
    """
    steps = settings.eval_every_steps * SHARED_RECIPE["batch_size"]
    steps = max(1, round(steps / recipe_values["batch_size"]))
    return dataclasses.replace(settings, eval_every_steps=steps)


def new_record(run_id, system, recipe, settings):
    record = dict.fromkeys(RECORD_FIELDS)
    record.update(
        run_id=run_id,
        system=system,
        recipe=recipe,
        recipe_values=recipe_for(system, recipe),
        settings=settings.as_dict(),
        target=settings.target,
        target_reached=False,
        evaluations=[],
        extra={},
    )
    return record


# --- one system, in this process --------------------------------------------


def run_one(record, workdir, log=print):
    """Trains `record["system"]` as the record says; fills in and returns it.

    An exception marks the record failed (with the error) instead of raising.
    """
    started = time.perf_counter()
    settings = Settings(
        **{f.name: record["settings"][f.name] for f in dataclasses.fields(Settings)}
    )
    recipe = record["recipe_values"]
    system = record["system"]
    try:
        if system in TFRNN_SYSTEMS:
            result = _run_tfrnn(system, recipe, settings, workdir, log)
        elif system in KERAS_SYSTEMS:
            result = _run_keras(system, recipe, settings, workdir, log)
        elif system == "torch":
            result = _run_torch(recipe, settings, workdir, log)
        else:
            raise ValueError(f"unknown system {system!r}")
    except Exception as error:  # noqa: BLE001 (a failed system is a result)
        if isinstance(error, ModuleNotFoundError) and error.name == "torch":
            record.update(status="skipped", note=f"PyTorch is not importable ({error})")
            return record
        record.update(
            status="failed",
            error=f"{type(error).__name__}: {error}",
            note=traceback.format_exc(limit=-3),
        )
        return record
    record.update(status="ok", **_derived(result))
    record["process_seconds"] = time.perf_counter() - started
    return record


def _derived(result):
    """Adds the fields computed the same way for every system."""
    trace = result.get("trace_seconds") or 0.0
    first = result.get("first_step_seconds")
    result["first_step_total_seconds"] = None if first is None else trace + first
    if result.get("train_seconds_to_target") is not None:
        result["overhead_seconds_to_target"] = (
            result["train_seconds_to_target"] - result["step_seconds_to_target"] - trace
        )
    accuracies = [e["test_accuracy"] for e in result["evaluations"]]
    result["best_test_accuracy"] = max(accuracies) if accuracies else None
    return {key: value for key, value in result.items() if key in RESULT_FIELDS}


def _run_tfrnn(system, recipe, settings, workdir, log):
    """`tfrnn.training.train`, with the peak memory read before the export."""
    import tensorflow as tf

    from tfrnn import report as report_lib
    from tfrnn import training

    class TimedTrainer(training.Trainer):
        def __init__(self, *args, **kwargs):
            self.peak_memory_bytes = None
            super().__init__(*args, **kwargs)

        def evaluate(self):
            accuracy = super().evaluate()
            # The peak so far: training and evaluating, before export.
            self.peak_memory_bytes = report_lib.peak_memory_bytes()
            return accuracy

    def progress(line):
        if line.startswith(("evaluation at step", "target")):
            log(line)

    mode = system.split("_", 1)[1]
    config = training.Config(
        mode=mode,
        cell="lstm",
        units=settings.units,
        batch_size=recipe["batch_size"],
        optimizer=recipe["optimizer"],
        learning_rate=recipe["learning_rate"],
        clip_norm=recipe["clip_norm"],
        schedule=recipe["schedule"],
        decay_epochs=recipe["decay_epochs"],
        target_accuracy=settings.target,
        max_epochs=settings.max_epochs,
        eval_every_steps=settings.eval_every_steps,
        model_dir=str(pathlib.Path(workdir) / f"model-{system}-{uuid.uuid4().hex[:8]}"),
        seed=settings.seed,
        train_examples=settings.train_examples,
        test_examples=settings.test_examples,
        jit_compile=recipe["jit_compile"],
        deterministic=recipe["deterministic"],
    )
    trainer = TimedTrainer(config, log=progress)
    report = trainer.run()
    timing = report["timing"]
    # tfrnn's evaluation records carry the bench's names: `seconds` (wall),
    # `train_seconds` (wall less evaluations), `step_seconds` (sum of steps).
    evaluations = report["evaluations"]
    last = evaluations[-1] if evaluations else {}
    return {
        **report_lib.target_fields(evaluations, settings.target),
        "steps_to_target": next(
            (e["step"] for e in evaluations if e["test_accuracy"] >= settings.target),
            None,
        ),
        "trace_seconds": timing["trace_seconds"],
        "first_step_seconds": timing["first_step_seconds"],
        "median_step_ms": timing["median_step_ms"],
        "examples_per_second": timing["examples_per_second"],
        "steps": last.get("step"),
        "steps_timed": timing["steps_timed"],
        "wall_seconds": last.get("seconds"),
        "train_seconds": last.get("train_seconds"),
        "step_seconds": timing["step_seconds"],
        "eval_seconds": timing["eval_seconds"],
        "peak_memory_bytes": trainer.peak_memory_bytes or report["peak_memory_bytes"],
        "kernel": report["kernel"],
        "xla": report["xla"],
        "parameters": report["parameters"],
        "gpu": bool(tf.config.list_physical_devices("GPU")),
        "evaluations": evaluations,
        "extra": {
            "tfrnn_report": {
                "timing": timing,
                "train_seconds_to_target": report["train_seconds_to_target"],
                "seconds_to_target": report["seconds_to_target"],
                # ru_maxrss after export; in a process started by a large
                # parent it includes the parent's peak (see baselines).
                "peak_memory_bytes_in_report": report["peak_memory_bytes"],
                "export_seconds": (report["export"] or {}).get("seconds"),
            }
        },
    }


def _load_data(workdir):
    """What `write_data` wrote: x_train, y_train, x_test, y_test."""
    import numpy as np

    with np.load(pathlib.Path(workdir) / "data.npz") as arrays:
        return types.SimpleNamespace(**{name: arrays[name] for name in arrays.files})


def write_data(settings, workdir):
    """MNIST rows for the baselines, as `workdir/data.npz` (no TF needed to read)."""
    import numpy as np

    from tfrnn import data as data_lib

    arrays = data_lib.load_arrays("mnist")
    n_train = settings.train_examples or len(arrays.x_train)
    n_test = settings.test_examples or len(arrays.x_test)
    np.savez(
        pathlib.Path(workdir) / "data.npz",
        x_train=data_lib.to_sequences(arrays.x_train[:n_train], "rows"),
        y_train=arrays.y_train[:n_train],
        x_test=data_lib.to_sequences(arrays.x_test[:n_test], "rows"),
        y_test=arrays.y_test[:n_test],
    )


def _baseline_arguments(recipe, settings, log):
    """The keyword arguments `baselines.train_keras` and `train_torch` share."""
    return {
        **{
            name: recipe[name]
            for name in (
                "batch_size",
                "learning_rate",
                "optimizer",
                "clip_norm",
                "schedule",
                "decay_epochs",
            )
        },
        "target": settings.target,
        "max_epochs": settings.max_epochs,
        "eval_every_steps": settings.eval_every_steps,
        "seed": settings.seed,
        "log": log,
    }


def _run_keras(system, recipe, settings, workdir, log):
    import keras
    import tensorflow as tf

    from experiments import baselines

    keras.utils.set_random_seed(settings.seed)
    if recipe["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    data = _load_data(workdir)
    model = baselines.keras_lstm_classifier(
        settings.units,
        data.x_train.shape[1],
        data.x_train.shape[2],
        10,
        unroll=system == "keras_unroll",
        use_cudnn=system == "keras_cudnn",
    )
    return baselines.train_keras(
        model,
        data,
        **_baseline_arguments(recipe, settings, log),
        jit_compile=recipe["jit_compile"],
    )


def _run_torch(recipe, settings, workdir, log):
    from experiments import baselines

    result = baselines.train_torch(
        _load_data(workdir),
        **_baseline_arguments(recipe, settings, log),
        units=settings.units,
        deterministic=recipe["deterministic"],
    )
    result["extra"] = {
        "torch": result.pop("torch"),
        "torch_threads": result.pop("torch_threads"),
    }
    return result


# --- one system, in a process of its own ------------------------------------


def run_isolated(record, workdir, log=print, timeout=None):
    """`run_one` in a fresh Python process; a crash or timeout is a failed record."""
    name = f"{record['system']}-{record['recipe']}-{uuid.uuid4().hex[:8]}"
    spec_path = pathlib.Path(workdir) / f"{name}.spec.json"
    result_path = pathlib.Path(workdir) / f"{name}.result.json"
    spec_path.write_text(
        json.dumps(
            {"record": record, "workdir": str(workdir), "result": str(result_path)}
        )
    )
    return _spawn_worker(record, spec_path, result_path, log, timeout)


def _spawn_worker(record, spec_path, result_path, log, timeout):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    }
    stderr_path = pathlib.Path(str(result_path) + ".stderr")
    started = time.perf_counter()
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "experiments.bench", f"--worker={spec_path}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            for line in process.stdout:
                log(line.rstrip("\n"))
            returncode = process.wait()
        finally:
            if timer:
                timer.cancel()
    if result_path.exists() and not timed_out.is_set():
        return json.loads(result_path.read_text())
    record = dict(record)
    tail = stderr_path.read_text(errors="replace").strip().splitlines()[-15:]
    if timed_out.is_set():
        error = f"timed out after {timeout:g} s (killed)"
    else:
        error = f"the system's process exited with status {returncode} and no result"
    record.update(
        status="failed",
        error=error,
        note="\n".join(tail) or None,
        process_seconds=time.perf_counter() - started,
    )
    return record


def worker_main(spec_path):
    """The system's process: runs one record's system, writes the result."""
    spec = json.loads(pathlib.Path(spec_path).read_text())
    record = run_one(spec["record"], spec["workdir"], log=print)
    tmp = pathlib.Path(spec["result"] + ".tmp")
    tmp.write_text(json.dumps(record, default=_jsonable))
    os.replace(tmp, spec["result"])


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


# --- the run ------------------------------------------------------------------


def available(system):
    """None when `system` can run here, else why not."""
    if system == "keras_cudnn":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return "no GPU visible to TensorFlow: cuDNN cannot run"
    if system == "torch" and importlib.util.find_spec("torch") is None:
        return (
            "PyTorch is not installed (`pip install torch`; never a tfrnn dependency)"
        )
    return None


def run(
    settings,
    systems=SYSTEMS,
    recipes=RECIPES,
    output="experiments/results",
    quick=False,
    isolate=True,
    timeout=None,
    log=print,
):
    """Runs the benchmark; writes and returns {records, ratios, json, markdown}."""
    plan = [(system, recipe, settings) for recipe in recipes for system in systems]
    run_id, records = run_plan(plan, isolate, timeout, log)
    found = ratios(records, run_id)
    paths = write_results(
        records, to_markdown(records, found, quick), output, _stem("bench", quick), log
    )
    return {"records": records, "ratios": found, **paths}


def sweep(
    settings,
    recipes=None,
    seeds=(0, 1),
    output="experiments/results",
    quick=False,
    isolate=True,
    timeout=None,
    log=print,
):
    """The recipe sweep: tfrnn_dynamic to the target under each recipe and seed.

    `recipes`: names in SWEEP_RECIPES (all by default). Writes
    `recipe_sweep[-quick].{json,md}` (the records, then a table ranked by the
    median time to target over the seeds) and returns {records, ranking,
    json, markdown}.
    """
    recipes = list(recipes or SWEEP_RECIPES)
    plan = [
        ("tfrnn_dynamic", recipe, dataclasses.replace(settings, seed=seed))
        for recipe in recipes
        for seed in seeds
    ]
    _, records = run_plan(plan, isolate, timeout, log)
    ranking = rank_recipes(records)
    paths = write_results(
        records,
        sweep_markdown(records, ranking, quick),
        output,
        _stem("recipe_sweep", quick),
        log,
    )
    return {"records": records, "ranking": ranking, **paths}


def _stem(name, quick):
    return f"{name}-quick" if quick else name


def run_plan(plan, isolate=True, timeout=None, log=print):
    """Runs each `(system, recipe, settings)` of `plan`; returns (run_id, records)."""
    from tfrnn import report as report_lib

    for system, recipe, _ in plan:
        recipe_for(system, recipe)  # refuses a malformed recipe before any run
    run_id = (
        datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        + "-"
        + uuid.uuid4().hex[:6]
    )
    records = []
    several_seeds = len({settings.seed for _, _, settings in plan}) > 1
    first = plan[0][2] if plan else Settings()
    log(
        f"benchmark {run_id}: {len(plan)} runs, LSTM-{first.units} on MNIST rows "
        f"to {first.target} (at most {first.max_epochs} epochs)"
    )
    with tempfile.TemporaryDirectory(prefix="tfrnn-bench-") as workdir:
        data_written = None  # the (train, test) sizes in workdir/data.npz
        done = {}  # (system, recipe values, settings) -> the record of that run
        for number, (system, recipe, settings) in enumerate(plan, 1):
            seed = f", seed {settings.seed}" if several_seeds else ""
            name = f"[{number}/{len(plan)}] {system} ({recipe}{seed})"
            settings = settings_for(settings, recipe_for(system, recipe))
            record = new_record(run_id, system, recipe, settings)
            key = json.dumps(
                [system, record["recipe_values"], record["settings"]], sort_keys=True
            )
            why_not = available(system)
            if why_not:
                record.update(status="skipped", note=why_not)
            elif key in done:
                record = same_run(done[key], recipe)
            else:
                sizes = (settings.train_examples, settings.test_examples)
                if system not in TFRNN_SYSTEMS and sizes != data_written:
                    write_data(settings, workdir)
                    data_written = sizes
                log(f"{name}: start")
                prefix = f"    {system} ({recipe}): "

                def relay(line, prefix=prefix):
                    log(prefix + line)

                if isolate:
                    record = run_isolated(record, workdir, relay, timeout)
                else:
                    record = run_one(record, workdir, relay)
                done[key] = record
            if record["environment"] is None:
                record["environment"] = report_lib.environment()
                torch_version = (record.get("extra") or {}).get("torch")
                if torch_version:
                    record["environment"]["torch"] = torch_version
                if hasattr(os, "getloadavg"):
                    record["environment"]["load_average"] = [
                        round(load, 2) for load in os.getloadavg()
                    ]
            records.append(record)
            log(f"{name}: {outcome(record)}")
    return run_id, records


def write_results(records, markdown, output, stem, log=print):
    """`OUTPUT/STEM.json` (the records) and `OUTPUT/STEM.md`; returns their paths."""
    from tfrnn import report as report_lib

    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output / f"{stem}.json", output / f"{stem}.md"
    report_lib.write_json(json_path, records)
    md_path.write_text(markdown + "\n")
    log(markdown)
    log(f"results: {json_path}, {md_path}")
    return {"json": json_path, "markdown": md_path}


def same_run(earlier, recipe):
    """`earlier`'s measurements for `recipe`, which has the same values: not rerun.

    While BEST_RECIPES holds placeholders equal to SHARED_RECIPE, the `best`
    rows repeat the `shared` runs instead of doubling the benchmark's time.
    """
    record = copy.deepcopy(earlier)
    record["recipe"] = recipe
    record["extra"] = {**(record["extra"] or {}), "same_run_as": earlier["recipe"]}
    said = f"the same recipe as {earlier['recipe']}: its run, not run again"
    record["note"] = f"{said}; {record['note']}" if record["note"] else said
    return record


def outcome(record):
    """One line: how a system's run ended."""
    if record["status"] == "skipped":
        return f"skipped: {record['note']}"
    if record["status"] == "failed":
        return f"FAILED: {record['error']}"
    step = _fmt(record["median_step_ms"])
    if (record["extra"] or {}).get("same_run_as"):
        return record["note"].split(";")[0]
    if record["target_reached"]:
        seconds = _fmt(record["train_seconds_to_target"])
        return (
            f"reached {record['target']} in {seconds} s "
            f"(train wall; {_fmt(record['first_step_total_seconds'])} s first step "
            f"with trace), epoch {record['epochs_to_target']}, median step {step} ms"
        )
    best = _fmt(record["best_test_accuracy"])
    return f"did not reach {record['target']} (best {best}), median step {step} ms"


# --- ratios and the table -------------------------------------------------------

RATIOS = (
    # (metric, tfrnn system, other systems: the fastest of them that has a value)
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
METRIC_NAMES = {
    "median_step_ms": "median step",
    "train_seconds_to_target": "time to target",
}


# tfrnn's recipe (`best`) against stock Keras as a user runs it (`shared`:
# Adam 1e-3 is Keras's default), the "time to 98 % vs stock Keras fit".
STOCK_RATIOS = (
    ("train_seconds_to_target", "tfrnn_dynamic", KERAS_SYSTEMS),
    ("train_seconds_to_target", "tfrnn_static", KERAS_SYSTEMS),
)


def ratios(records, run_id=None):
    """tfrnn / Keras and tfrnn / PyTorch, from the records of one run only.

    `run_id` picks the run; without it the records must all be of one run.
    A ratio needs both records run ok, with the metric (time to target: both
    reached it); against Keras's time to target the fastest Keras system is
    taken. RATIOS compare records of the same recipe; STOCK_RATIOS compare
    tfrnn's `best` records with the others' `shared` ones (recipe
    "best / shared"). Below 1: tfrnn is faster.
    """
    run_ids = {r["run_id"] for r in records}
    if run_id is None:
        if len(run_ids) > 1:
            raise ValueError(
                f"records of {len(run_ids)} runs ({', '.join(sorted(run_ids))}): "
                "ratios compare one run's records only; pass run_id"
            )
        run_id = next(iter(run_ids), None)
    records = [r for r in records if r["run_id"] == run_id and r["status"] == "ok"]
    by_recipe = {}
    for r in records:
        by_recipe.setdefault(r["recipe"], {})[r["system"]] = r
    comparisons = [
        (recipe, systems, systems, RATIOS) for recipe, systems in by_recipe.items()
    ]
    if {"best", "shared"} <= set(by_recipe):
        comparisons.append(
            ("best / shared", by_recipe["best"], by_recipe["shared"], STOCK_RATIOS)
        )
    found = []
    for recipe, mine_by_system, other_by_system, pairs in comparisons:
        for metric, mine, others in pairs:
            numerator = mine_by_system.get(mine)
            candidates = [
                other_by_system[o]
                for o in others
                if o in other_by_system and other_by_system[o][metric] is not None
            ]
            if numerator is None or numerator[metric] is None or not candidates:
                continue
            other = min(candidates, key=lambda r: r[metric])
            found.append(
                {
                    "run_id": run_id,
                    "recipe": recipe,
                    "metric": metric,
                    "numerator": mine,
                    "denominator": other["system"],
                    "value": numerator[metric] / other[metric],
                }
            )
    return found


TABLE_HEADER = (
    "system",
    "recipe",
    "time to target s",
    "first step s (trace, compile)",
    "epochs",
    "median step ms",
    "examples/s",
    "peak memory MiB",
    "kernel",
    "XLA",
    "result",
)


def table_row(record):
    mib = record["peak_memory_bytes"]
    if record["status"] == "ok":
        result = (
            f"reached {record['target']}"
            if record["target_reached"]
            else f"not reached (best {_fmt(record['best_test_accuracy'])})"
        )
        same = (record["extra"] or {}).get("same_run_as")
        if same:
            result += f" (the {same} run: same recipe)"
    elif record["status"] == "failed":
        result = f"failed: {record['error']}"
    else:
        result = f"skipped: {record['note']}"
    cells = (
        record["system"],
        record["recipe"],
        _fmt(record["train_seconds_to_target"]),
        _fmt(record["first_step_total_seconds"]),
        _fmt(record["epochs_to_target"]),
        _fmt(record["median_step_ms"]),
        _fmt(record["examples_per_second"], digits=0),
        _fmt(None if mib is None else mib / 2**20, digits=0),
        _fmt(record["kernel"]),
        _fmt(record["xla"]),
        result,
    )
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def to_markdown(records, found, quick=False):
    first = records[0] if records else None
    lines = [f"# tfrnn benchmark{' (quick)' if quick else ''}", ""]
    if first:
        s, env = first["settings"], first["environment"] or {}
        torch = next(
            (
                f", PyTorch {r['environment']['torch']}"
                for r in records
                if (r["environment"] or {}).get("torch")
            ),
            "",
        )
        loads = ", ".join(
            _fmt((r["environment"] or {}).get("load_average", [None])[0])
            for r in records
            if r["status"] != "skipped" and "same_run_as" not in (r["extra"] or {})
        )
        lines += [
            (
                f"LSTM-{s['units']} classifier on MNIST rows (T={s['time_steps']}, "
                f"F={s['features']}) to {s['target']} test accuracy; "
                f"{s['train_examples'] or 60000} training / "
                f"{s['test_examples'] or 10000} test examples, at most "
                f"{s['max_epochs']} epochs, evaluated every {_eval_examples(first)} "
                f"training examples and at epoch ends. Run {first['run_id']}: "
                f"{env.get('device')}, TensorFlow {env.get('tensorflow')}, "
                f"Keras {env.get('keras')}, tfrnn {env.get('tfrnn')}{torch}. "
                f"Load average (1 min) after each system: {loads}: other work on "
                "the machine makes timings noisy."
            ),
            "",
        ]
    lines += [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
    ]
    lines += [table_row(r) for r in records]
    lines += [
        "",
        (
            "Time to target: training wall clock to the evaluation that reached the "
            "target, less evaluation time; tracing, compiling, the first step, data "
            "stalls, checkpoints and per-step overhead are in it. First step: the "
            "first training step with its graph trace/compile (tfrnn traces before "
            "the step, Keras inside it), already counted in the time to target. "
            "Median step: the steps after the first. Peak memory: GPU peak on a GPU, "
            "else the peak RSS of the system's own process."
        ),
        "",
        "Recipes: " + recipes_text(records) + ".",
        "",
        "## Ratios, tfrnn / other (this run only; below 1: tfrnn is faster)",
        "",
    ]
    if found:
        lines += ["| recipe | ratio | value |", "|---|---|---|"]
        lines += [ratio_row(r) for r in found]
    else:
        lines.append("No ratio: no pair of comparable records in this run.")
    return "\n".join(lines)


def rank_recipes(records):
    """The sweep's recipes, fastest first, with their runs' figures.

    A recipe's time is the median over its seeds of the time to target, a seed
    that did not reach it counting as infinitely slow: a recipe ranks by what
    most of its seeds did, and one that fails half its seeds ranks last.
    """
    by_recipe = {}
    for r in records:
        by_recipe.setdefault(r["recipe"], []).append(r)
    ranking = []
    for recipe, runs in by_recipe.items():
        times = [
            r["train_seconds_to_target"]
            if r["status"] == "ok" and r["target_reached"]
            else math.inf
            for r in runs
        ]
        median = statistics.median(times)
        steps = [r["median_step_ms"] for r in runs if r["median_step_ms"]]
        ranking.append(
            {
                "recipe": recipe,
                "recipe_values": runs[0]["recipe_values"],
                "seeds": [r["settings"]["seed"] for r in runs],
                "reached": sum(t < math.inf for t in times),
                "median_seconds_to_target": None if math.isinf(median) else median,
                "seconds_to_target": [None if math.isinf(t) else t for t in times],
                "epochs_to_target": [r["epochs_to_target"] for r in runs],
                "median_step_ms": statistics.median(steps) if steps else None,
            }
        )
    ranking.sort(key=lambda row: row["median_seconds_to_target"] or math.inf)
    return ranking


def _eval_examples(record):
    """Examples between evaluations: the same for every record of a run."""
    if not record:
        return "-"
    steps = record["settings"]["eval_every_steps"]
    return f"{steps * record['recipe_values']['batch_size']:,}"


def sweep_markdown(records, ranking, quick=False):
    first = records[0] if records else {}
    s, env = first.get("settings") or {}, first.get("environment") or {}
    lines = [
        f"# Recipe sweep{' (quick)' if quick else ''}: "
        "`python -m experiments.bench --sweep`",
        "",
        (
            f"tfrnn dynamic, LSTM-{s.get('units')} on MNIST rows to {s.get('target')} "
            f"test accuracy (at most {s.get('max_epochs')} epochs, evaluated every "
            f"{_eval_examples(first)} training examples and at epoch ends), each "
            "recipe with "
            f"seeds {', '.join(str(x) for x in (ranking[0]['seeds'] if ranking else []))}"
            f"; run {first.get('run_id')} on {env.get('device')}, TensorFlow "
            f"{env.get('tensorflow')}. Ranked by the median over the seeds of the "
            "time to target (training wall less evaluations; a seed that did not "
            "reach the target counts as infinitely slow)."
        ),
        "",
        "| rank | recipe | reached | median s to target | s to target per seed "
        "| epochs per seed | median step ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, row in enumerate(ranking, 1):
        lines.append(
            f"| {number} | {row['recipe']} | {row['reached']}/{len(row['seeds'])} "
            f"| {_fmt(row['median_seconds_to_target'], 1)} "
            f"| {', '.join(_fmt(t, 1) for t in row['seconds_to_target'])} "
            f"| {', '.join(_fmt(e) for e in row['epochs_to_target'])} "
            f"| {_fmt(row['median_step_ms'], 1)} |"
        )
    lines += ["", "Recipes: " + recipes_text(records) + "."]
    return "\n".join(lines)


def ratio_row(ratio):
    name = (
        f"{METRIC_NAMES[ratio['metric']]}: {ratio['numerator']} / "
        f"{ratio['denominator']}"
    )
    return f"| {ratio['recipe']} | {name} | {ratio['value']:.3f} |"


def recipes_text(records):
    """`recipe (systems): values` for each distinct recipe in `records`."""
    groups = {}
    for r in records:
        values = ", ".join(f"{k}={v}" for k, v in r["recipe_values"].items())
        groups.setdefault((r["recipe"], values), []).append(r["system"])
    return "; ".join(
        f"{recipe} ({', '.join(dict.fromkeys(systems))}): {values}"
        for (recipe, values), systems in groups.items()
    )


def _fmt(value, digits=None):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if digits is not None:
            return f"{value:.{digits}f}"
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- the command line -----------------------------------------------------------

FLAGS = flags.FLAGS
_DEFAULTS = Settings()


def define_flags():
    flags.DEFINE_bool(
        "quick",
        False,
        "Tiny configuration (a minute or two): "
        + ", ".join(f"{k}={v}" for k, v in QUICK.items())
        + " unless given; writes bench-quick.json/.md.",
    )
    flags.DEFINE_bool(
        "sweep",
        False,
        "Instead of comparing systems, run the recipe sweep: tfrnn_dynamic under "
        "each recipe of --sweep_recipes and seed of --seeds; writes "
        "recipe_sweep[-quick].json/.md.",
    )
    flags.DEFINE_list(
        "sweep_recipes",
        list(SWEEP_RECIPES),
        "The sweep's recipes, by name: " + "; ".join(SWEEP_RECIPES) + ".",
    )
    flags.DEFINE_list("seeds", ["0", "1"], "The sweep's seeds.")
    flags.DEFINE_list("systems", list(SYSTEMS), f"Systems: {', '.join(SYSTEMS)}.")
    flags.DEFINE_list("recipes", list(RECIPES), f"Recipes: {', '.join(RECIPES)}.")
    flags.DEFINE_float("target", _DEFAULTS.target, "Target test accuracy, in (0, 1].")
    flags.DEFINE_integer(
        "max_epochs", _DEFAULTS.max_epochs, "Stop after this many epochs."
    )
    flags.DEFINE_integer("units", _DEFAULTS.units, "LSTM units.")
    flags.DEFINE_integer(
        "train_examples", _DEFAULTS.train_examples, "First N training examples (all)."
    )
    flags.DEFINE_integer(
        "test_examples", _DEFAULTS.test_examples, "First N test examples (all)."
    )
    flags.DEFINE_integer(
        "eval_every_steps",
        _DEFAULTS.eval_every_steps,
        "Evaluate every N steps of batch 128, scaled to a recipe's batch size "
        "(the same examples between evaluations), and at each epoch's end.",
    )
    flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of weights and data order.")
    flags.DEFINE_string("output", "experiments/results", "Directory for the results.")
    flags.DEFINE_float(
        "timeout_per_system", 3600, "Kill a system's run after this many seconds."
    )
    flags.DEFINE_bool(
        "isolate",
        True,
        "Run each system in a process of its own (peak memory and TF settings "
        "per system); --noisolate runs all in this process.",
    )
    flags.DEFINE_string("worker", None, "Internal: run one system from this spec file.")
    flags.register_validator(
        "systems",
        lambda names: bool(names) and set(names) <= set(SYSTEMS),
        f"--systems takes a comma-separated subset of: {', '.join(SYSTEMS)}",
    )
    flags.register_validator(
        "recipes",
        lambda names: bool(names) and set(names) <= set(RECIPES),
        f"--recipes takes a comma-separated subset of: {', '.join(RECIPES)}",
    )
    flags.register_validator(
        "sweep_recipes",
        lambda names: bool(names) and set(names) <= set(SWEEP_RECIPES),
        "--sweep_recipes takes a comma-separated subset of: "
        + "; ".join(SWEEP_RECIPES),
    )
    flags.register_validator(
        "seeds",
        lambda seeds: bool(seeds) and all(x.isdigit() for x in seeds),
        "--seeds takes comma-separated non-negative integers, e.g. 0,1",
    )
    flags.register_validator(
        "target", lambda t: 0.0 < t <= 1.0, "--target must be in (0, 1], e.g. 0.98"
    )
    for name in ("max_epochs", "units", "eval_every_steps"):
        flags.register_validator(name, lambda n: n > 0, f"--{name} must be > 0")
    for name in ("train_examples", "test_examples"):
        flags.register_validator(
            name, lambda n: n is None or n > 0, f"--{name} must be > 0 (or unset)"
        )


def settings_from_flags():
    values = {}
    for field in dataclasses.fields(Settings):
        flag = FLAGS[field.name]
        quick = FLAGS.quick and field.name in QUICK and not flag.present
        values[field.name] = QUICK[field.name] if quick else flag.value
    return Settings(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.worker:
        return worker_main(FLAGS.worker)
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    if FLAGS.sweep:
        sweep(
            settings_from_flags(),
            recipes=list(dict.fromkeys(FLAGS.sweep_recipes)),
            seeds=[int(x) for x in dict.fromkeys(FLAGS.seeds)],
            output=FLAGS.output,
            quick=FLAGS.quick,
            isolate=FLAGS.isolate,
            timeout=FLAGS.timeout_per_system or None,
        )
        return
    run(
        settings_from_flags(),
        systems=list(dict.fromkeys(FLAGS.systems)),
        recipes=list(dict.fromkeys(FLAGS.recipes)),
        output=FLAGS.output,
        quick=FLAGS.quick,
        isolate=FLAGS.isolate,
        timeout=FLAGS.timeout_per_system or None,
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
