"""Static versus dynamic unrolling, measured: each tutorial claim gets a number.

    python -m experiments.static_vs_dynamic --quick    # minutes: LSTM-32, T in {28, 56}
    python -m experiments.static_vs_dynamic            # LSTM/GRU/vanilla-128, T up to 784

Each (T, cell, system of `harness.build_model`) is one `measure` in its own process.
The claims, the method and the results: experiments/README.md.
"""

import statistics
import tempfile
import time

from experiments import harness

NAME = "static_vs_dynamic"
SYSTEMS = ("tfrnn_static", "tfrnn_dynamic", "keras_unroll", "keras_while", "keras_cudnn")
CELLS = ("lstm", "gru", "rnn")
SEQUENCE_VIEW = "mnist pixels in chunks: T steps of F = 784/T consecutive row-major pixels"
FULL = dict(
    systems=list(SYSTEMS), cells=list(CELLS), units=128, time_steps=[28, 56, 112, 196, 392, 784],
    batch_size=128, warmup_steps=3, timed_steps=30, max_timing_seconds=60.0, budget_seconds=600,
)  # fmt: skip
QUICK = dict(cells=["lstm"], units=32, time_steps=[28, 56], warmup_steps=1, timed_steps=5)
CHOICES = dict(cells=CELLS, systems=SYSTEMS)
name = "{system} {cell}-{units} T={T}".format_map  # a configuration in the log
PANELS = ("trace_seconds", "first_step_seconds", "graph_ops", "median_step_ms", "memory_bytes", "export_bytes")


def check(s):
    harness.check_divides_784("time_steps", s["time_steps"])


