"""Static versus dynamic unrolling, measured: each tutorial claim gets a number.

    python -m experiments.static_vs_dynamic --quick          # minutes: LSTM-32, T in {28, 56}
    python -m experiments.static_vs_dynamic                  # LSTM/GRU/vanilla-128, T up to 784
    python -m experiments.static_vs_dynamic --report_only    # tables and plots from the JSON

The claim: "the static network takes longer to build, uses more memory,
exports a larger model, carries every step's intermediate state (good for
debugging), and must be used with the sequence length it was trained on; the
dynamic one uses less memory, keeps only the final state and accepts other
lengths."

Systems (one recurrent layer, its last output, a dense softmax layer):

* `tfrnn_static`, `tfrnn_dynamic`: `tfrnn.models.build_classifier` (tfrnn's
  `static_rnn` / `dynamic_rnn`; the LSTM is `tfrnn.LSTMCell`, GRU and vanilla
  are Keras's `GRUCell` / `SimpleRNNCell`).
* `keras_unroll`, `keras_loop`: stock `keras.layers.LSTM/GRU/SimpleRNN` with
  `unroll=True` / `unroll=False` (`use_cudnn=False`), references in the same run.
* `keras_cudnn`: `keras.layers.LSTM/GRU(use_cudnn=True)`, only when a GPU is
  visible (recorded as skipped otherwise).

Sequence length: MNIST read as pixels in chunks, T steps of F = 784 / T
consecutive (row-major) pixels: T=28 is the rows view (F=28), T=784 the pixels
view (F=1), T=56, 112, 196, 392 read 14, 7, 4, 2 pixels per step.

Every measurement runs in its own process (`--one=<json config>`, which prints
one JSON record), with a wall-clock budget (`--budget_seconds`, TensorFlow's
import included): a process over budget is killed and recorded as
`over_budget` (with whatever phases it finished), and the larger T of that
system and cell are recorded as `skipped`. Per process it measures:

* build: seconds to trace the training step
  (`tf.function(train_step, autograph=False).get_concrete_function`, no
  AutoGraph as in `tfrnn.training`), ops in its graph
  (`tfrnn.graphs.count_ops`, while-loop bodies included), seconds of the first
  step (graph optimisation + run);
* speed: median step ms and examples/s at batch 128 after warm-up steps;
* memory (`memory_bytes`): on the CPU, the process's peak RSS (VmHWM) after
  the timed steps minus its RSS just before the model is built, the peak being
  reset there (`/proc/self/clear_refs`; `peak_rss_reset` says whether it
  was): TensorFlow, the data and the interpreter are excluded; the model,
  optimizer, traced graphs and training steps included; export comes later
  and is excluded. On a GPU, the allocator's peak minus its use before the
  build;
* export: SavedModel bytes and seconds, with `tfrnn.export.export` for the
  tfrnn models (two signatures, `classify_images` reading T x F images and
  `classify_sequences`) and `keras.Model.export(format="tf_saved_model")` for
  the Keras references (one `serve` endpoint); the tfrnn models are also
  exported the Keras way (`keras_export_bytes`) for a like-for-like comparison;
* other lengths: the exported model is loaded and fed T/2 steps of F;
* per-step state (tfrnn only): forward ms of the unroll alone with and
  without `return_all_states=True`.

Time to accuracy: LSTM-128 with `tfrnn.training.train` (static and dynamic,
MNIST rows, to 98 % test accuracy), each in its own process too.
"""

import gc
import importlib.util
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

import experiments

FLAGS = flags.FLAGS
ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "static_vs_dynamic"

SYSTEMS = ("tfrnn_static", "tfrnn_dynamic", "keras_unroll", "keras_loop", "keras_cudnn")
STATIC_SYSTEMS = ("tfrnn_static", "keras_unroll")
CELLS = ("lstm", "gru", "rnn")
TIME_STEPS = (28, 56, 112, 196, 392, 784)
PIXELS = 784
SEQUENCE_VIEW = (
    "mnist pixels in chunks: T steps of F = 784/T consecutive row-major pixels"
)
MEMORY_DEFINITION = (
    "CPU: peak RSS (VmHWM, reset just before the model is built) after the timed "
    "steps minus RSS just before the build, in the configuration's own process; "
    "GPU: allocator peak minus use before the build"
)
EXPORT_METHODS = {
    "tfrnn": "tfrnn.export.export: tf.saved_model.save of a tf.Module with "
    "signatures classify_images (uint8 T x F images) and classify_sequences",
    "keras": "keras.Model.export(format='tf_saved_model'): one endpoint 'serve'",
}

COMMON = dict(
    systems=list(SYSTEMS),
    batch_size=128,
    max_timing_seconds=60.0,
    budget_seconds=600,
    accuracy_budget_seconds=3600,
    accuracy=True,
)
QUICK = dict(
    COMMON,
    cells=["lstm"],
    units=32,
    time_steps=[28, 56],
    warmup_steps=1,
    timed_steps=5,
    accuracy_units=32,
    accuracy_target=0.4,
    accuracy_max_epochs=2,
    accuracy_train_examples=2048,
    accuracy_test_examples=512,
    accuracy_learning_rate=0.005,
)
FULL = dict(
    COMMON,
    cells=list(CELLS),
    units=128,
    time_steps=list(TIME_STEPS),
    warmup_steps=3,
    timed_steps=30,
    accuracy_units=128,
    accuracy_target=0.98,
    accuracy_max_epochs=20,
    accuracy_train_examples=None,
    accuracy_test_examples=None,
    accuracy_learning_rate=1e-3,
)


