"""The evaluation clock of a training run: step times, evaluations, target.

No TensorFlow here (nor numpy): the training loop and the stock baselines of
`experiments/` (Keras `fit`, and a PyTorch worker that must not load
TensorFlow) time their runs with the same `Clock`, so their records mean the
same:

    clock = Clock(Target("test_accuracy", 0.98), eval_every_steps=100, steps_per_epoch=234)
    clock.begin()
    for each training step:
        if clock.stepped(seconds_of_the_step):   # every 100 steps, epoch ends
            if clock.evaluated({"test_accuracy": a}, seconds_of_the_evaluation):
                break                              # the target is reached
    result = clock.result(batch_size)

An evaluation record holds `step`, `epoch` (fractional), `seconds` (wall
clock since `begin`, evaluations included), `train_seconds` (the same less
evaluation time), `step_seconds` (the sum of the timed steps) and the
evaluation's metrics. `state()` is what a checkpoint keeps to resume the clock.
"""

import statistics
import time
from typing import NamedTuple


class Target(NamedTuple):
    """Train until an evaluation's `metric` is at least `value` (at most,
    when `higher_is_better` is False: a loss, bits per character).

    >>> Target("test_accuracy", 0.98).met({"test_accuracy": 0.981})
    True
    >>> Target("test_bpc", 1.5, higher_is_better=False).best([{"test_bpc": 1.7}, {"test_bpc": 1.6}])
    1.6
    """

    metric: str
    value: float
    higher_is_better: bool = True

    def met(self, record):
        """Whether the evaluation `record` reaches the target."""
        measured = record[self.metric]
        return measured >= self.value if self.higher_is_better else measured <= self.value

    def best(self, evaluations):
        """The best `metric` of `evaluations` (None for none)."""
        values = [e[self.metric] for e in evaluations]
        return (max if self.higher_is_better else min)(values, default=None)


class Clock:
    """Step times, evaluation times and the evaluation records of one run."""

    def __init__(self, target, eval_every_steps, steps_per_epoch, log=print, state=None):
        self.target = target
        self.eval_every_steps = eval_every_steps
        self.steps_per_epoch = steps_per_epoch
        self.log = log
        state = state or {}
        self.evaluations = list(state.get("evaluations", []))
        self.step_sum = float(state.get("step_seconds", 0.0))
        self.eval_seconds = float(state.get("eval_seconds", 0.0))
        self.elapsed_before = float(state.get("wall_seconds", 0.0))
        self.step = int(state.get("step", 0))
        self.start = None
        self.first_step_seconds = None  # this process's first step
        self.step_seconds = []  # this process's steps after its first
        self.reached = first_at_target(self.evaluations, target) is not None

    def begin(self):
        """Starts the wall clock (a resumed clock continues its `state`'s)."""
        self.start = time.perf_counter() - self.elapsed_before

    def seconds(self):
        """Wall clock seconds since `begin` (resumed runs: since the first)."""
        return time.perf_counter() - self.start

    def stepped(self, seconds):
        """Records one step; returns whether the schedule says to evaluate now."""
        self.step += 1
        if self.first_step_seconds is None:
            self.first_step_seconds = seconds
        else:
            self.step_seconds.append(seconds)
        self.step_sum += seconds
        return (
            self.step % self.eval_every_steps == 0
            or self.step % self.steps_per_epoch == 0
        )

    def evaluated(self, metrics, seconds):
        """Records an evaluation (`{name: value}`) that took `seconds`; returns
        whether the target is reached."""
        self.eval_seconds += seconds
        wall = self.seconds()
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 3),
            "seconds": round(wall, 3),
            "train_seconds": round(wall - self.eval_seconds, 3),
            "step_seconds": round(self.step_sum, 3),
            **metrics,
        }
        self.evaluations.append(record)
        measured = ", ".join(f"{name.replace('_', ' ')} {value:.4f}"
                             for name, value in metrics.items())  # fmt: skip
        self.log(
            f"evaluation at step {self.step} (epoch {record['epoch']}): {measured} "
            f"after {record['seconds']:.1f} s"
        )
        if self.target.met(record):
            self.reached = True
        return self.reached

    def state(self):
        """What a checkpoint keeps (JSON): `Clock(..., state=)` resumes from it."""
        return {
            "evaluations": self.evaluations,
            "step_seconds": self.step_sum,
            "eval_seconds": self.eval_seconds,
            "wall_seconds": self.seconds() if self.start else self.elapsed_before,
            "step": self.step,
        }

    def result(self, batch_size):
        """The run's fields; the run's wall clock ends with its last evaluation."""
        last = self.evaluations[-1] if self.evaluations else None
        wall = last["seconds"] if last else self.seconds()
        median = median_ms(self.step_seconds)
        at_target = target_fields(self.evaluations, self.target)
        first = first_at_target(self.evaluations, self.target)
        return {
            **at_target,
            "steps_to_target": first["step"] if first else None,
            "trace_seconds": None,  # not separable here: inside the first step
            "first_step_seconds": self.first_step_seconds,
            "median_step_ms": median,
            "examples_per_second": batch_size / median * 1000 if median else None,
            "steps_timed": len(self.step_seconds),
            "steps": self.step,
            "wall_seconds": wall,
            "train_seconds": wall - self.eval_seconds,
            "step_seconds": self.step_sum,
            "eval_seconds": self.eval_seconds,
            "evaluations": self.evaluations,
        }


def first_at_target(evaluations, target):
    """The first evaluation record that meets `target` (a `Target`), or None."""
    return next((e for e in evaluations if target.met(e)), None)


def target_fields(evaluations, target):
    """Report fields of the first evaluation that meets `target` (None if none)."""
    at = first_at_target(evaluations, target)
    return {
        "target_reached": at is not None,
        "seconds_to_target": at["seconds"] if at else None,
        "train_seconds_to_target": at["train_seconds"] if at else None,
        "step_seconds_to_target": at["step_seconds"] if at else None,
        "epochs_to_target": at["epoch"] if at else None,
    }


def median_ms(seconds):
    """The median of `seconds` in milliseconds (None for none)."""
    return 1000.0 * statistics.median(seconds) if seconds else None