def measure(config, partial=lambda values: None):
    """The training step's trace seconds and graph ops, first and median step, memory, then
    `measure_export`; `partial` keeps each phase's values should the process be killed."""
    import keras
    import tensorflow as tf

    from tfrnn import graphs
    from tfrnn.tasks.classify import data

    keras.utils.set_random_seed(0)
    t, batch, arrays = config["T"], config["batch"], data.load_arrays("mnist")
    x_all = harness.chunked_pixels(arrays.x_train[: 4 * batch], t)
    batches = [(tf.constant(x_all[i : i + batch]), tf.constant(arrays.y_train[i : i + batch]))
               for i in range(0, 4 * batch, batch)]  # fmt: skip
    meter = harness.MemoryMeter()
    values = {"completed_phases": [], **meter.start()}

    def done(phase, **more):
        values.update(more, completed_phases=values["completed_phases"] + [phase])
        partial(values)

    model = harness.build_model(config["system"], config["cell"], config["units"], t, 784 // t,
                                config.get("unroll") or 1)  # fmt: skip
    step, started = harness.train_step(model), time.perf_counter()
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
    """SavedModel bytes and seconds; unless `config["phases"]` omits "other_length", whether
    it takes T/2 steps, and (tfrnn) forward ms with and without all states, Keras-way export."""
    import tensorflow as tf

    from tfrnn.tasks.classify import export
    from tfrnn.training.export import directory_bytes

    tfrnn, t = config["system"].startswith("tfrnn_"), config["T"]
    meta = dict(mode=config["system"][6:], cell=config["cell"], model="rnn", dataset="mnist",
                sequence="rows", time_steps=t, features=784 // t, num_classes=10,
                image_shape=[t, 784 // t], permutation_seed=0)  # fmt: skip
    keras_way = dict(format="tf_saved_model", verbose=False)  # one endpoint, `serve`
    with tempfile.TemporaryDirectory(prefix="tfrnn-svd-export-") as workdir:
        path, started = f"{workdir}/export", time.perf_counter()
        export.export(model, path, meta) if tfrnn else model.export(path, **keras_way)
        done("export", export_seconds=time.perf_counter() - started,
             export_bytes=directory_bytes(path))  # fmt: skip
        if "other_length" not in config.get("phases", ["other_length"]):
            return
        loaded = tf.saved_model.load(path)
        serve = loaded.classify_sequences if tfrnn else loaded.serve
        try:
            accepted = serve(tf.constant(x_all[:2, : t // 2])).shape == (2, 10)
            done("other_length", accepts_other_length=bool(accepted), other_length_error=None)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            done("other_length", accepts_other_length=False, other_length_error=harness.first_line(error))
        if tfrnn:
            done("forward", **forward_timings(model, tf.constant(x_all[: config["batch"]]), config))
            model.export(f"{workdir}/keras_way", **keras_way)
            done("keras_export", keras_export_bytes=directory_bytes(f"{workdir}/keras_way"))


def forward_timings(model, x, config):
    """Forward ms of the unroll alone, with and without every step's state."""
    import tensorflow as tf

    import tfrnn

    cell = next(layer for layer in model.layers if hasattr(layer, "cell")).cell
    unroll = tfrnn.static_rnn if config["system"] == "tfrnn_static" else tfrnn.dynamic_rnn
    result = {}
    for key, all_states in (("forward_ms", False), ("forward_all_states_ms", True)):
        forward = tf.function(lambda x, a=all_states: unroll(cell, x, return_all_states=a), autograph=False)
        # the first number of the result: waits for all of it without copying it to the host
        step = lambda x, y, f=forward: tf.reshape(tf.nest.flatten(f(x))[0], [-1])[0]  # noqa: E731
        seconds = harness.time_steps_of(step, [(x, None)], 1, max(3, config["timed_steps"] // 2))
        result[key] = 1000 * statistics.median(seconds)
    return result


def configurations(s):
    """Every (T, cell, system), smallest T first."""
    timing = {k: s[k] for k in ("warmup_steps", "timed_steps", "max_timing_seconds")}
    return [dict(system=system, cell=cell, units=s["units"], T=t, F=784 // t, batch=s["batch_size"],
                 sequence=SEQUENCE_VIEW, **timing)
            for t in sorted(s["time_steps"]) for cell in s["cells"] for system in s["systems"]]  # fmt: skip


def why_skipped(config):
    """keras_cudnn runs on a GPU only (TensorFlow is imported to look) and not SimpleRNN."""
    if config["system"] == "keras_cudnn":
        import tensorflow as tf

        return "no GPU visible (cuDNN runs only on a GPU)" if not tf.config.list_physical_devices("GPU") else (
            "Keras has no cuDNN SimpleRNN" if config["cell"] == "rnn" else None)  # fmt: skip


def run(s, output, quick, log=print):
    """Each configuration in its own process (one over budget skips the larger T)."""
    paths = harness.result_paths(output, NAME, quick, "json", "md", f"png:{NAME}_growth")
    records = harness.run_all(NAME, f"experiments.{NAME}:measure", configurations(s), s["budget_seconds"],
                              log, paths["json"], name=name, skip=why_skipped, stop_key=("system", "cell"))
    paths["md"].write_text(markdown(records, paths["png"].name))
    plot(records, paths["png"])
    return paths


def growth(records):
    """The growth records (not older results' time to accuracy), keras_loop read as keras_while."""
    rows = [{**r, "system": harness.ALIASES.get(r["system"], r["system"])}
            for r in records if r.get("measurement", "growth") == "growth"]  # fmt: skip
    return sorted(rows, key=lambda r: (CELLS.index(r["cell"]), SYSTEMS.index(r["system"]), r["T"]))


def verdict(holds, partly="depends (on T)"):
    """confirmed when every one of `holds` is true, refuted when none is."""
    return "not measured" if not holds else "confirmed" if all(holds) else (
        "refuted" if not any(holds) else partly)  # fmt: skip


def ratios(rows, cell, static, dynamic, key, larger=True):
    """(verdict, evidence) at the smallest and largest T with both systems: confirmed
    when every static / dynamic ratio is beyond 10 % (noise) in the claimed direction."""
    by = {(r["system"], r["T"]): r.get(key) for r in rows if r["cell"] == cell}
    found = [(t, by[static, t], by[dynamic, t]) for t in sorted({r["T"] for r in rows})
             if by.get((static, t)) is not None and by.get((dynamic, t))]  # fmt: skip
    found = found[:1] + found[1:][-1:]
    holds = [a / b >= 1.1 if larger else a / b <= 1 / 1.1 for _, a, b in found]
    return verdict(holds), "; ".join(f"T={t}: {harness.fmt(a, key, 3)} vs {harness.fmt(b, key, 3)} "
                                     f"{harness.METRICS[key].unit} (x{a / b:.3g})" for t, a, b in found) or "-"


CLAIMS = (  # (claim, key, static larger?)
    ("static takes longer to build (trace the training step)", "trace_seconds", True),
    ("static takes longer to build (graph ops)", "graph_ops", True),
    ("static takes longer to build (first step: optimise + run)", "first_step_seconds", True),
    ("static uses more memory (dynamic uses less)", "memory_bytes", True),
    ("static exports a larger model", "export_bytes", True),
    ("(implied) static runs each training step faster", "median_step_ms", False),
)
STATE = ("static carries every step's intermediate state; dynamic keeps only the final state",
         "depends (true of the graphs; tfrnn's dynamic_rnn returns every state on request)",
         "static's training graph grows with T (graph ops above); tfrnn.dynamic_rnn(return_all_states="
         "True) returns every step's state too, forward time with vs without: {}; Keras's RNN layers "
         "expose per-step outputs (return_sequences) but never per-step states.")  # fmt: skip
LENGTH_CLAIMS = (  # (claim, systems, accept T/2 steps?)
    ("static must be used with the sequence length it was trained on", ("tfrnn_static", "keras_unroll"), False),
    ("dynamic accepts other lengths", ("tfrnn_dynamic", "keras_while"), True),
)


def verdicts(records):
    """(claim, verdict, evidence) per claim, from the first cell measured: tfrnn static /
    dynamic at its smallest and largest T, Keras unroll=True / False beside."""
    rows, out = growth(records), []
    cell = rows[0]["cell"] if rows else CELLS[0]
    for claim, key, larger in CLAIMS:
        found, mine = ratios(rows, cell, "tfrnn_static", "tfrnn_dynamic", key, larger)
        keras = "({}): {}".format(*ratios(rows, cell, "keras_unroll", "keras_while", key, larger))
        evidence = f"{cell}, static vs dynamic, tfrnn: {mine}; Keras unroll=True vs False {keras}."
        out.append((claim, found, evidence))
    dyn = [r for r in rows if (r["system"], r["cell"]) == ("tfrnn_dynamic", cell) and r.get("forward_ms")]
    forward = ", ".join(f"T={r['T']}: {r['forward_all_states_ms']:.3g} vs {r['forward_ms']:.3g} ms"
                        for r in dyn[:1] + dyn[1:][-1:])  # fmt: skip
    out.append((STATE[0], STATE[1] if dyn else "not measured", STATE[2].format(forward or "-")))
    for claim, systems, want in LENGTH_CLAIMS:
        tried = [r for r in rows if r["system"] in systems and r.get("accepts_other_length") is not None]
        holds, names = [r["accepts_other_length"] == want for r in tried], {r["system"] for r in tried}
        error = next((r["other_length_error"] for r in tried if r.get("other_length_error")), None)
        text = (f"{sum(holds)} of {len(tried)} exported models ({', '.join(sorted(names))}) "
                f"{'accepted' if want else 'refused'} T/2 steps")  # fmt: skip
        text += f"; e.g. `{error[:160]}`." if error and not want else "."
        out.append((claim, verdict(holds, "depends"), text))
    return out


GROWTH_COLUMNS = (
    "system", "cell", "units", "T", "F", ("status", lambda r: r["status"] if r["status"] != "skipped"
    else f"skipped: {r.get('note') or r.get('reason')}"), "trace_seconds", "graph_ops",
    "first_step_seconds", "median_step_ms", "examples_per_second", "memory_bytes", "export_bytes",
    "export_seconds", "keras_export_bytes", ("accepts T/2", lambda r: r.get("accepts_other_length")),
    "forward_ms", "forward_all_states_ms")  # fmt: skip


def markdown(records, png_name):
    """The verdicts, then the growth table."""
    text = harness.header(
        "Static versus dynamic unrolling, measured", [r for r in records if r.get("status") == "ok"],
        f"Sequences: {SEQUENCE_VIEW}. Memory, exports, method: experiments/README.md. Timings on "
        "a shared machine are noisy: compare ratios, not digits.", "## Verdicts", "Ratios static / "
        "dynamic at the smallest and largest T measured for both, first cell measured; confirmed "
        "when every ratio is beyond 10 % in the claimed direction.")  # fmt: skip
    text += "\n".join(f"- **{c}**: {v}. {e}" for c, v, e in verdicts(records))
    text += f"\n\n![growth with T]({png_name})\n\n## Growth with T\n\n"
    return text + harness.table(growth(records), GROWTH_COLUMNS) + "\n"


def plot(records, path):
    """Each metric against T: a line per system (colour) and cell (line style)."""
    series = [(f"{system} ({cell})", [{**r, "x": r["T"]} for r in growth(records)
               if (r["system"], r["cell"]) == (system, cell)],
               dict(color=f"C{SYSTEMS.index(system)}", ls=("-", "--", ":")[CELLS.index(cell)]))
              for cell in CELLS for system in SYSTEMS]  # fmt: skip
    harness.plot(path, PANELS, series, "static versus dynamic: growth with T "
                 "(MNIST pixels, T steps of 784/T)", "T (sequence length)")  # fmt: skip


if __name__ == "__main__":
    harness.main(__import__(__name__))
