"""What ran and how fast: environment, memory, the run report and its table."""

import datetime
import platform

import keras
import numpy as np
import tensorflow as tf

import tfrnn
from tfrnn.training import machine
from tfrnn.training import models
from tfrnn.training.clock import target_fields


def environment():
    """Versions, device and date, for every record tfrnn writes."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "device": machine.device(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "tfrnn": tfrnn.__version__,
    }


def run_report(
    config, clock, task, model, *, trace_seconds, xla, threads, replicas, exported
):
    """The report of a training run (report.json): what ran, how fast, and
    the evaluations of `clock` (a `tfrnn.training.clock.Clock`), with the
    task's own fields (`Task.report_fields`). Kernel, unroll, precision, XLA
    and threads are read from the model, the traced step and TensorFlow, not
    from `config`."""
    timing = clock.result(task.examples_per_step)  # per second: the task's unit
    return {
        "environment": environment(),
        "run": config.as_dict(),
        "kernel": kernel_name(config.cell, model),
        "unroll": unroll_ran(model, task.time_steps),
        "xla": xla,
        "precision": models.recurrent_layers(model)[0].cell.dtype_policy.name,
        "threads": threads,
        "replicas": replicas,
        "parameters": models.count_parameters(model),
        **task.report_fields(clock.evaluations),
        "timing": {
            "trace_seconds": trace_seconds,
            **{
                key: timing[key]
                for key in (
                    "first_step_seconds",
                    "median_step_ms",
                    "examples_per_second",
                    "step_seconds",
                    "eval_seconds",
                    "steps_timed",
                )
            },
        },
        "peak_memory_bytes": machine.peak_memory_bytes(),
        "evaluations": clock.evaluations,
        **target_fields(clock.evaluations, task.target),
        "export": exported,
    }


def kernel_name(cell, model):
    """The recurrence kernel that runs in `model` (of `cell` cells), as its
    `tfrnn.RNN` layers say: "fused: ..." (`tfrnn.fused`, whole-sequence) or
    "generic: ..." (the cell's own step), then how the loop runs."""
    layers = models.recurrent_layers(model)
    both_ways = ", bidirectional" if len(layers) == 2 else ""
    unroll = layers[0].unroll
    if unroll == "static":
        return f"generic: unrolled ({cell} cell, one copy per step{both_ways})"
    kernel = {"fused": "fused: whole-sequence kernel,", "generic": "generic:"}[
        layers[0].kernel_ran
    ]
    if unroll == "dynamic":
        return f"{kernel} tf.while_loop ({cell} cell{both_ways})"
    return (
        f"{kernel} tf.while_loop, {unroll} steps unrolled per iteration "
        f"({cell} cell{both_ways})"
    )


def unroll_ran(model, time_steps):
    """Steps per while-loop iteration of the model's `tfrnn.RNN` layers, read
    from the layers themselves: k, 1 for "dynamic", T for "static"."""
    (unroll,) = {layer.unroll for layer in models.recurrent_layers(model)}
    if unroll == "static":
        return time_steps
    return 1 if unroll == "dynamic" else unroll


def table(rows):
    """A two-column Markdown table of `(name, value)` rows."""
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'':{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:{width}} | {_format(value)} |" for name, value in rows]
    return "\n".join(lines)


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _unroll_text(report):
    k = report.get("unroll")
    if report["run"]["mode"] == "static":
        return f"{k} = T (static)"
    return f"{k} (while loop)"


def _threads_text(threads):
    if not threads:
        return None
    return " / ".join(
        str(threads[pool] or "TF default") for pool in ("intra_op", "inter_op")
    )


def summary_rows(report, task):
    """The rows of the short table printed at the end of a training run:
    what ran, how fast, and the target of `task` (its own rows after
    "parameters")."""
    target = task.target
    run, timing = report["run"], report["timing"]
    last = report["evaluations"][-1] if report["evaluations"] else {}
    return [
        ("device", report["environment"]["device"]),
        (
            "tensorflow / keras",
            f"{report['environment']['tensorflow']} / {report['environment']['keras']}",
        ),
        (
            "mode / cell",
            f"{run['mode']} / {run['cell']} x{run['layers']} ({run['units']} units)"
            + (", bidirectional" if run.get("bidirectional") else ""),
        ),
        ("kernel", report["kernel"]),
        ("unroll (steps per iteration)", _unroll_text(report)),
        ("XLA", report["xla"]),
        ("precision", report.get("precision")),
        ("threads intra / inter op", _threads_text(report.get("threads"))),
        ("parameters", report["parameters"]),
        *task.summary_rows(report),
        ("graph build (trace) s", timing["trace_seconds"]),
        ("first step s", timing["first_step_seconds"]),
        ("median step ms", timing["median_step_ms"]),
        (f"{task.unit}/s", timing["examples_per_second"]),
        ("peak memory MiB", report["peak_memory_bytes"] / 2**20),
        ("evaluations", len(report["evaluations"])),
        (f"last {target.metric.replace('_', ' ')}", last.get(target.metric)),
        ("target", target.value),
        ("seconds to target", report["seconds_to_target"]),
        ("epochs to target", report["epochs_to_target"]),
        ("exported bytes", report["export"]["bytes"] if report["export"] else None),
        (
            "model.keras bytes",
            report["export"]["keras"]["bytes"] if report["export"] else None,
        ),
    ]
