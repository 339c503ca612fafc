"""The machine a run is measured on: its device and memory, without importing TensorFlow.

One reader for tfrnn's run report and for the experiments' harness, whose
PyTorch worker loads no TensorFlow: TensorFlow is consulted only when it is
already imported.
"""

import os
import pathlib
import platform
import resource
import sys


def rss_bytes(field="VmRSS"):
    """This process's resident set (`VmRSS`) or its high-water mark (`VmHWM`).

    Not `getrusage(RUSAGE_SELF).ru_maxrss` for the peak: on Linux a process
    started from a Python parent keeps the parent's peak as its `ru_maxrss`
    across exec. `ru_maxrss` is the fallback where /proc is missing.
    """
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _gpus():
    tf = sys.modules.get("tensorflow")
    return tf.config.list_physical_devices("GPU") if tf is not None else []


def peak_memory_bytes():
    """The GPU allocator's peak when TensorFlow sees a GPU, else the peak RSS (`VmHWM`)."""
    if _gpus():
        tf = sys.modules["tensorflow"]
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    return rss_bytes("VmHWM")


def cpu_name():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device():
    """`N x GPU name` when TensorFlow sees a GPU, else `CPU: name (N cores)`."""
    gpus = _gpus()
    if gpus:
        tf = sys.modules["tensorflow"]
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
        return f"{len(gpus)} x {name or 'GPU'}"
    return f"CPU: {cpu_name()} ({os.cpu_count()} cores)"
