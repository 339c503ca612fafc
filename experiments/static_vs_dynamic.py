"""Static versus dynamic unrolling, measured: each tutorial claim gets a number.

    python -m experiments.static_vs_dynamic --quick          # minutes: LSTM-32, T in {28, 56}
    python -m experiments.static_vs_dynamic                  # LSTM/GRU/vanilla-128, T up to 784

The claim: "the static network takes longer to build, uses more memory, exports
a larger model, carries every step's state, and must be used with the length it
was trained on; the dynamic one uses less memory, keeps only the final state and
accepts other lengths." Systems (`harness.build_model`): tfrnn_static,
tfrnn_dynamic, keras_unroll, keras_while (keras_loop in older results),
keras_cudnn (a GPU only), on MNIST as T chunks of 784/T pixels. Each
configuration runs in its own process with `--budget_seconds` (one over budget
skips the larger T of its system and cell): trace seconds and graph ops of the
training step, first step, median step, memory (`harness.MemoryMeter`),
SavedModel bytes, whether the export takes T/2 steps, and (tfrnn) forward ms
with and without `return_all_states`. Then LSTMs trained to the target.
"""

import statistics
import tempfile
import time

from experiments import harness

NAME = "static_vs_dynamic"
SYSTEMS = ("tfrnn_static", "tfrnn_dynamic", "keras_unroll", "keras_while", "keras_cudnn")
STATIC_SYSTEMS = ("tfrnn_static", "keras_unroll")
CELLS = ("lstm", "gru", "rnn")
SEQUENCE_VIEW = "mnist pixels in chunks: T steps of F = 784/T consecutive row-major pixels"
MEMORY_DEFINITION = (
    "CPU: peak RSS (VmHWM, reset just before the model is built) after the timed steps "
    "minus RSS just before the build, in the configuration's own process; GPU: "
    "allocator peak minus use before the build"
)
EXPORT_METHODS = {
    "tfrnn": "tfrnn.export.export: tf.saved_model.save of a tf.Module with signatures "
    "classify_images (uint8 T x F images) and classify_sequences",
    "keras": "keras.Model.export(format='tf_saved_model'): one endpoint 'serve'",
}
FULL = dict(
    systems=list(SYSTEMS), cells=list(CELLS), units=128, time_steps=[28, 56, 112, 196, 392, 784],
    batch_size=128, warmup_steps=3, timed_steps=30, max_timing_seconds=60.0,
    budget_seconds=600, accuracy=True, accuracy_budget_seconds=3600, accuracy_units=128,
    accuracy_target=0.98, accuracy_max_epochs=20, accuracy_train_examples=None,
    accuracy_test_examples=None, accuracy_learning_rate=1e-3,
)  # fmt: skip
QUICK = dict(cells=["lstm"], units=32, time_steps=[28, 56], warmup_steps=1, timed_steps=5)
QUICK.update(accuracy_units=32, accuracy_target=0.4, accuracy_max_epochs=2)
QUICK.update(accuracy_train_examples=2048, accuracy_test_examples=512, accuracy_learning_rate=5e-3)
HELP = dict(time_steps="T values, each dividing 784", budget_seconds="Wall-clock budget "
            "of one configuration's process", accuracy="Also train LSTMs to the target")  # fmt: skip


CHOICES = dict(cells=CELLS, systems=SYSTEMS)


def check(s):
    s["time_steps"] = sorted(s["time_steps"])
    harness.check_divides_784("time_steps", s["time_steps"])


# --- one configuration, in its own process ---------------------------------------


def measure(config, partial=lambda values: None):
    """Measures one growth configuration (`config["phases"]`: which, all by
    default); `partial` keeps each phase's values should the process be killed."""
    import keras
    import tensorflow as tf

    from tfrnn import data, graphs

    keras.utils.set_random_seed(0)
    t, batch = config["T"], config["batch"]
    arrays = data.load_arrays("mnist")
    x_all = harness.chunked_pixels(arrays.x_train[: 4 * batch], t)
    batches = [(tf.constant(x_all[i * batch : (i + 1) * batch]),
                tf.constant(arrays.y_train[i * batch : (i + 1) * batch])) for i in range(4)]  # fmt: skip
    meter, values = harness.MemoryMeter(), {"completed_phases": []}

    def done(phase, **more):
        values.update(more)
        values["completed_phases"].append(phase)
        partial(values)

    values.update(meter.start())
    model = harness.build_model(config["system"], config["cell"], config["units"], t, 784 // t,
                                config.get("unroll") or 1)  # fmt: skip
    step = harness.train_step(model)
    started = time.perf_counter()
    concrete = step.get_concrete_function(*batches[0])
    done("build", trace_seconds=time.perf_counter() - started, graph_ops=graphs.count_ops(concrete),
         parameters=int(model.count_params()))  # fmt: skip
    started = time.perf_counter()
    float(step(*batches[0]))
    done("first_step", first_step_seconds=time.perf_counter() - started)
    seconds = harness.time_steps_of(step, batches, config["warmup_steps"], config["timed_steps"],
                                    config["max_timing_seconds"])  # fmt: skip
    median = statistics.median(seconds)
    done("steps", steps_timed=len(seconds), median_step_ms=1000 * median,
         examples_per_second=batch / median, **meter.stop())  # fmt: skip
    measure_export(model, config, x_all, done)
    return values


