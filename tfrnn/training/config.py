"""A training run's configuration: the fields every task shares, their
choices, help and checks.

Each task's `Config` subclasses `RunConfig` with its own fields (its data,
its target): one flat dataclass per task, one flag per field, one
config.json. No TensorFlow here: the CLIs read their flags' defaults,
choices and help from these classes before anything heavy is imported
(`python -m tfrnn.train --help` answers at once).
"""

import dataclasses
import os

from tfrnn.training.errors import ConfigError

COSINE_FLOOR = 0.1  # the cosine schedule ends at this fraction of the rate
# Thread pools of 1 thread per op, 2 ops at once made the training step faster
# (x0.72) on a 2-core CPU, the only one measured (experiments/results/fast_path.md):
# the default up to that many cores, TensorFlow's own choice (0, 0) above.
MEASURED_CORES = 2


def default_threads(cores):
    """`(intra_op, inter_op)` threads by default on a machine of `cores` cores."""
    return (1, 2) if cores <= MEASURED_CORES else (0, 0)


_THREADS = default_threads(os.cpu_count() or 1)

# --optimizer=adadelta: PyTorch's torch.optim.Adadelta defaults (Keras's: 0.95, 1e-7).
ADADELTA_RHO, ADADELTA_EPSILON = 0.9, 1e-6