def define_flags():
    flags.DEFINE_bool(
        "quick", False, "LSTM-32, T in {28, 56}, few steps, tiny accuracy run."
    )
    flags.DEFINE_string(
        "output", "experiments/results", "Directory for JSON, Markdown, PNG."
    )
    flags.DEFINE_integer(
        "budget_seconds", 600, "Wall-clock budget of one configuration's process."
    )
    flags.DEFINE_integer(
        "accuracy_budget_seconds",
        3600,
        "Wall-clock budget of one time-to-accuracy run.",
    )
    flags.DEFINE_list("systems", list(SYSTEMS), f"Subset of {', '.join(SYSTEMS)}.")
    flags.DEFINE_list(
        "cells", None, f"Subset of {', '.join(CELLS)} (default: all; quick: lstm)."
    )
    flags.DEFINE_list(
        "time_steps",
        None,
        "T values, each dividing 784 (default 28..784; quick 28,56).",
    )
    flags.DEFINE_integer("units", None, "Units (default 128; quick 32).")
    flags.DEFINE_integer("batch_size", 128, "Batch of the timed steps.")
    flags.DEFINE_integer(
        "warmup_steps", None, "Untimed steps after the first (3; quick 1)."
    )
    flags.DEFINE_integer("timed_steps", None, "Timed steps (30; quick 5).")
    flags.DEFINE_float(
        "max_timing_seconds", 60.0, "Stop timing after this long (at least 3 steps)."
    )
    flags.DEFINE_bool("accuracy", True, "Also train LSTMs to the target accuracy.")
    flags.DEFINE_float(
        "accuracy_target", None, "Target test accuracy (0.98; quick 0.4)."
    )
    flags.DEFINE_integer(
        "accuracy_units", None, "Units of the trained LSTMs (128; quick 32)."
    )
    flags.DEFINE_integer("accuracy_max_epochs", None, "Epochs at most (20; quick 2).")
    flags.DEFINE_integer(
        "accuracy_train_examples", None, "First N training examples (all; quick 2048)."
    )
    flags.DEFINE_integer(
        "accuracy_test_examples", None, "First N test examples (all; quick 512)."
    )
    flags.DEFINE_bool(
        "report_only", False, "Only rewrite the .md and .png from the JSON."
    )
    flags.DEFINE_string(
        "one", None, "Internal: measure one JSON configuration, print its record."
    )
    flags.DEFINE_string(
        "result_path", None, "Internal: where --one writes its partial record."
    )


# --- one configuration, in its own process ----------------------------------


def rss_bytes(field="VmRSS"):
    """This process's resident set (VmRSS) or its high-water mark (VmHWM)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    import resource  # not Linux: only the peak is known

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss():
    """Resets this process's VmHWM to its current RSS (Linux >= 4.0); True if done."""
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def chunked_pixels(images, time_steps):
    """uint8 `[N, 28, 28]` -> float32 `[N, T, 784/T]`: T chunks of consecutive pixels."""
    from tfrnn import data

    if PIXELS % time_steps:
        raise ValueError(f"T={time_steps} must divide 784")
    pixels = data.to_sequences(images, "pixels")  # [N, 784, 1] in [0, 1]
    return pixels.reshape(len(images), time_steps, PIXELS // time_steps)


def build_model(system, cell, units, time_steps, features):
    import keras

    from tfrnn import models

    if system.startswith("tfrnn_"):
        mode = system[len("tfrnn_") :]
        return models.build_classifier(mode, cell, units, 1, 10, time_steps, features)
    layer = {
        "lstm": keras.layers.LSTM,
        "gru": keras.layers.GRU,
        "rnn": keras.layers.SimpleRNN,
    }[cell]
    kwargs = {"unroll": system == "keras_unroll"}
    if cell != "rnn":
        kwargs["use_cudnn"] = system == "keras_cudnn"
    inputs = keras.Input(
        (time_steps if system == "keras_unroll" else None, features), name="sequences"
    )
    x = layer(units, name=system, **kwargs)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=f"{system}_{cell}")


def make_train_step(model, optimizer):
    import keras
    import tensorflow as tf

    def train_step(x, y):
        with tf.GradientTape() as tape:
            probabilities = model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, probabilities)
            )
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    # No AutoGraph, as tfrnn.training: no tensor-dependent Python control flow
    # here, and converting the call tree would be timed as part of the trace.
    return tf.function(train_step, autograph=False)


