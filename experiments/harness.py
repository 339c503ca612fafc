"""The harness every experiment runs on (as Keras's `benchmarks/layer_benchmark`).

An experiment module declares `NAME`, `FULL`, `QUICK`, `HELP`, `CHOICES`,
`POSITIVE`, `check(s)` and `run(s, output, quick, log)`; `harness.main(module)`
is its command line, `python -m experiments.NAME [--quick] [--output=DIR] [--KEY=...]`.
No TensorFlow is imported at import time: the PyTorch worker runs on this module.
"""

import collections
import dataclasses
import datetime
import importlib
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from tfrnn.training import machine  # TensorFlow-free
from tfrnn.training.machine import peak_memory_bytes, rss_bytes  # noqa: F401 - the experiments' too

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
PIXELS = 784

# --- one table of metrics: JSON key -> (label, unit, scale of the tables and plots)
Metric = collections.namedtuple("Metric", "label unit scale", defaults=("", 1.0))
MIB = 2.0**-20
METRICS = {
    "trace_seconds": Metric("trace", "s"),
    "graph_ops": Metric("graph", "ops"),
    "first_step_seconds": Metric("first step", "s"),
    "first_step_total_seconds": Metric("first step (trace, compile)", "s"),
    "median_step_ms": Metric("median step", "ms"),
    "examples_per_second": Metric("examples/s"),
    "memory_bytes": Metric("memory", "MiB", MIB),
    "peak_memory_bytes": Metric("peak memory", "MiB", MIB),
    "export_bytes": Metric("SavedModel", "MiB", MIB),
    "export_seconds": Metric("export", "s"),
    "keras_export_bytes": Metric("Keras-way export", "MiB", MIB),
    "forward_ms": Metric("forward", "ms"),
    "forward_all_states_ms": Metric("forward, all states", "ms"),
    "seconds_to_target": Metric("seconds to target"),
    "train_seconds_to_target": Metric("time to target", "s"),
    "step_seconds_to_target": Metric("steps to target", "s"),
    "epochs_to_target": Metric("epochs to target"),
    "step_seconds": Metric("steps", "s"),
    "test_accuracy": Metric("test accuracy"),
    "best_test_accuracy": Metric("best"),
    "final_test_accuracy": Metric("final test accuracy"),
    "median_ms": Metric("median step", "ms"),
    "ratio_to_keras_while": Metric("× keras_while"),
    "grad_h_norm": Metric("mean ||dL/dh_t||"),
    "grad_c_norm": Metric("mean ||dL/dc_t|| (LSTM cell state)"),
    "test_bpc": Metric("held-out", "bpc"),
    "sweep_test_bpc": Metric("held-out, tfrnn_dynamic by chunk length K,", "bpc"),
    "best_test_bpc": Metric("best held-out", "bpc"),
    "test_bpc_at_budget": Metric("held-out at the budget", "bpc"),
}


def label(key):
    """`label unit` of a METRICS key (the key itself when it is not a metric)."""
    metric = METRICS.get(key)
    if metric is None:
        return key
    return f"{metric.label} {metric.unit}".strip()