def measure_export(model, config, x_all, done):
    """SavedModel bytes and seconds, whether it takes T/2 steps; tfrnn: forward
    ms with and without every step's state, and the Keras way of exporting."""
    import tensorflow as tf

    from tfrnn import export, report

    family, t = "tfrnn" if config["system"].startswith("tfrnn_") else "keras", config["T"]
    with tempfile.TemporaryDirectory(prefix="tfrnn-svd-export-") as workdir:
        started, path = time.perf_counter(), f"{workdir}/export"
        if family == "tfrnn":
            meta = dict(mode=config["system"][6:], cell=config["cell"], model="rnn", dataset="mnist",
                        sequence="rows", time_steps=t, features=784 // t, num_classes=10,
                        image_shape=[t, 784 // t], permutation_seed=0)  # fmt: skip
            export.export(model, path, meta)
        else:
            model.export(path, format="tf_saved_model", verbose=False)
        done("export", export_seconds=time.perf_counter() - started,
             export_bytes=report.directory_bytes(path), export_method=EXPORT_METHODS[family])
        if "other_length" not in config.get("phases", ["other_length"]):
            return
        started, loaded = time.perf_counter(), tf.saved_model.load(path)
        serve = loaded.classify_sequences if family == "tfrnn" else loaded.serve
        other = {"other_length_T": t // 2, "export_load_seconds": time.perf_counter() - started}
        try:
            accepted = serve(tf.constant(x_all[:2, : t // 2])).shape == (2, 10)
            other.update(accepts_other_length=bool(accepted), other_length_error=None)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            other.update(accepts_other_length=False, other_length_error=harness.first_line(error))
        done("other_length", **other)
        if family == "tfrnn":
            done("forward", **forward_timings(model, tf.constant(x_all[: config["batch"]]), config))
            started = time.perf_counter()
            model.export(f"{workdir}/keras_export", format="tf_saved_model", verbose=False)
            done("keras_export", keras_export_seconds=time.perf_counter() - started,
                 keras_export_bytes=report.directory_bytes(f"{workdir}/keras_export"))  # fmt: skip


def forward_timings(model, x, config):
    """Forward ms of the unroll alone, with and without every step's state."""
    import tensorflow as tf

    import tfrnn

    cell = next(layer for layer in model.layers if hasattr(layer, "cell")).cell
    unroll = tfrnn.static_rnn if config["system"] == "tfrnn_static" else tfrnn.dynamic_rnn
    result = {}
    for key, all_states in (("forward_ms", False), ("forward_all_states_ms", True)):
        forward = lambda x, a=all_states: unroll(cell, x, return_all_states=a)  # noqa: E731
        function = tf.function(forward, autograph=False)
        # waits for every result without copying it to the host
        step = lambda x, y: tf.reshape(tf.nest.flatten(function(x))[0], [-1])[0]  # noqa: E731
        seconds = harness.time_steps_of(step, [(x, None)], 1, max(3, config["timed_steps"] // 2))
        result[key] = 1000 * statistics.median(seconds)
    return result


def train_to_accuracy(config, partial=None):
    """One time-to-accuracy run of `tfrnn.loop.train`; returns its values."""
    values = harness.train_tfrnn(
        lambda line: print(line, flush=True), mode=config["system"][6:], cell="lstm",
        units=config["units"], batch_size=config["batch"], learning_rate=config["learning_rate"],
        clip_norm=1.0, schedule="constant", target_accuracy=config["target_accuracy"],
        max_epochs=config["max_epochs"], train_examples=config["train_examples"],
        test_examples=config["test_examples"],
    )  # fmt: skip
    return {**values, "export_method": EXPORT_METHODS["tfrnn"]}


# --- the experiment: one process per configuration ---------------------------------


def configurations(s):
    """Every growth (T, cell, system) to measure, smallest T first; then the
    time-to-accuracy runs (LSTM, MNIST rows)."""
    timing = {k: s[k] for k in ("warmup_steps", "timed_steps", "max_timing_seconds")}
    growth = [dict(measurement="growth", system=system, cell=cell, units=s["units"], T=t,
                   F=784 // t, batch=s["batch_size"], sequence=SEQUENCE_VIEW, **timing)
              for t in s["time_steps"] for cell in s["cells"] for system in s["systems"]]  # fmt: skip
    training = {k: s[f"accuracy_{k}"] for k in ("train_examples", "test_examples", "learning_rate")}
    accuracy = [dict(measurement="accuracy", system=system, cell="lstm", units=s["accuracy_units"],
                     T=28, F=28, batch=s["batch_size"], sequence="mnist rows",
                     target_accuracy=s["accuracy_target"], max_epochs=s["accuracy_max_epochs"],
                     **training) for system in s["systems"]]  # fmt: skip
    return growth + (accuracy if s["accuracy"] else [])


def why_skipped(config, gpu, stopped):
    """None when `config` is to be measured, else why not."""
    if config["system"] == "keras_cudnn" and not gpu:
        return "no GPU visible (cuDNN runs only on a GPU)"
    if config["system"] == "keras_cudnn" and config["cell"] == "rnn":
        return "Keras has no cuDNN SimpleRNN"
    if config["measurement"] == "accuracy" and not config["system"].startswith("tfrnn_"):
        return "measured by experiments/bench.py (baselines.train_keras), not here"
    return stopped.get((config["system"], config["cell"], config["measurement"]))


def measure_all(experiment, configs, budgets, log, paths, stop_key=("system", "cell", "measurement")):
    """Each config in its own process, the next configs with the same `stop_key`
    values (larger T) skipped once one is over budget or fails; the records,
    written to `paths["json"]` as they come."""
    import tensorflow as tf

    gpu, stopped, records = bool(tf.config.list_physical_devices("GPU")), {}, []
    for config in configs:
        key = tuple(config[k] for k in stop_key)
        label = "{measurement} {system} {cell}-{units} T={T}".format(**config)
        label += f" unroll={config['unroll']}" if config.get("unroll") else ""
        note = why_skipped(config, gpu, stopped)
        record = harness.Record(experiment, config, status="skipped", note=note)
        if note is None:
            name = "train_to_accuracy" if config["measurement"] == "accuracy" else "measure"
            budget = budgets[config["measurement"]]
            function = f"experiments.static_vs_dynamic:{name}"
            values = harness.isolated(function, config, budget, lambda line: None)
            record.status, record.note = values.pop("status"), values.pop("note")
            record.environment = values.pop("environment", None) or record.environment
            record.values = values
            if record.status != "ok":
                stopped[key] = f"T={config['T']} was {record.status} (budget {budget} s)"
        records.append(record.flat())
        log(f"{label}: {summary(records[-1])}")
        harness.write_json(paths["json"], records)
    return records


def summary(record):
    if record["status"] != "ok":
        return f"{record['status']}: {record['note']}"
    if record["measurement"] == "accuracy":
        return f"{harness.fmt(record['seconds_to_target'])} s to {record['target_accuracy']}"
    keys = ("trace_seconds", "graph_ops", "median_step_ms", "memory_bytes", "export_bytes")
    return ", ".join(f"{harness.label(k)} {harness.fmt(record.get(k), k)}" for k in keys)


def run(s, output, quick, log=print):
    paths = harness.result_paths(output, NAME, quick, "json", "md", f"png:{NAME}_growth")
    budgets = {"growth": s["budget_seconds"], "accuracy": s["accuracy_budget_seconds"]}
    records = measure_all(NAME, configurations(s), budgets, log, paths)
    write_reports(records, paths)
    return paths


# --- verdicts, tables, plot ---------------------------------------------------------


def growth(records):
    """The growth records, keras_loop read as keras_while, by cell, system, T."""
    rows = [{**r, "system": harness.ALIASES.get(r["system"], r["system"])}
            for r in records if r.get("measurement") == "growth"]  # fmt: skip
    order = lambda r: (CELLS.index(r["cell"]), SYSTEMS.index(r["system"]), r["T"])  # noqa: E731
    return sorted(rows, key=order)


def pairs(rows, cell, static, dynamic, key):
    """(T, static value, dynamic value) at the smallest and largest T with both."""
    by = {(r["system"], r["T"]): r.get(key) for r in rows if r["cell"] == cell}
    both = [(t, by[static, t], by[dynamic, t]) for t in sorted({r["T"] for r in rows})
            if by.get((static, t)) is not None and by.get((dynamic, t))]  # fmt: skip
    return both[:1] + both[-1:] if len(both) > 1 else both


def ratio_text(found, key):
    metric = harness.METRICS[key]
    return "; ".join(f"T={t}: {harness.fmt(a, key, 3)} vs {harness.fmt(b, key, 3)} "
                     f"{metric.unit} (x{a / b:.3g})" for t, a, b in found)  # fmt: skip


def verdict(found, larger=True, threshold=1.1):
    """confirmed when every static/dynamic ratio is beyond 10 % (noise) in the
    claimed direction, refuted when none is, depends (on T) otherwise."""
    holds = [a / b >= threshold if larger else a / b <= 1 / threshold for _, a, b in found]
    return "not measured" if not holds else "confirmed" if all(holds) else (
        "refuted" if not any(holds) else "depends (on T)")  # fmt: skip


CLAIMS = (  # (claim, key, static larger?)
    ("static takes longer to build (trace the training step)", "trace_seconds", True),
    ("static takes longer to build (graph ops)", "graph_ops", True),
    ("static takes longer to build (first step: optimise + run)", "first_step_seconds", True),
    ("static uses more memory (dynamic uses less)", "memory_bytes", True),
    ("static exports a larger model", "export_bytes", True),
    ("(implied) static runs each training step faster", "median_step_ms", False),
)


LENGTH_CLAIMS = (  # (claim, systems, accept T/2 steps?)
    ("static must be used with the sequence length it was trained on", STATIC_SYSTEMS, False),
    ("dynamic accepts other lengths", ("tfrnn_dynamic", "keras_while"), True),
)


def verdicts(records):
    """(claim, verdict, evidence) for each claim, from the growth records of the
    first cell measured: tfrnn static / dynamic, Keras unroll=True / False beside."""
    rows = growth(records)
    if not rows:
        return [("all claims", "not measured", "no growth records")]
    cell, out = rows[0]["cell"], []
    for claim, key, larger in CLAIMS:
        mine = pairs(rows, cell, "tfrnn_static", "tfrnn_dynamic", key)
        keras = pairs(rows, cell, "keras_unroll", "keras_while", key)
        evidence = f"{cell}, static vs dynamic, tfrnn: {ratio_text(mine, key) or '-'}"
        if keras:
            evidence += f"; Keras unroll=True vs False ({verdict(keras, larger)}): "
            evidence += ratio_text(keras, key)
        out.append((claim, verdict(mine, larger), evidence + "."))
    out.append(state_verdict(rows, cell))
    for claim, systems, want in LENGTH_CLAIMS:
        tried = [r for r in rows if r["system"] in systems and r.get("accepts_other_length") is not None]
        agree = [r for r in tried if r["accepts_other_length"] == want]
        found = "not measured" if not tried else "confirmed" if len(agree) == len(tried) else (
            "refuted" if not agree else "depends")  # fmt: skip
        names = ", ".join(sorted({r["system"] for r in tried}))
        evidence = f"{len(agree)} of {len(tried)} exported models ({names}) "
        evidence += f"{'accepted' if want else 'refused'} T/2 steps"
        error = next((r["other_length_error"] for r in tried if r.get("other_length_error")), None)
        out.append((claim, found, evidence + (f"; e.g. `{error[:160]}`." if error and not want else ".")))
    return out


def state_verdict(rows, cell):
    """Every step's state: static's graph holds it; tfrnn's dynamic returns it on request."""
    evidence = ["tfrnn.static_rnn's list form returns every step's output and state as a tensor "
                "of its own (experiments/gradient_flow.py differentiates the loss with respect to them)"]
    ops = pairs(rows, cell, "tfrnn_static", "tfrnn_dynamic", "graph_ops")
    if len(ops) == 2 and ops[1][0] > ops[0][0]:
        (t0, s0, d0), (t1, s1, d1) = ops
        evidence.append(f"the static training graph grows by {(s1 - s0) / (t1 - t0):.0f} ops per step, "
                        f"the dynamic one by {(d1 - d0) / (t1 - t0):.2g}")  # fmt: skip
    dyn = [r for r in rows if (r["system"], r["cell"]) == ("tfrnn_dynamic", cell) and r.get("forward_ms")]
    if dyn:
        evidence.append("tfrnn.dynamic_rnn(return_all_states=True) returns every step's state too, "
                        "forward time " + ", ".join(f"T={r['T']}: {r['forward_all_states_ms']:.3g} vs "
                        f"{r['forward_ms']:.3g} ms" for r in dyn[:1] + dyn[1:][-1:]))  # fmt: skip
    evidence.append("Keras's RNN layers expose per-step outputs (return_sequences) but never "
                    "per-step states")
    found = ("depends (true of the graphs; tfrnn's dynamic_rnn returns every state on request)"
             if dyn else "not measured")  # fmt: skip
    claim = "static carries every step's intermediate state; dynamic keeps only the final state"
    return claim, found, "; ".join(evidence) + "."


GROWTH_COLUMNS = (
    "system", "cell", "units", "T", "F", ("status", lambda r: r["status"] if r["status"] != "skipped"
    else f"skipped: {r.get('note') or r.get('reason')}"), "trace_seconds", "graph_ops",
    "first_step_seconds", "median_step_ms", "examples_per_second", "memory_bytes", "export_bytes",
    "export_seconds", "keras_export_bytes", ("accepts T/2", lambda r: r.get("accepts_other_length")),
    "forward_ms", "forward_all_states_ms",
)  # fmt: skip
ACCURACY_COLUMNS = ("system", "units", ("target", lambda r: r["target_accuracy"]), "status",
                    "seconds_to_target", "train_seconds_to_target", "epochs_to_target",
                    "final_test_accuracy", "median_step_ms", "trace_seconds")  # fmt: skip


def markdown(records, png_name):
    accuracy = [r for r in records if r.get("measurement") == "accuracy"]
    text = harness.header(
        "Static versus dynamic unrolling, measured", [r for r in records if r.get("status") == "ok"],
        "Timings on a shared machine are noisy: compare ratios, not digits.",
        f"- Sequences: {SEQUENCE_VIEW} (T=28 is the rows view, T=784 the pixels view).\n"
        f"- Memory: {MEMORY_DEFINITION}.\n- Export: tfrnn models with {EXPORT_METHODS['tfrnn']}; "
        f"Keras references with {EXPORT_METHODS['keras']}. The Keras-way export exports the "
        "tfrnn models the Keras way too, like for like.\n- Build: seconds to trace the training "
        "step (forward, gradients, Adam update; `tf.function(autograph=False)`); ops in its graph, "
        "while-loop bodies included; first step: graph optimisation + run.",
        "## Verdicts", "Ratios static / dynamic at the smallest and largest T measured for both, "
        "first cell measured; confirmed when every ratio is beyond 10 % in the claimed direction.",
    )  # fmt: skip
    text += "\n".join(f"- **{c}**: {v}. {e}" for c, v, e in verdicts(records))
    text += f"\n\n![growth with T]({png_name})\n\n## Growth with T\n\n"
    text += harness.table(growth(records), GROWTH_COLUMNS) + "\n"
    if accuracy:
        text += "\n## Time to accuracy (LSTM, MNIST rows, T=28, `tfrnn.loop.train`)\n\n"
        text += harness.table(accuracy, ACCURACY_COLUMNS) + "\n"
    return text


def write_reports(records, paths):
    paths["md"].write_text(markdown(records, paths["png"].name))
    rows = growth(records)
    colors = dict(zip(SYSTEMS, ("tab:red", "tab:blue", "tab:orange", "tab:cyan", "tab:green")))
    series = []
    for cell in CELLS:
        for system in SYSTEMS:
            points = [{**r, "x": r["T"]} for r in rows if (r["system"], r["cell"]) == (system, cell)]
            style = dict(color=colors[system], ls=("-", "--", ":")[CELLS.index(cell)])
            series.append((f"{system} ({cell})", points, style))
    panels = ("trace_seconds", "first_step_seconds", "graph_ops", "median_step_ms", "memory_bytes")
    panels += ("export_bytes",)
    harness.plot(paths["png"], panels, series, "static versus dynamic: growth with T "
                 "(MNIST pixels, T steps of 784/T)", "T (sequence length)")  # fmt: skip


if __name__ == "__main__":
    harness.main(__import__(__name__))