def first_line(error, limit=300):
    """The informative line of an error: an assertion's message, else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    line = next(
        (
            line
            for line in lines
            if any(
                k in line for k in ("assertion failed", "Can not cast", "incompatible")
            )
        ),
        lines[0],
    )
    return f"{type(error).__name__}: {line}"[:limit]


def measure(config, result_path=None):
    """Measures one growth configuration; returns its record (see module doc).

    The record is rewritten to `result_path` after every phase, so a process
    killed for its budget leaves what it had measured.
    """
    import keras
    import tensorflow as tf

    from tfrnn import data, export, graphs, models, report

    record = {
        **config,
        "status": "running",
        "environment": report.environment(),
        "completed_phases": [],
    }

    def done(phase):
        record["completed_phases"].append(phase)
        if result_path:
            report.write_json(result_path, record)

    system, cell, units = config["system"], config["cell"], config["units"]
    time_steps, batch = config["T"], config["batch"]
    features = PIXELS // time_steps
    gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.utils.set_random_seed(0)
    images = data.load_arrays("mnist")
    n_batches = 4
    x_all = chunked_pixels(images.x_train[: n_batches * batch], time_steps)
    y_all = images.y_train[: n_batches * batch]
    xs = [tf.constant(x_all[i * batch : (i + 1) * batch]) for i in range(n_batches)]
    ys = [tf.constant(y_all[i * batch : (i + 1) * batch]) for i in range(n_batches)]

    # --- build ----------------------------------------------------------------
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
        memory_before = tf.config.experimental.get_memory_info("GPU:0")["current"]
    else:
        gc.collect()
        record["peak_rss_before_build_bytes"] = rss_bytes("VmHWM")
        # from here VmHWM is the peak since the build, not since TensorFlow's import
        record["peak_rss_reset"] = reset_peak_rss()
        memory_before = rss_bytes("VmRSS")
    record["memory_before_build_bytes"] = memory_before
    model = build_model(system, cell, units, time_steps, features)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    record["parameters"] = models.count_parameters(model)
    train_step = make_train_step(model, optimizer)
    started = time.perf_counter()
    concrete = train_step.get_concrete_function(xs[0], ys[0])
    record["trace_seconds"] = time.perf_counter() - started
    record["graph_ops"] = graphs.count_ops(concrete)
    done("build")

    started = time.perf_counter()
    float(train_step(xs[0], ys[0]))
    record["first_step_seconds"] = time.perf_counter() - started
    done("first_step")

    # --- speed and memory ---------------------------------------------------------
    for i in range(config["warmup_steps"]):
        float(train_step(xs[(i + 1) % n_batches], ys[(i + 1) % n_batches]))
    seconds, timing_started = [], time.perf_counter()
    for i in range(config["timed_steps"]):
        started = time.perf_counter()
        float(train_step(xs[i % n_batches], ys[i % n_batches]))
        seconds.append(time.perf_counter() - started)
        if len(seconds) >= 3 and (
            time.perf_counter() - timing_started > config["max_timing_seconds"]
        ):
            break
    median = statistics.median(seconds)
    record["steps_timed"] = len(seconds)
    record["median_step_ms"] = 1000 * median
    record["examples_per_second"] = batch / median
    if gpu:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    else:
        peak = rss_bytes("VmHWM")
    record["peak_memory_bytes"] = peak
    record["memory_bytes"] = max(0, peak - memory_before)
    record["memory_kind"] = "gpu" if gpu else "cpu_rss"
    done("steps")

    # --- export -------------------------------------------------------------------
    # next to the partial record: the parent removes it even if this process is killed
    workdir = pathlib.Path(
        tempfile.mkdtemp(prefix="svd_export_", dir=_scratch(result_path))
    )
    family = "tfrnn" if system.startswith("tfrnn_") else "keras"
    record["export_method"] = EXPORT_METHODS[family]
    if family == "tfrnn":
        meta = {
            "mode": system[len("tfrnn_") :],
            "cell": cell,
            "model": "rnn",
            "dataset": "mnist",
            "sequence": "rows",  # the T x F "images" read row by row
            "time_steps": time_steps,
            "features": features,
            "num_classes": 10,
            "image_shape": [time_steps, features],
            "permutation_seed": 0,
        }
        size, export_seconds = export.export(model, workdir / "export", meta)
    else:
        started = time.perf_counter()
        model.export(str(workdir / "export"), format="tf_saved_model", verbose=False)
        export_seconds = time.perf_counter() - started
        size = report.directory_bytes(workdir / "export")
    record["export_bytes"] = size
    record["export_seconds"] = export_seconds
    done("export")

    # --- another length, fed to the exported model ------------------------------
    other = time_steps // 2
    record["other_length_T"] = other
    started = time.perf_counter()
    loaded = tf.saved_model.load(str(workdir / "export"))
    record["export_load_seconds"] = time.perf_counter() - started
    serve = loaded.classify_sequences if family == "tfrnn" else loaded.serve
    try:
        probabilities = serve(tf.constant(x_all[:2, :other]))
        record["accepts_other_length"] = bool(probabilities.shape == (2, 10))
        record["other_length_error"] = None
    except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
        record["accepts_other_length"] = False
        record["other_length_error"] = first_line(error)
    del loaded, serve
    done("other_length")

    # --- tfrnn only: per-step states, and the Keras way of exporting --------------
    if family == "tfrnn":
        record.update(forward_timings(model, xs[0], system, config))
        done("forward")
        started = time.perf_counter()
        model.export(
            str(workdir / "keras_export"), format="tf_saved_model", verbose=False
        )
        record["keras_export_seconds"] = time.perf_counter() - started
        record["keras_export_bytes"] = report.directory_bytes(workdir / "keras_export")
        done("keras_export")
    _remove_tree(workdir)
    record["status"] = "ok"
    done("done")
    return record


def forward_timings(model, x, system, config):
    """Forward ms of the unroll alone, with and without every step's state."""
    import tensorflow as tf

    import tfrnn

    layer = next(layer for layer in model.layers if hasattr(layer, "cell"))
    unroll = tfrnn.static_rnn if system == "tfrnn_static" else tfrnn.dynamic_rnn
    result = {}
    for all_states in (False, True):
        fn = tf.function(
            lambda x, all_states=all_states: unroll(
                layer.cell, x, return_all_states=all_states
            ),
            autograph=False,
        )
        fn(x)  # trace and first run
        seconds = []
        for _ in range(max(3, config["timed_steps"] // 2)):
            started = time.perf_counter()
            # waits for every result without copying it to the host
            tf.nest.map_structure(lambda t: t[0, 0].numpy(), fn(x))
            seconds.append(time.perf_counter() - started)
        key = "forward_all_states_ms" if all_states else "forward_ms"
        result[key] = 1000 * statistics.median(seconds)
    return result


def _scratch(result_path):
    return pathlib.Path(result_path).parent if result_path else None


def train_to_accuracy(config, result_path=None):
    """One time-to-accuracy run with `tfrnn.training.train`; returns its record."""
    from tfrnn import training

    model_dir = pathlib.Path(
        tempfile.mkdtemp(prefix="svd_train_", dir=_scratch(result_path))
    )
    try:
        run = training.train(
            training.Config(
                mode=config["system"][len("tfrnn_") :],
                cell=config["cell"],
                units=config["units"],
                batch_size=config["batch"],
                learning_rate=config["learning_rate"],
                clip_norm=1.0,
                schedule="constant",  # fixed, whatever tfrnn.train's default
                target_accuracy=config["target_accuracy"],
                max_epochs=config["max_epochs"],
                train_examples=config["train_examples"],
                test_examples=config["test_examples"],
                model_dir=str(model_dir / "run"),
            ),
            log=lambda line: print(line, flush=True),
        )
    finally:
        _remove_tree(model_dir)
    timing = run["timing"]
    evaluations = run["evaluations"]
    return {
        **config,
        "status": "ok",
        "environment": run["environment"],
        "parameters": run["parameters"],
        "target_reached": run["target_reached"],
        "seconds_to_target": run["seconds_to_target"],
        "train_seconds_to_target": run["train_seconds_to_target"],
        "step_seconds_to_target": run.get("step_seconds_to_target"),
        "epochs_to_target": run["epochs_to_target"],
        "final_test_accuracy": evaluations[-1]["test_accuracy"]
        if evaluations
        else None,
        "evaluations": evaluations,
        "trace_seconds": timing["trace_seconds"],
        "first_step_seconds": timing["first_step_seconds"],
        "median_step_ms": timing["median_step_ms"],
        "examples_per_second": timing["examples_per_second"],
        "peak_memory_bytes": run["peak_memory_bytes"],
        "export_bytes": run["export"]["bytes"] if run["export"] else None,
        "export_seconds": run["export"]["seconds"] if run["export"] else None,
        "export_method": EXPORT_METHODS["tfrnn"],
    }


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def run_one(config, result_path=None):
    """`--one`: measure one configuration, print its record as the last line."""
    if config["measurement"] == "accuracy":
        record = train_to_accuracy(config, result_path)
        if result_path:
            from tfrnn import report

            report.write_json(result_path, record)
    else:
        record = measure(config, result_path)
    print(json.dumps(record, default=str), flush=True)
    return record


# --- the whole experiment: one process per configuration ------------------------


def run_in_subprocess(config, budget_seconds, workdir):
    """Runs `--one=config` with a wall-clock budget; returns its record."""
    workdir = pathlib.Path(workdir)
    tag = "-".join(str(config[k]) for k in ("measurement", "system", "cell", "T"))
    result_path, log_path = workdir / f"{tag}.json", workdir / f"{tag}.log"
    command = [
        sys.executable,
        "-m",
        "experiments.static_vs_dynamic",
        f"--one={json.dumps(config)}",
        f"--result_path={result_path}",
    ]
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
        try:
            returncode = process.wait(timeout=budget_seconds)
            over_budget = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode, over_budget = None, True
    wall = time.perf_counter() - started
    record = dict(config)
    if result_path.exists():
        record = json.loads(result_path.read_text())
    record["wall_seconds"] = wall
    record["budget_seconds"] = budget_seconds
    if over_budget:
        record["status"] = "over_budget"
    elif returncode != 0 or record.get("status") != "ok":
        record["status"] = "error"
        record["returncode"] = returncode
        record["error"] = log_path.read_text()[-2000:]
    return record


def settings(quick, **overrides):
    """The run's settings: quick or full defaults, then the flags given."""
    chosen = dict(QUICK if quick else FULL)
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    chosen["time_steps"] = sorted(int(t) for t in chosen["time_steps"])
    for t in chosen["time_steps"]:
        if t <= 0 or PIXELS % t:
            raise ValueError(f"--time_steps: {t} does not divide 784")
    for cell in chosen["cells"]:
        if cell not in CELLS:
            raise ValueError(f"--cells: {cell!r} is not one of {', '.join(CELLS)}")
    for system in chosen["systems"]:
        if system not in SYSTEMS:
            raise ValueError(
                f"--systems: {system!r} is not one of {', '.join(SYSTEMS)}"
            )
    return chosen


def growth_configs(s):
    """Every (T, cell, system) to measure, smallest T first."""
    return [
        {
            "experiment": NAME,
            "measurement": "growth",
            "system": system,
            "cell": cell,
            "units": s["units"],
            "T": t,
            "F": PIXELS // t,
            "batch": s["batch_size"],
            "sequence": SEQUENCE_VIEW,
            "warmup_steps": s["warmup_steps"],
            "timed_steps": s["timed_steps"],
            "max_timing_seconds": s["max_timing_seconds"],
        }
        for t in s["time_steps"]
        for cell in s["cells"]
        for system in s["systems"]
    ]


def accuracy_configs(s):
    """LSTM to the target, MNIST rows (T=28), tfrnn static and dynamic (and the
    Keras references, recorded as skipped: see `keras_accuracy_note`)."""
    return [
        {
            "experiment": NAME,
            "measurement": "accuracy",
            "system": system,
            "cell": "lstm",
            "units": s["accuracy_units"],
            "T": 28,
            "F": 28,
            "batch": s["batch_size"],
            "sequence": "mnist rows",
            "target_accuracy": s["accuracy_target"],
            "max_epochs": s["accuracy_max_epochs"],
            "train_examples": s["accuracy_train_examples"],
            "test_examples": s["accuracy_test_examples"],
            "learning_rate": s["accuracy_learning_rate"],
        }
        for system in s["systems"]
    ]


def keras_accuracy_note():
    """Why the Keras references have no time-to-accuracy here."""
    if importlib.util.find_spec("experiments.baselines") is not None:
        source = (ROOT / "experiments" / "baselines.py").read_text()
        if "def train_keras" in source:
            return "measured by experiments/baselines.py (train_keras), not here"
    return "not measured: experiments/baselines.py has no train_keras"


def skipped(config, reason, environment):
    return {**config, "status": "skipped", "reason": reason, "environment": environment}


def run_all(s, output, quick, log=print):
    """Measures every configuration; writes and returns the records."""
    import tensorflow as tf

    from tfrnn import report

    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = result_paths(output, quick)
    environment = report.environment()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    records = []
    stopped = {}  # (system, cell) -> why larger T are skipped
    with tempfile.TemporaryDirectory(prefix="svd_") as workdir:
        for config in growth_configs(s):
            key = (config["system"], config["cell"])
            label = (
                f"{config['system']} {config['cell']}-{config['units']} T={config['T']}"
            )
            if config["system"] == "keras_cudnn" and not gpu:
                record = skipped(
                    config, "no GPU visible (cuDNN runs only on a GPU)", environment
                )
            elif config["system"] == "keras_cudnn" and config["cell"] == "rnn":
                record = skipped(config, "Keras has no cuDNN SimpleRNN", environment)
            elif key in stopped:
                record = skipped(config, stopped[key], environment)
            else:
                log(f"measuring {label} (budget {s['budget_seconds']} s)")
                record = run_in_subprocess(config, s["budget_seconds"], workdir)
                if record["status"] != "ok":
                    stopped[key] = (
                        f"T={config['T']} was {record['status']} "
                        f"(budget {s['budget_seconds']} s)"
                    )
            record.setdefault("environment", environment)
            log(f"  {label}: {_summary(record)}")
            records.append(record)
            report.write_json(paths["json"], records)
        if s["accuracy"]:
            for config in accuracy_configs(s):
                label = f"{config['system']} to {config['target_accuracy']}"
                if not config["system"].startswith("tfrnn_"):
                    record = skipped(config, keras_accuracy_note(), environment)
                else:
                    log(f"training {label} (budget {s['accuracy_budget_seconds']} s)")
                    record = run_in_subprocess(
                        config, s["accuracy_budget_seconds"], workdir
                    )
                record.setdefault("environment", environment)
                log(f"  {label}: {_summary(record)}")
                records.append(record)
                report.write_json(paths["json"], records)
    write_reports(records, output, quick)
    return records


def _summary(record):
    if record["status"] == "skipped":
        return f"skipped ({record['reason']})"
    if record["measurement"] == "accuracy" and record["status"] == "ok":
        return (
            f"{record['seconds_to_target']} s, {record['epochs_to_target']} epochs "
            f"to target (final {record['final_test_accuracy']})"
        )
    parts = [record["status"]]
    for key, unit, scale in (
        ("trace_seconds", "s trace", 1),
        ("graph_ops", "ops", 1),
        ("median_step_ms", "ms/step", 1),
        ("memory_bytes", "MiB", 2**-20),
        ("export_bytes", "MiB export", 2**-20),
    ):
        if record.get(key) is not None:
            parts.append(f"{record[key] * scale:.4g} {unit}")
    return ", ".join(parts)


# --- reports: Markdown tables, verdicts, plots -----------------------------------


def result_paths(output, quick):
    return experiments.result_paths(
        output, quick, json=NAME, md=NAME, png=f"{NAME}_growth"
    )


def write_reports(records, output, quick):
    paths = result_paths(output, quick)
    paths["md"].write_text(markdown(records, paths["png"].name))
    plot_growth(records, paths["png"])
    return paths


def _fmt(value, scale=1.0, digits=4):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value * scale:.{digits}g}"
    return str(value)


def growth_rows(records):
    return sorted(
        (r for r in records if r.get("measurement") == "growth"),
        key=lambda r: (
            CELLS.index(r["cell"]) if r["cell"] in CELLS else 9,
            SYSTEMS.index(r["system"]) if r["system"] in SYSTEMS else 9,
            r["T"],
        ),
    )


def markdown(records, png_name):
    growth = growth_rows(records)
    accuracy = [r for r in records if r.get("measurement") == "accuracy"]
    first = next(
        (r for r in records if r.get("status") == "ok"), records[0] if records else {}
    )
    env = first.get("environment", {})
    lines = [
        "# Static versus dynamic unrolling, measured",
        "",
        f"{env.get('device', '?')}; TensorFlow {env.get('tensorflow', '?')}, "
        f"Keras {env.get('keras', '?')}, tfrnn {env.get('tfrnn', '?')}; {env.get('date', '?')}. "
        "Timings on a shared machine are noisy: compare ratios, not digits.",
        "",
        f"- Sequences: {SEQUENCE_VIEW} (T=28 is the rows view, T=784 the pixels view).",
        f"- Memory: {MEMORY_DEFINITION}.",
        f"- Export: tfrnn models with {EXPORT_METHODS['tfrnn']}; Keras references with "
        f"{EXPORT_METHODS['keras']}. `keras export MiB` exports the tfrnn models the "
        "Keras way too, like for like.",
        "- Build: seconds to trace the training step (forward, gradients, Adam update; "
        "`tf.function(autograph=False)`, as `tfrnn.training`); ops in its graph, while-loop "
        "bodies included; first step: graph optimisation + run.",
        "",
        "## Verdicts",
        "",
        "Ratios static / dynamic (tfrnn; Keras `unroll=True` / `unroll=False` as a second "
        "opinion) at the smallest and largest T measured for both, first cell measured. "
        "A claim that static is larger: confirmed when every ratio is >= 1.1, refuted when "
        "none is, depends (on T) otherwise (10 % allows for noise).",
        "",
    ]
    for claim, verdict, evidence in verdicts(records):
        lines.append(f"- **{claim}**: {verdict}. {evidence}")
    lines += [
        "",
        f"![growth with T]({png_name})",
        "",
        "## Growth with T",
        "",
        "| system | cell | units | T | F | status | trace s | ops | first step s "
        "| step ms | examples/s | memory MiB | export MiB | export s | keras export MiB "
        "| accepts T/2 | fwd ms | fwd all-states ms |",
        "|" + "---|" * 18,
    ]
    for r in growth:
        status = r["status"]
        if status == "skipped":
            status = f"skipped: {r.get('reason')}"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["system"],
                    r["cell"],
                    _fmt(r.get("units")),
                    _fmt(r["T"]),
                    _fmt(r["F"]),
                    status,
                    _fmt(r.get("trace_seconds")),
                    _fmt(r.get("graph_ops"), digits=8),
                    _fmt(r.get("first_step_seconds")),
                    _fmt(r.get("median_step_ms")),
                    _fmt(r.get("examples_per_second")),
                    _fmt(r.get("memory_bytes"), 2**-20),
                    _fmt(r.get("export_bytes"), 2**-20),
                    _fmt(r.get("export_seconds")),
                    _fmt(r.get("keras_export_bytes"), 2**-20),
                    _fmt(r.get("accepts_other_length")),
                    _fmt(r.get("forward_ms")),
                    _fmt(r.get("forward_all_states_ms")),
                ]
            )
            + " |"
        )
    if accuracy:
        lines += [
            "",
            "## Time to accuracy (LSTM, MNIST rows, T=28, `tfrnn.training.train`)",
            "",
            "| system | units | target | status | seconds to target | train seconds to target "
            "| epochs to target | final test accuracy | step ms | trace s |",
            "|" + "---|" * 10,
        ]
        for r in accuracy:
            status = (
                r["status"]
                if r["status"] != "skipped"
                else f"skipped: {r.get('reason')}"
            )
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["system"],
                        _fmt(r.get("units")),
                        _fmt(r.get("target_accuracy")),
                        status,
                        _fmt(r.get("seconds_to_target")),
                        _fmt(r.get("train_seconds_to_target")),
                        _fmt(r.get("epochs_to_target")),
                        _fmt(r.get("final_test_accuracy")),
                        _fmt(r.get("median_step_ms")),
                        _fmt(r.get("trace_seconds")),
                    ]
                )
                + " |"
            )
    lines.append("")
    return "\n".join(lines)