def fmt(value, key=None, digits=4):
    """A table cell: `value` scaled by `key`'s metric, 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        value = value * (METRICS[key].scale if key in METRICS else 1.0)
        if isinstance(value, int) or abs(value) >= 10**digits:
            return f"{value:.0f}"
        return f"{value:.{digits}g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows, columns):
    """A Markdown table: one row per dict of `rows`, `columns` its keys (or
    `(header, function of the row)`); headers from METRICS."""
    columns = [c if isinstance(c, tuple) else (label(c), c) for c in columns]
    lines = ["| " + " | ".join(h for h, _ in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = [
            fmt(get(row)) if callable(get) else fmt(row.get(get), get)
            for _, get in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(title, records, *notes):
    """`# title`, the machine and versions of the first record, then notes."""
    env = next((r.get("environment") for r in records if r.get("environment")), {})
    machine = (
        f"{env.get('device', '?')}; TensorFlow {env.get('tensorflow', '?')}, Keras "
        f"{env.get('keras', '?')}, tfrnn {env.get('tfrnn', '?')}; {env.get('date', '?')}."
    )
    return "\n\n".join([f"# {title}", machine, *notes]) + "\n\n"


def plot(path, panels, series, title, xlabel, references=(), xscale="log", yscale="log"):
    """A panel (log-y unless `yscale`) per key of `panels`; a line per `(name, [row with "x"],
    style)` of `series`, a horizontal line per `(name, {key: value}, style)` of `references`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    columns, rows = min(3, len(panels)), -(-len(panels) // 3)
    figure = Figure(figsize=(5 * columns + 3, 4.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flat
    xs = sorted({p["x"] for _, points, _ in series for p in points})
    for ax, key in zip(axes, panels):
        scale = METRICS[key].scale if key in METRICS else 1.0
        for name, points, style in series:
            xy = sorted((p["x"], p[key] * scale) for p in points if p.get(key))
            if xy:
                ax.plot(*zip(*xy), label=name, **{"marker": "o", "markersize": 3, **style})
        for name, values, style in references:
            if values.get(key):
                ax.axhline(values[key] * scale, label=name, linewidth=1, **style)
        ax.set(title=label(key), xlabel=xlabel, xscale=xscale, yscale=yscale)
        if xscale == "log":  # a tick at each x measured
            ax.set_xticks(xs, [str(x) for x in xs], minor=False)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, which="both", alpha=0.3)
    handles = {}  # every panel's lines, each name once
    for ax in figure.axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    figure.legend(handles.values(), handles.keys(), loc="outside right center", fontsize=8)
    figure.suptitle(title)
    figure.savefig(path, dpi=100)


# --- records ---------------------------------------------------------------------


def environment():
    """Versions, device and date, without importing TensorFlow or PyTorch."""

    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    init = (ROOT / "tfrnn" / "__init__.py").read_text()
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat("T", "seconds"),
        "device": _device(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "numpy": version("numpy"),
        "tfrnn": re.search(r'__version__ = "(.*)"', init).group(1),
    }
    if "torch" in sys.modules:
        env["torch"] = sys.modules["torch"].__version__
    if hasattr(os, "getloadavg"):
        env["load_average"] = [round(load, 2) for load in os.getloadavg()]
    return env


def _device():
    """`tfrnn.training.machine.device()`, or the GPU PyTorch sees where TensorFlow sees none."""
    torch, name = sys.modules.get("torch"), machine.device()
    if name.startswith("CPU") and torch is not None and torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return name


@dataclasses.dataclass
class Record:
    """One measurement, written flat: `{experiment, **config, status, note,
    environment, **values}`; `status`: ok, skipped, failed or over_budget (`note`: why)."""

    experiment: str
    config: dict
    status: str = "ok"
    note: str = None
    values: dict = dataclasses.field(default_factory=dict)
    environment: dict = dataclasses.field(default_factory=environment)

    def flat(self):
        head = {"experiment": self.experiment, **self.config, "status": self.status}
        return {**head, "note": self.note, "environment": self.environment, **self.values}


def write_json(path, records):
    """`records` (flat dicts, as `Record.flat()`) to `path`, atomically."""
    _write_atomic(pathlib.Path(path), json.dumps(records, indent=2, default=_jsonable) + "\n")


def _write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as f:
        f.write(text)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def _jsonable(value):
    return value.item() if hasattr(value, "item") else str(value)


# --- memory (read by tfrnn.training.machine) --------------------------------------------------

class MemoryMeter:
    """Memory used from `start()` to `stop()`: the peak minus the use at start
    (CPU: VmHWM, reset at start through `/proc/self/clear_refs`: `peak_rss_reset`)."""

    def start(self):
        import gc

        tf = sys.modules.get("tensorflow")
        self.gpu = bool(tf and tf.config.list_physical_devices("GPU"))
        if self.gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
            self.before = tf.config.experimental.get_memory_info("GPU:0")["current"]
            return {"memory_before_build_bytes": self.before}
        gc.collect()
        values = {"peak_rss_before_build_bytes": rss_bytes("VmHWM"), "peak_rss_reset": True}
        try:
            pathlib.Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            values["peak_rss_reset"] = False
        self.before = rss_bytes("VmRSS")
        return {"memory_before_build_bytes": self.before, **values}

    def stop(self):
        peak, kind = peak_memory_bytes(), "gpu" if self.gpu else "cpu_rss"
        memory = max(0, peak - self.before)
        return {"peak_memory_bytes": peak, "memory_bytes": memory, "memory_kind": kind}


# --- models and the training step (TensorFlow systems) ---------------------------

TFRNN_SYSTEMS = ("tfrnn_dynamic", "tfrnn_static")
KERAS_SYSTEMS = ("keras_while", "keras_unroll", "keras_cudnn")
ALIASES = {"keras_loop": "keras_while"}  # the name in static_vs_dynamic.json


def chunked_pixels(images, time_steps):
    """uint8 `[N, 28, 28]` -> float32 `[N, T, 784/T]`: T chunks of consecutive pixels."""
    if time_steps <= 0 or PIXELS % time_steps:
        raise ValueError(f"T={time_steps} must divide 784")
    pixels = images.reshape(len(images), -1).astype("float32") / 255.0
    return pixels.reshape(len(images), time_steps, PIXELS // time_steps)


def build_model(system, cell="lstm", units=128, time_steps=28, features=28, unroll=1):
    """LSTM/GRU/vanilla -> last output -> softmax Dense(10), as `system` runs it.

    tfrnn_*: `tfrnn.tasks.classify.models.build_classifier` (tfrnn_dynamic with `unroll=k`:
    `dynamic_rnn(unroll=k)`); keras_while / keras_unroll / keras_cudnn:
    `keras.layers.LSTM/GRU/SimpleRNN` with `unroll=False / True`
    (`use_cudnn=False`) or `use_cudnn=True`.
    """
    import keras

    from tfrnn.tasks.classify import models

    if system in TFRNN_SYSTEMS:
        return models.build_classifier(system[6:], cell, units, 1, 10, time_steps, features, unroll=unroll)
    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}.get(cell, keras.layers.SimpleRNN)
    options = {"unroll": system == "keras_unroll"}
    if cell != "rnn":
        options["use_cudnn"] = system == "keras_cudnn"
    steps = time_steps if system == "keras_unroll" else None
    inputs = keras.Input((steps, features), name="sequences")
    x = layer(units, name=system, **options)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=f"{system}_{cell}")


def train_step(model, optimizer=None, variables=None, from_logits=False):
    """`step(x, y) -> loss`: one step (Adam 1e-3 unless `optimizer`) on the mean
    sparse cross-entropy of `model(x, training=True)`; no AutoGraph, as `tfrnn.training.loop`."""
    import keras
    import tensorflow as tf

    variables = variables or model.trainable_variables
    optimizer = optimizer or keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    def step(x, y):
        with tf.GradientTape() as tape:
            predicted = model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, predicted, from_logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return tf.function(step, autograph=False)


def train_tfrnn(log=None, **config):
    """`tfrnn.training.loop.train(Config(**config))` (the classifier's Config) in a scratch model_dir; its report
    flattened (timing, target fields, `export_bytes`, ...) with `best_test_accuracy`,
    and `final_test_accuracy`, `steps`, `wall_seconds`, `train_seconds` of the last evaluation."""
    from tfrnn.tasks.classify import config as config_lib
    from tfrnn.training import loop

    workdir = tempfile.mkdtemp(prefix="tfrnn-experiment-train-")
    try:
        config = config_lib.Config(**config, model_dir=f"{workdir}/run")
        report = loop.train(config, log=log or (lambda line: None))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    evaluations = report["evaluations"]
    last = evaluations[-1] if evaluations else {}
    values = {k: v for k, v in report.items() if k not in ("run", "timing", "export")}
    return {
        **values, **report["timing"], "export_bytes": (report["export"] or {}).get("bytes"),
        "best_test_accuracy": max((e["test_accuracy"] for e in evaluations), default=None),
        "final_test_accuracy": last.get("test_accuracy"), "steps": last.get("step"),
        "wall_seconds": last.get("seconds"), "train_seconds": last.get("train_seconds"),
    }  # fmt: skip


def time_steps_of(step, batches, warmup, timed, max_seconds=None):
    """Runs `step(*batch)` `warmup` times, then times up to `timed` steps
    (at least 3 once `max_seconds` have passed); returns the seconds of each."""
    for i in range(warmup):
        float(step(*batches[i % len(batches)]))
    seconds, started = [], time.perf_counter()
    for i in range(timed):
        begun = time.perf_counter()
        float(step(*batches[i % len(batches)]))
        seconds.append(time.perf_counter() - begun)
        if max_seconds and len(seconds) >= 3:
            if time.perf_counter() - started > max_seconds:
                break
    return seconds


# --- one measurement in a process of its own, with a budget -----------------------


def isolated(function, config, budget_seconds=None, log=print, workdir=None):
    """`function(config, partial)` ("module:name") in a fresh Python process,
    its stdout lines to `log`; returns its values with `status` (ok, failed:
    `note` the error, over_budget: its process group killed at `budget_seconds`,
    the values `partial(values)` had saved kept) and `process_seconds`."""
    with tempfile.TemporaryDirectory(prefix="tfrnn-experiment-") as scratch:
        base = pathlib.Path(workdir or scratch) / uuid.uuid4().hex[:10]
        started = time.perf_counter()
        status, returncode = _spawn(function, config, budget_seconds, log, base)
        result = base.with_suffix(".json")
        values = json.loads(result.read_text()) if result.exists() else {}
        if status == "ok" and values.pop("_done", None) is not True:
            status = "failed"
        note = values.pop("_error", None)
        if status == "failed" and not note:
            tail = base.with_suffix(".stderr").read_text(errors="replace").strip()[-1500:]
            note = f"exit status {returncode}: {tail}"
    if status == "over_budget":
        note = f"killed at its budget of {budget_seconds:g} s"
    values.pop("_done", None)
    return {**values, "status": status, "note": note, "budget_seconds": budget_seconds,
            "process_seconds": time.perf_counter() - started}  # fmt: skip


def run_all(experiment, function, configs, budget, log, json_path, name=str, skip=None,
            stop_key=None):
    """Each of `configs` measured by `isolated(function, config, budget)`, its
    `Record` written to `json_path` as it comes; returns the flat records.

    `skip(config)`: None, or why it is not measured. Once one is over budget
    or fails, the later configs with the same values of `stop_key` (e.g. the
    larger T of a system and cell) are skipped. `name(config)` labels the log;
    the process's own lines are relayed to it, indented.
    """
    stopped, records = {}, []
    for number, config in enumerate(configs, 1):
        key = tuple(config[k] for k in stop_key or ())
        note = (skip(config) if skip else None) or (stopped.get(key) if stop_key else None)
        record = Record(experiment, config, status="skipped", note=note)
        if note is None:
            values = isolated(function, config, budget, lambda line: log("    " + line))
            record.status, record.note = values.pop("status"), values.pop("note")
            record.environment = values.pop("environment", None) or record.environment
            record.values = values
            if record.status != "ok":
                stopped[key] = f"{name(config)} was {record.status} (budget {budget} s)"
        records.append(record.flat())
        log(f"[{number}/{len(configs)}] {name(config)}: {summary(records[-1])}")
        write_json(json_path, records)
    return records


def summary(record, keys=("trace_seconds", "median_step_ms", "memory_bytes", "export_bytes")):
    """A record in one line: its status, or the `keys` it has."""
    if record["status"] != "ok":
        return f"{record['status']}: {record['note']}"
    return ", ".join(f"{label(k)} {fmt(record[k], k)}" for k in keys if record.get(k) is not None)


def rotate(names, by):
    """`names` rotated left by `by`: the order of round `by`."""
    by %= len(names)
    return list(names[by:]) + list(names[:by])


def interleaved_rounds(steps, rounds, steps_per_round, log=None):
    """`{name: [mean ms per call of each round]}` for the zero-argument
    callables `steps` (each returns a tensor; the last call's is read to wait
    for it), in rounds whose order rotates so that a slow minute of a shared
    machine reaches every one alike."""
    round_ms = {name: [] for name in steps}
    for index in range(rounds):
        for name in rotate(list(steps), index):
            started = time.perf_counter()
            for _ in range(steps_per_round):
                result = steps[name]()
            float(result)
            round_ms[name].append(1000.0 * (time.perf_counter() - started) / steps_per_round)
        if log:
            log(f"round {index + 1}/{rounds}: "
                + ", ".join(f"{n} {ms[-1]:.1f} ms" for n, ms in round_ms.items()))  # fmt: skip
    return round_ms


def _spawn(function, config, budget_seconds, log, base):
    """Runs the worker on `base.spec.json`, its stdout relayed to `log`;
    returns (ok / failed / over_budget, exit status)."""
    spec = {"function": function, "config": config, "result": str(base.with_suffix(".json"))}
    base.with_suffix(".spec.json").write_text(json.dumps(spec, default=str))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(base.with_suffix(".stderr"), "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "experiments.harness", str(base.with_suffix(".spec.json"))],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
            start_new_session=True,  # its own process group, killed as one
        )  # fmt: skip
        relay = threading.Thread(target=lambda: [log(x.rstrip("\n")) for x in process.stdout])
        relay.start()
        try:
            process.wait(timeout=budget_seconds)
            status = "ok" if process.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status = "over_budget"
        relay.join()
    return status, process.returncode


def _worker(spec_path):
    """The measurement's process: runs the spec's function, writes its values."""
    spec = json.loads(pathlib.Path(spec_path).read_text())
    module, name = spec["function"].split(":")
    function = getattr(importlib.import_module(module), name)
    values = {}

    def partial(more, done=False):
        values.update(more)
        text = json.dumps({**values, "_done": done}, default=_jsonable)
        _write_atomic(pathlib.Path(spec["result"]), text)

    try:
        partial(function(spec["config"], partial) or {}, done=True)
    except Exception as error:  # noqa: BLE001 (a failed measurement is a result)
        partial({"_error": first_line(error)})
        raise


def first_line(error, limit=300):
    """The informative line of an error: an assertion's message, else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    keys = ("assertion failed", "Can not cast", "incompatible", "built for")
    line = next((x for x in lines if any(k in x for k in keys)), lines[0])
    return f"{type(error).__name__}: {line}"[:limit]


# --- settings and the command line ------------------------------------------------


def settings(experiment, quick, given):
    """FULL (or QUICK over FULL) with the `given` values that are not None,
    checked: each value (or item of a list, one or more) of a key of
    `experiment.CHOICES` among its choices, each of POSITIVE > 0, then
    `experiment.check(s)`. A ValueError names the flag to fix."""
    chosen = {**experiment.FULL, **(experiment.QUICK if quick else {})}
    for key, value in given.items():
        default = experiment.FULL.get(key)
        if value is not None and isinstance(default, list) and default and isinstance(default[0], int):
            if not all(str(v).lstrip("-").isdigit() for v in value):
                raise ValueError(f"--{key}={','.join(map(str, value))}: give integers, "
                                 f"e.g. {','.join(map(str, default))}")  # fmt: skip
            value = [int(v) for v in value]
        chosen[key] = chosen[key] if value is None else value
    for key, allowed in getattr(experiment, "CHOICES", {}).items():
        if chosen[key] == [] and experiment.FULL[key]:  # FULL's []: all
            raise ValueError(f"--{key}: name one or more of {', '.join(allowed)}")
        for name in _items(chosen[key]):
            if name not in allowed:
                raise ValueError(f"--{key}: {name!r} is not one of {', '.join(allowed)}")
    for key in getattr(experiment, "POSITIVE", ()):
        if any(v is not None and v <= 0 for v in _items(chosen[key])):
            raise ValueError(f"--{key}={chosen[key]} must be > 0")
    getattr(experiment, "check", lambda s: None)(chosen)
    return chosen


def _items(value):
    return value if isinstance(value, list) else [value]


def check_divides_784(key, time_steps):
    """A ValueError naming `--key` unless each T of `time_steps` divides 784."""
    for t in _items(time_steps):
        if t <= 0 or PIXELS % t:
            raise ValueError(f"--{key}={t} must divide 784")


def result_paths(output, name, quick, *kinds):
    """`{kind: OUTPUT/NAME[-quick].KIND}`; a kind "png:STEM" names its own stem."""
    suffix = "-quick" if quick else ""
    paths = {}
    for kind in kinds or ("json", "md"):
        kind, _, stem = kind.partition(":")
        paths[kind] = pathlib.Path(output) / f"{stem or name}{suffix}.{kind}"
    return paths


def write_results(output, name, quick, records, text, log=print):
    """Writes `records` as JSON and `text` as Markdown; logs the Markdown."""
    paths = result_paths(output, name, quick)
    write_json(paths["json"], records)
    paths["md"].write_text(text)
    log(text)
    return paths


def define_flags(experiment):
    """A flag per key of `experiment.FULL`, typed by its value, default None."""
    from absl import flags

    module = {"module_name": sys.argv[0]}  # listed by --help
    quick = ", ".join(f"{k}={v}" for k, v in experiment.QUICK.items())
    flags.DEFINE_bool("quick", False, f"A small configuration: {quick}.", **module)
    text = "Results directory (quick: a new scratch directory; otherwise experiments/results)."
    flags.DEFINE_string("output", None, text, **module)
    for key, default in experiment.FULL.items():
        helps = getattr(experiment, "HELP", {}).get(key, key.replace("_", " "))
        text = f"{helps} (default {default!r})"
        sample = default if default is not None else experiment.QUICK.get(key)
        kinds = {bool: flags.DEFINE_bool, list: flags.DEFINE_list, float: flags.DEFINE_float}
        kinds[str] = flags.DEFINE_string  # None and int: an integer
        kinds.get(type(sample), flags.DEFINE_integer)(key, None, text, **module)


def main(experiment):
    """The command line of `experiment`: flags, settings, run, one closing line."""
    from absl import app, flags, logging

    define_flags(experiment)

    def run_main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        logging.set_verbosity(logging.WARNING)
        values = flags.FLAGS.flag_values_dict()
        quick = values["quick"]
        try:
            s = settings(experiment, quick, {k: values[k] for k in experiment.FULL})
        except ValueError as error:
            sys.exit(f"error: {error}")
        output = pathlib.Path(values["output"] or RESULTS)  # a quick run: a scratch directory
        if quick and not values["output"]:
            output = pathlib.Path(tempfile.mkdtemp(prefix=f"tfrnn-{experiment.NAME}-quick-"))
            print(f"quick run: results go to the scratch directory {output}")
        from tfrnn.training.cli import quiet_tensorflow

        quiet_tensorflow()  # no C++ start-up lines unless TF_CPP_MIN_LOG_LEVEL is set
        try:
            paths = experiment.run(s, output, quick, log=lambda x: print(x, flush=True))
        except KeyboardInterrupt:
            sys.exit(f"interrupted: the records measured so far are in {output}")
        print("wrote " + ", ".join(str(p) for p in paths.values()))

    app.run(run_main)


if __name__ == "__main__":
    _worker(sys.argv[1])
