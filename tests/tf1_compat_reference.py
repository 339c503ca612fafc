"""TF1 runs the programs of `tests/tf1_programs.py` with its own `nn`.

    TF_USE_LEGACY_KERAS=1 python tests/tf1_compat_reference.py JOBS.json IN.npz OUT.npz

JOBS.json is a list of jobs, each run in a graph of its own:

    {"kind": "rnn", "name": N, "spec": {...}}          -> N/<result>
    {"kind": "tutorial", "name": N, "tutorial": "static"|"dynamic", "steps": S,
     "checkpoint": PATH or null, "target_accuracy": A}  -> N/<result>
    {"kind": "checkpoint", "name": N, "path": PATH}    -> N/<result>, PATH written
    {"kind": "signatures", "name": N}                  -> N/signature/<name>

IN.npz holds the MNIST subset of the tutorials (x_train, y_train, x_test,
y_test, labels one-hot). One process runs every job: each TF1 start costs
seconds.
"""

import json
import sys
import warnings

import tf1_reference  # noqa: F401 -- sets TF_USE_LEGACY_KERAS before tensorflow

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf1_programs  # noqa: E402


def run_job(job, arrays):
    nn = tf.compat.v1.nn
    if job["kind"] == "rnn":
        return tf1_programs.rnn_case(nn, job["name"], job["spec"])
    if job["kind"] == "tutorial":
        return tf1_programs.train_tutorial(
            nn, job["tutorial"], arrays, job["steps"], job.get("checkpoint"),
            job.get("target_accuracy", 0.90),
        )
    if job["kind"] == "signatures":
        return tf1_programs.signatures(nn)
    if job["kind"] == "checkpoint":
        return tf1_programs.checkpoint_program(nn, job["path"], save=True)
    raise ValueError(f"unknown job kind {job['kind']!r}")


def main(jobs_path, in_path, out_path):
    tf.compat.v1.disable_v2_behavior()  # graph mode, TF1's control flow
    tf.get_logger().setLevel("ERROR")
    warnings.simplefilter("ignore")
    with open(jobs_path) as f:
        jobs = json.load(f)
    with np.load(in_path) as data:
        arrays = tuple(data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    results = {}
    for job in jobs:
        for key, value in run_job(job, arrays).items():
            results[f"{job['name']}/{key}"] = value
    np.savez(out_path, **results)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} JOBS.json IN.npz OUT.npz")
    main(*sys.argv[1:])