def _lookup(records, system, cell, t):
    for r in records:
        if (
            r.get("measurement") == "growth"
            and r["system"] == system
            and r["cell"] == cell
            and r["T"] == t
        ):
            return r
    return None


def _pairs(records, cell, static, dynamic, key):
    """(T, static value, dynamic value) at the smallest and largest T with both."""
    both = []
    for t in sorted({r["T"] for r in records if r.get("measurement") == "growth"}):
        a, b = _lookup(records, static, cell, t), _lookup(records, dynamic, cell, t)
        if a and b and a.get(key) is not None and b.get(key) not in (None, 0):
            both.append((t, a[key], b[key]))
    if len(both) > 2:
        both = [both[0], both[-1]]
    return both


def _num(value):
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _ratio_text(pairs, unit, scale=1.0):
    return "; ".join(
        f"T={t}: {_num(a * scale)} vs {_num(b * scale)} {unit} (x{a / b:.3g})"
        for t, a, b in pairs
    )


def _larger_verdict(pairs, threshold=1.1):
    ratios = [a / b for _, a, b in pairs]
    if not ratios:
        return "not measured"
    if all(r >= threshold for r in ratios):
        return "confirmed"
    if all(r < threshold for r in ratios):
        return "refuted"
    return "depends (on T)"


