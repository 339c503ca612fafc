"""A training run's configuration: one dataclass, its choices, its checks.

No TensorFlow here: the CLIs read their flags' defaults and choices from this
module before anything heavy is imported (`python -m tfrnn.train --help`
answers at once).
"""

import dataclasses

from tfrnn.errors import ConfigError

MODES = ("static", "dynamic")
CELLS = ("rnn", "gru", "lstm", "peephole_lstm")
MODELS = ("rnn", "cnn_rnn")
SEQUENCES = ("rows", "pixels", "permuted")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine")
COSINE_FLOOR = 0.1  # the cosine schedule ends at this fraction of the rate
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16")
# Test-set batch of the evaluations: 10,000 MNIST rows took 0.64 s in batches
# of 5,000 against 0.88 s in batches of 1,000 (dynamic LSTM-128, 2-core CPU;
# experiments/README.md, "Evaluation batch").
EVAL_BATCH = 5000
CHOICES = {
    "mode": MODES,
    "cell": CELLS,
    "model": MODELS,
    "sequence": SEQUENCES,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "strategy": STRATEGIES,
    "precision": PRECISIONS,
}


@dataclasses.dataclass
class Config:
    """One training run; the defaults train LSTM-128 on MNIST rows to 98 %."""

    mode: str = "dynamic"
    unroll: int = 1  # dynamic: steps per while-loop iteration (static is k = T)
    bidirectional: bool = False
    cell: str = "lstm"
    units: int = 128
    layers: int = 1
    model: str = "rnn"
    dataset: str = "mnist"
    data_dir: str = None
    sequence: str = "rows"
    # The recipe: the fastest to 98 % of the recipe sweep (`python -m experiments.bench
    # --recipes=sweep`, experiments/results/recipe_sweep.md): Adam 1e-2, clipped to global norm
    # 1, decayed to 1e-3 over 2 epochs of batch 256.
    batch_size: int = 256
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    clip_norm: float = 1.0
    schedule: str = "cosine"  # or "constant"
    decay_epochs: float = 2.0  # cosine: to learning_rate * COSINE_FLOOR
    target_accuracy: float = 0.98
    max_epochs: int = 20
    eval_every_steps: int = 100  # 25,600 examples at batch 256
    checkpoint_every_steps: int = 100
    log_every_steps: int = 25
    model_dir: str = "runs/default"
    seed: int = 0
    train_examples: int = None
    test_examples: int = None
    # The fast path, measured on a 2-core CPU (experiments/results/fast_path.md;
    # rerun with `python -m experiments.steps`, see experiments/README.md):
    # TensorFlow's thread pools at 1 thread per op, 2 ops at once (0: TensorFlow's
    # choice) made the training step faster; XLA, unroll=k and mixed_bfloat16
    # did not, so they stay off.
    jit_compile: bool = False
    precision: str = "float32"  # or "mixed_bfloat16": bfloat16 computations
    intra_op_threads: int = 1  # set before TensorFlow starts (tfrnn.loop.set_threads)
    inter_op_threads: int = 2
    strategy: str = "default"
    deterministic: bool = True

    # Fields that may change when a run is resumed; any other must match.
    RESUMABLE = (
        "max_epochs",
        "target_accuracy",
        "eval_every_steps",
        "log_every_steps",
        "model_dir",
        "intra_op_threads",
        "inter_op_threads",
    )

    # What a config.json written before a field existed ran with: such a run
    # resumes, and is read back, with these values (not today's defaults).
    BEFORE_FIELD = {
        "unroll": 1,
        "bidirectional": False,
        "precision": "float32",
        "intra_op_threads": 0,
        "inter_op_threads": 0,
    }

    @classmethod
    def from_saved(cls, saved):
        """The `Config` of a saved config.json dict (unknown fields dropped)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{**cls.BEFORE_FIELD, **{k: v for k, v in saved.items() if k in known}}
        )

    def validate(self):
        """Raises `ConfigError`, saying what to do, for any value out of range."""
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                allowed = ", ".join(allowed)
                raise ConfigError(f"--{name}={getattr(self, name)} is not one of: {allowed}")
        if self.dataset not in ("mnist", "fashion_mnist") and not self.dataset.startswith("tfds:"):
            raise ConfigError(
                f"--dataset={self.dataset} is not one of: mnist, fashion_mnist, tfds:NAME")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ConfigError(
                f"--target_accuracy={self.target_accuracy} must be in (0, 1], e.g. 0.98")
        positive = ("units", "layers", "batch_size", "max_epochs", "eval_every_steps",
                    "checkpoint_every_steps", "log_every_steps", "learning_rate", "decay_epochs")
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
        if self.clip_norm is not None and self.clip_norm < 0:
            raise ConfigError(f"--clip_norm={self.clip_norm} must be >= 0 (0: no clipping)")
        for name in ("intra_op_threads", "inter_op_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"--{name}={getattr(self, name)} must be >= 0 (0: TensorFlow's choice)")
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"--{name}={getattr(self, name)} must be > 0 (or unset)")
        if self.model == "cnn_rnn" and self.sequence != "rows":
            raise ConfigError("--model=cnn_rnn reads images: use --sequence=rows")

    def as_dict(self):
        return dataclasses.asdict(self)
