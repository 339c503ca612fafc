"""What ran and how fast: environment, memory, the run report and its table."""

import datetime
import json
import os
import pathlib
import platform
import resource
import statistics
import tempfile

import keras
import numpy as np
import tensorflow as tf

import tfrnn
from tfrnn.errors import RunDirError


def environment():
    """Versions, device and date, for every record tfrnn writes."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    else:
        device = f"CPU: {cpu_name()} ({os.cpu_count()} cores)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "device": device,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "tfrnn": tfrnn.__version__,
    }


def cpu_name():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def target_fields(evaluations, target):
    """Report fields of the first evaluation at or above `target` (None if none)."""
    at = next((e for e in evaluations if e["test_accuracy"] >= target), None)
    return {
        "target_reached": at is not None,
        "seconds_to_target": at["seconds"] if at else None,
        "train_seconds_to_target": at["train_seconds"] if at else None,
        "step_seconds_to_target": at["step_seconds"] if at else None,
        "epochs_to_target": at["epoch"] if at else None,
    }


def peak_memory_bytes():
    """Peak GPU memory when there is a GPU, else the process's peak host RSS."""
    if tf.config.list_physical_devices("GPU"):
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    return host_peak_bytes()


def host_peak_bytes():
    """This process's peak resident memory: `VmHWM` in /proc/self/status.

    Not `getrusage(RUSAGE_SELF).ru_maxrss`: on Linux a process started from a
    Python parent keeps the parent's peak as its `ru_maxrss` across exec.
    `ru_maxrss` is the fallback where /proc is missing.
    """
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def median_ms(seconds):
    return 1000.0 * statistics.median(seconds) if seconds else None


def directory_bytes(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())


def write_json(path, record):
    """Writes `record` to `path` atomically (a reader never sees half a file)."""
    path = pathlib.Path(path)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp"
    ) as f:
        json.dump(record, f, indent=2, default=str)
        f.write("\n")
    os.chmod(f.name, 0o666 & ~_umask())  # as open() would: not the 0600 of tempfile
    os.replace(f.name, path)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_json(path, what_to_do):
    """The JSON object in `path`; `RunDirError` naming the file if it is damaged."""
    try:
        record = json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"{path} cannot be read ({error}): {what_to_do}") from None
    if not isinstance(record, dict):
        raise RunDirError(f"{path} holds no JSON object: {what_to_do}")
    return record


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


def summary_rows(report):
    """The rows of the short table printed at the end of a training run."""
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
            f"{run['mode']} / {run['cell']} x{run['layers']} ({run['units']} units)",
        ),
        ("kernel", report["kernel"]),
        ("XLA", report["xla"]),
        ("parameters", report["parameters"]),
        ("graph build (trace) s", timing["trace_seconds"]),
        ("first step s", timing["first_step_seconds"]),
        ("median step ms", timing["median_step_ms"]),
        ("examples/s", timing["examples_per_second"]),
        ("peak memory MiB", report["peak_memory_bytes"] / 2**20),
        ("evaluations", len(report["evaluations"])),
        ("last test accuracy", last.get("test_accuracy")),
        ("target", run["target_accuracy"]),
        ("seconds to target", report["seconds_to_target"]),
        ("epochs to target", report["epochs_to_target"]),
        ("exported bytes", report["export"]["bytes"] if report["export"] else None),
    ]