def verdicts(records):
    """(claim, verdict, evidence) for each claim, from the growth records.

    Ratios are static / dynamic for tfrnn (and Keras `unroll=True` / `False`
    as a second opinion), at the smallest and largest T where both were
    measured; a claim that static is larger holds when every ratio is >= 1.1
    (10 % for noise), fails when none is, and depends on T otherwise.
    """
    growth = [r for r in records if r.get("measurement") == "growth"]
    cells = [c for c in CELLS if any(r["cell"] == c for r in growth)]
    if not cells:
        return [("all claims", "not measured", "no growth records")]
    cell = cells[0]
    out = []
    numeric = [
        (
            "static takes longer to build (trace the training step)",
            "trace_seconds",
            "s",
            1.0,
        ),
        ("static takes longer to build (graph ops)", "graph_ops", "ops", 1.0),
        (
            "static takes longer to build (first step: optimise + run)",
            "first_step_seconds",
            "s",
            1.0,
        ),
        ("static uses more memory (dynamic uses less)", "memory_bytes", "MiB", 2**-20),
        ("static exports a larger model", "export_bytes", "MiB", 2**-20),
    ]
    for claim, key, unit, scale in numeric:
        tf_pairs = _pairs(growth, cell, "tfrnn_static", "tfrnn_dynamic", key)
        keras_pairs = _pairs(growth, cell, "keras_unroll", "keras_loop", key)
        verdict = _larger_verdict(tf_pairs)
        evidence = f"{cell}, static vs dynamic, tfrnn: {_ratio_text(tf_pairs, unit, scale) or '-'}"
        if keras_pairs:
            evidence += (
                f"; Keras unroll=True vs False ({_larger_verdict(keras_pairs)}): "
                f"{_ratio_text(keras_pairs, unit, scale)}"
            )
        out.append((claim, verdict, evidence + "."))

    # Step time: not in the claim, but the usual reason to unroll.
    pairs = _pairs(growth, cell, "tfrnn_static", "tfrnn_dynamic", "median_step_ms")
    ratios = [a / b for _, a, b in pairs]
    if not ratios:
        verdict = "not measured"
    elif all(r <= 1 / 1.1 for r in ratios):
        verdict = "confirmed"
    elif all(r > 1 / 1.1 for r in ratios):
        verdict = "refuted"
    else:
        verdict = "depends (on T)"
    keras_pairs = _pairs(growth, cell, "keras_unroll", "keras_loop", "median_step_ms")
    evidence = f"median training step, tfrnn: {_ratio_text(pairs, 'ms') or '-'}"
    if keras_pairs:
        evidence += f"; Keras: {_ratio_text(keras_pairs, 'ms')}"
    out.append(
        ("(implied) static runs each training step faster", verdict, evidence + ".")
    )

    # Every step's state.
    ops = _pairs(growth, cell, "tfrnn_static", "tfrnn_dynamic", "graph_ops")
    dyn = [
        r
        for r in growth
        if r["system"] == "tfrnn_dynamic"
        and r["cell"] == cell
        and r.get("forward_ms")
        and r.get("forward_all_states_ms")
    ]
    evidence = [
        "tfrnn.static_rnn's list form returns every step's output and state as a "
        "tensor of its own (experiments/gradient_flow.py differentiates the loss "
        "with respect to them)"
    ]
    if len(ops) == 2 and ops[1][0] > ops[0][0]:
        (t0, s0, d0), (t1, s1, d1) = ops
        evidence.append(
            f"the static training graph grows by {(s1 - s0) / (t1 - t0):.0f} ops per step "
            f"(every step's tensors are in it), the dynamic one by "
            f"{(d1 - d0) / (t1 - t0):.2g}"
        )
    if dyn:
        evidence.append(
            "tfrnn.dynamic_rnn(return_all_states=True) returns every step's state too, "
            "forward time "
            + ", ".join(
                f"T={r['T']}: {r['forward_all_states_ms']:.3g} vs {r['forward_ms']:.3g} ms "
                f"(x{r['forward_all_states_ms'] / r['forward_ms']:.3g})"
                for r in (dyn[0], dyn[-1])[: 1 if len(dyn) == 1 else 2]
            )
        )
    memory = _pairs(growth, cell, "tfrnn_static", "tfrnn_dynamic", "memory_bytes")
    if memory:
        evidence.append(
            "in training the dynamic loop keeps every step's activations for the "
            "gradient as well (memory static/dynamic "
            + ", ".join(f"T={t}: x{a / b:.3g}" for t, a, b in memory)
            + ")"
        )
    evidence.append(
        "Keras's RNN layers expose per-step outputs (return_sequences) but never per-step states"
    )
    out.append(
        (
            "static carries every step's intermediate state; dynamic keeps only the final state",
            "depends (true of the graphs; tfrnn's dynamic_rnn returns every state on request)"
            if dyn
            else "not measured",
            "; ".join(evidence) + ".",
        )
    )

    # Other lengths.
    for claim, systems, want in (
        (
            "static must be used with the sequence length it was trained on",
            STATIC_SYSTEMS,
            False,
        ),
        ("dynamic accepts other lengths", ("tfrnn_dynamic", "keras_loop"), True),
    ):
        tried = [
            r
            for r in growth
            if r["system"] in systems and r.get("accepts_other_length") is not None
        ]
        if not tried:
            out.append(
                (claim, "not measured", "no exported model was fed another length.")
            )
            continue
        agree = [r for r in tried if r["accepts_other_length"] == want]
        verdict = (
            "confirmed"
            if len(agree) == len(tried)
            else "refuted"
            if not agree
            else "depends"
        )
        evidence = (
            f"{len(agree)} of {len(tried)} exported models ({', '.join(sorted({r['system'] for r in tried}))}) "
            f"{'accepted' if want else 'refused'} T/2 steps"
        )
        error = next(
            (r["other_length_error"] for r in tried if r.get("other_length_error")),
            None,
        )
        if error and not want:
            evidence += f"; e.g. `{error[:160]}`"
        out.append((claim, verdict, evidence + "."))
    return out