@dataclasses.dataclass
class RunConfig:
    """What every task's run has: the recurrence, the optimizer, the schedule
    of steps, evaluations and checkpoints, the run directory and the runtime."""

    task: str = None  # each task's Config sets its name
    mode: str = "dynamic"
    unroll: int = 1  # dynamic: steps per while-loop iteration (static is k = T)
    kernel: str = "auto"  # dynamic: the recurrence's kernel (tfrnn.fused)
    cell: str = "lstm"
    units: int = 128
    layers: int = 1
    # The recipe: the fastest to the default target of the recipe sweep (`python -m
    # experiments.bench --recipes=sweep`, experiments/results/recipe_sweep.md): Adam 1e-2,
    # clipped to global norm 1, decayed to 1e-3 over 2 epochs of batch 256.
    batch_size: int = 256
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    clip_norm: float = 1.0
    schedule: str = "cosine"  # or "constant"
    decay_epochs: float = 2.0  # cosine: to learning_rate * COSINE_FLOOR
    max_epochs: int = 20
    eval_every_steps: int = 100
    checkpoint_every_steps: int = 100
    log_every_steps: int = 25
    model_dir: str = "runs/default"
    seed: int = 0
    # The fast path, measured on a 2-core CPU (experiments/results/fast_path.md;
    # rerun with `python -m experiments.steps`, see experiments/README.md):
    # TensorFlow's thread pools at 1 thread per op, 2 ops at once (0: TensorFlow's
    # choice) made the training step faster, the default up to MEASURED_CORES
    # cores; XLA, unroll=k and mixed_bfloat16 did not, so they stay off.
    jit_compile: bool = False
    precision: str = "float32"  # or "mixed_bfloat16": bfloat16 computations
    intra_op_threads: int = _THREADS[0]  # set before TensorFlow starts (runtime.set_threads)
    inter_op_threads: int = _THREADS[1]
    strategy: str = "default"
    worker_timeout: int = 300  # seconds a multi-worker run waits for TF_CONFIG's workers
    deterministic: bool = True

    CHOICES = {
        "mode": ("static", "dynamic"),
        "kernel": ("auto", "fused", "generic"),
        "cell": ("rnn", "gru", "lstm", "peephole_lstm"),
        "optimizer": ("adam", "sgd", "rmsprop", "adadelta"),
        "schedule": ("constant", "cosine"),
        "strategy": ("default", "mirrored", "multi_worker"),
        "precision": ("float32", "mixed_bfloat16"),
    }
    HELP = {
        "task": "What to train (each task adds flags of its own, below).",
        "mode": "static or dynamic unrolling.",
        "unroll": "K, the time steps each iteration of --mode=dynamic's while loop "
        "computes, unrolled (T steps take ceil(T / K) iterations). 1: the plain loop, one "
        "step per iteration; --mode=static unrolls all T (K = T).",
        "kernel": "Dynamic: fused (a whole-sequence LSTM/GRU kernel, the same results), "
        "generic (the cell's own step in the loop) or auto (fused where it measured faster: "
        "an lstm or gru of 64 units or more; experiments/results/kernels.md).",
        "cell": "Recurrent cell.",
        "units": "Units per recurrent layer.",
        "layers": "Stacked recurrent layers.",
        "batch_size": "Global batch size.",
        "optimizer": "Optimizer: Keras's adam, sgd, rmsprop with their defaults; adadelta "
        "with PyTorch's defaults, rho 0.9 and epsilon 1e-6 (Keras's are 0.95 and 1e-7), at "
        "--learning_rate (PyTorch's default is 1.0).",
        "learning_rate": "Learning rate.",
        "clip_norm": "Clip gradients to this global norm (0: no clipping).",
        "schedule": "Learning rate: constant, or cosine decay to a tenth over "
        "--decay_epochs.",
        "decay_epochs": "Epochs of the cosine decay.",
        "max_epochs": "Stop after this many epochs.",
        "eval_every_steps": "Evaluate on the test set every N steps (and at each "
        "epoch end).",
        "checkpoint_every_steps": "Checkpoint every N steps (and at each epoch end).",
        "log_every_steps": "Print progress every N steps.",
        "model_dir": "The run's directory: config.json, checkpoints, export, report.json, "
        "TensorBoard logs. The same command again resumes the run in it; a rerun may "
        "change only the flags marked 'A rerun may change it', any other that differs from "
        "config.json is refused.",
        "seed": "Seed of weights and data order.",
        "jit_compile": "Compile the training step with XLA.",
        "precision": "float32, or mixed_bfloat16 (float32 weights, bfloat16 "
        "computations): slower here, its training step took 1.12-1.15x float32's time on "
        "a 2-core AVX512_BF16 CPU (experiments/README.md, the fast path).",
        "intra_op_threads": "Threads inside one op (0: TensorFlow's choice). Default: 1 "
        "with --inter_op_threads=2 on machines of up to 2 cores (measured faster on 2 cores), "
        "TensorFlow's choice on more.",
        "inter_op_threads": "Ops run at once (0: TensorFlow's choice). Default: 2 on up to "
        "2 cores, TensorFlow's choice on more.",
        "strategy": "tf.distribute strategy: mirrored (the GPUs of this machine), or "
        "multi_worker (the workers TF_CONFIG lists, each running this command; see README's "
        "'Several devices and machines').",
        "worker_timeout": "--strategy=multi_worker: seconds to wait for every worker of "
        "TF_CONFIG to start before giving up with one line.",
        "deterministic": "Turn on TensorFlow op determinism.",
    }
    # Fields that may change when a run is resumed; any other must match.
    RESUMABLE = (
        "max_epochs",
        "eval_every_steps",
        "log_every_steps",
        "model_dir",
        "intra_op_threads",
        "inter_op_threads",
        "worker_timeout",
    )
    # What a config.json written before a field existed ran with: such a run
    # resumes, and is read back, with these values (not today's defaults).
    BEFORE_FIELD = {
        "unroll": 1,
        "precision": "float32",
        "intra_op_threads": 0,
        "inter_op_threads": 0,
    }

    @classmethod
    def from_saved(cls, saved):
        """The config of a saved config.json dict (unknown fields dropped)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{**cls.BEFORE_FIELD, **{k: v for k, v in saved.items() if k in known}}
        )

    def validate(self):
        """Raises `ConfigError`, saying what to do, for any value out of range."""
        for name, allowed in self.CHOICES.items():
            if getattr(self, name) not in allowed:
                allowed = ", ".join(allowed)
                raise ConfigError(f"--{name}={getattr(self, name)} is not one of: {allowed}")
        positive = ("units", "layers", "batch_size", "max_epochs", "eval_every_steps",
                    "checkpoint_every_steps", "log_every_steps", "learning_rate", "decay_epochs",
                    "worker_timeout")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name}={getattr(self, name)} must be > 0")
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int):
            raise ConfigError(f"--unroll={self.unroll!r} must be an int >= 1")
        if self.unroll < 1:
            raise ConfigError(
                f"--unroll={self.unroll} must be >= 1 (1: one step per while-loop iteration)")
        if self.mode == "static" and self.unroll != 1:
            raise ConfigError(
                f"--unroll={self.unroll} applies to --mode=dynamic (a while loop over blocks of K "
                "steps); --mode=static already unrolls every step (K = T): drop --unroll, or use "
                "--mode=dynamic"
            )
        if self.kernel == "fused" and (self.mode == "static" or self.cell not in ("lstm", "gru")):
            raise ConfigError(
                f"--kernel=fused runs a dynamic lstm or gru (got --mode={self.mode} "
                f"--cell={self.cell}): use --mode=dynamic with --cell=lstm or gru, or "
                "--kernel=auto")
        if self.clip_norm is not None and self.clip_norm < 0:
            raise ConfigError(f"--clip_norm={self.clip_norm} must be >= 0 (0: no clipping)")
        for name in ("intra_op_threads", "inter_op_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"--{name}={getattr(self, name)} must be >= 0 (0: TensorFlow's choice)")

    def as_dict(self):
        return dataclasses.asdict(self)