def plot_growth(records, path):
    """Six panels against T (log-log), one line per system and cell."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    panels = [
        ("trace_seconds", "trace the training step (s)", 1.0),
        ("first_step_seconds", "first step (s)", 1.0),
        ("graph_ops", "ops in the training graph", 1.0),
        ("median_step_ms", "median training step (ms)", 1.0),
        ("memory_bytes", "memory (MiB)", 2**-20),
        ("export_bytes", "SavedModel (MiB)", 2**-20),
    ]
    growth = [r for r in records if r.get("measurement") == "growth"]
    colors = dict(
        zip(SYSTEMS, ("tab:red", "tab:blue", "tab:orange", "tab:cyan", "tab:green"))
    )
    styles = dict(zip(CELLS, ("-", "--", ":")))
    figure = Figure(figsize=(15, 8.5), layout="constrained")
    axes = figure.subplots(2, 3)
    all_t = sorted({r["T"] for r in growth})
    for ax, (key, title, scale) in zip(axes.flat, panels):
        for system in SYSTEMS:
            for cell in CELLS:
                points = sorted(
                    (r["T"], r[key] * scale)
                    for r in growth
                    if r["system"] == system
                    and r["cell"] == cell
                    and r.get(key) is not None
                    and r[key] > 0
                )
                if not points:
                    continue
                ax.plot(
                    *zip(*points),
                    styles[cell],
                    marker="o",
                    markersize=4,
                    color=colors[system],
                    label=f"{system} ({cell}-{growth[0]['units']})",
                )
        ax.set_title(title)
        ax.set_xlabel("T (sequence length)")
        if all_t:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(all_t)
            ax.set_xticklabels([str(t) for t in all_t])
            ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(True, alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right center", fontsize=8)
    figure.suptitle(
        "static versus dynamic: growth with T (MNIST pixels, T steps of 784/T; batch "
        f"{growth[0]['batch'] if growth else '?'})"
    )
    figure.savefig(path, dpi=100)


# --- command line ------------------------------------------------------------------------


def main(argv):
    s = experiments.settings_from_flags(
        argv,
        settings,
        FLAGS.quick,
        cells=FLAGS.cells,
        units=FLAGS.units,
        time_steps=FLAGS.time_steps,
        warmup_steps=FLAGS.warmup_steps,
        timed_steps=FLAGS.timed_steps,
        systems=FLAGS.systems,
        batch_size=FLAGS.batch_size,
        max_timing_seconds=FLAGS.max_timing_seconds,
        budget_seconds=FLAGS.budget_seconds,
        accuracy_budget_seconds=FLAGS.accuracy_budget_seconds,
        accuracy=FLAGS.accuracy,
        accuracy_target=FLAGS.accuracy_target,
        accuracy_units=FLAGS.accuracy_units,
        accuracy_max_epochs=FLAGS.accuracy_max_epochs,
        accuracy_train_examples=FLAGS.accuracy_train_examples,
        accuracy_test_examples=FLAGS.accuracy_test_examples,
    )
    if FLAGS.one:
        run_one(json.loads(FLAGS.one), FLAGS.result_path)
        return
    if FLAGS.report_only:
        paths = result_paths(FLAGS.output, FLAGS.quick)
        records = json.loads(paths["json"].read_text())
        write_reports(records, FLAGS.output, FLAGS.quick)
        print(f"wrote {paths['md']} and {paths['png']}")
        return
    started = time.perf_counter()
    records = run_all(
        s, FLAGS.output, FLAGS.quick, log=lambda line: print(line, flush=True)
    )
    paths = result_paths(FLAGS.output, FLAGS.quick)
    print(markdown(records, paths["png"].name))
    print(
        f"{len(records)} records in {time.perf_counter() - started:.0f} s: {paths['json']}, "
        f"{paths['md']}, {paths['png']}"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
