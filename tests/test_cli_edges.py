"""The CLIs' edges: every end of `train`, `predict` and `sample` is one line
(a flag mistake, an interrupt while TensorFlow imports, a missing run),
`--help` succeeds and says what a newcomer asks, the figures fit."""

import itertools
import os
import pathlib
import re
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
from absl import flags
from matplotlib.text import Text

from tfrnn import tasks
from tfrnn import train
from tfrnn.tasks.classify import figures

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = ["tfrnn.train", "tfrnn.predict", "tfrnn.sample"]
INTERRUPTED = (
    "interrupted outside a training step; the last checkpoint (if any) is kept; "
    "rerun the same command to resume"
)
# Runs a command with a real signal sent to itself when the import of
# TensorFlow reaches `tensorflow.python.framework.ops` (about half way).
INTERRUPT_DURING_IMPORT = """
import importlib.abc, os, runpy, sys
module, number = sys.argv[1], int(sys.argv[2])
class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow.python.framework.ops":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), number)
sys.meta_path.insert(0, Interrupt())
sys.argv = [module]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run(argv, cwd=ROOT, timeout=120, **options):
    """`python ARGV` with the worktree's tfrnn and TensorFlow's own log level
    (the CLI quiets it), as a user runs it; `options` for `subprocess.run`."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **options)  # fmt: skip


@pytest.mark.parametrize("module", COMMANDS)
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=lambda n: n.name)
def test_an_interrupt_while_tensorflow_imports_is_one_line(module, number, tmp_path):
    process = run(["-c", INTERRUPT_DURING_IMPORT, module, str(int(number))], cwd=tmp_path)
    assert (process.returncode, process.stdout) == (128 + number, ""), process.stderr[-3000:]
    assert process.stderr.splitlines() == [INTERRUPTED]


def test_an_interrupt_is_honoured_when_the_command_started_with_sigint_ignored(tmp_path):
    """A background job of a shell script starts with SIGINT ignored (and
    pytest run that way passed it on to every command it ran): `kill -INT`
    still ends the command with its one line, as it does once training runs."""
    argv = ["-c", INTERRUPT_DURING_IMPORT, "tfrnn.train", str(int(signal.SIGINT))]
    process = run(argv, cwd=tmp_path,
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    assert (process.returncode, process.stdout) == (130, ""), process.stderr[-3000:]
    assert process.stderr.splitlines() == [INTERRUPTED]


@pytest.mark.parametrize("module, flag, line", [
    ("tfrnn.train", "--mdoe=static",
     "error: unknown flag --mdoe; did you mean --mode or --model? --help lists the flags"),
    ("tfrnn.train", "--bogus", "error: unknown flag --bogus; --help lists the flags"),
    ("tfrnn.train", "--mode=eager", "error: --mode=eager is not one of: static, dynamic"),
    ("tfrnn.train", "--task=lm", "error: --task=lm is not one of: classify, language_model"),
    ("tfrnn.train", "--units=1.5", "error: --units=1.5 is not an integer"),
    ("tfrnn.train", "--learning_rate=fast", "error: --learning_rate=fast is not a number"),
    ("tfrnn.train", "--deterministic=maybe",
     "error: --deterministic=maybe is not true or false"),
    ("tfrnn.train", "--mode",
     "error: --mode needs a value: --mode=VALUE, one of: static, dynamic"),
    ("tfrnn.train", "static",
     "error: unexpected argument 'static': flags are written --NAME=VALUE (--help lists them)"),
    ("tfrnn.predict", "--format=onnx",
     "error: --format=onnx is not one of: auto, saved_model, keras"),
    ("tfrnn.predict", "--examples=0", "error: --examples=0 is not a positive integer"),
    ("tfrnn.sample", "--temperature=hot", "error: --temperature=hot is not a number"),
    ("tfrnn.sample", "--length=0", "error: --length=0 is not a positive integer"),
    ("tfrnn.sample", "--length=-1", "error: --length=-1 is not a positive integer"),
])  # fmt: skip
def test_a_flag_mistake_is_one_error_line(module, flag, line, tmp_path):
    process = run(["-m", module, flag], cwd=tmp_path)
    assert (process.returncode, process.stdout) == (1, ""), process.stderr
    assert process.stderr.splitlines() == [line]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("module", COMMANDS)
def test_help_exits_0(module):
    for flag in ("--help", "--helpshort", "--helpfull"):
        process = run(["-m", module, flag])
        assert (process.returncode, process.stderr) == (0, ""), (flag, process.stderr)
        assert "--model_dir" in process.stdout
        assert ("--verbosity" in process.stdout) == (flag == "--helpfull")  # absl's own


def test_predict_and_sample_default_to_trains_model_dir(tmp_path):
    """Without --model_dir, each reads where `train` (with the task it needs)
    writes by default, and a missing run says how to train the right task."""
    for module, model_dir in (("tfrnn.predict", "runs/default"),
                              ("tfrnn.sample", "runs/language_model")):  # fmt: skip
        process = run(["-m", module], cwd=tmp_path)
        assert process.returncode == 1
        assert process.stderr.splitlines() == [
            f"error: --model_dir={model_dir} does not exist; train first with `python -m "
            f"tfrnn.train --model_dir={model_dir}` (add `--task=language_model` for a "
            "language model)"
        ]


def train_help():
    """`{flag: help}` of `python -m tfrnn.train`."""
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    return {name: flag_values[name].help for name in flag_values}


def test_help_says_what_k_precision_and_the_example_counts_are():
    help_ = train_help()
    assert help_["unroll"].startswith("K, the time steps each iteration of --mode=dynamic's")
    assert "slower" in help_["precision"]
    figures_quoted = re.search(r"(\d\.\d+)-(\d\.\d+)x float32's time", help_["precision"])
    experiments = (ROOT / "experiments" / "README.md").read_text()
    for figure in figures_quoted.groups():  # the help quotes the measured slowdowns
        assert re.search(rf"`mixed_bfloat16` [|]? ?×{figure}", experiments), figure
    assert "(default: all, 60,000" in help_["train_examples"]
    assert "(default: all, 10,000" in help_["test_examples"]
    assert "`apt-get install dataset-fashion-mnist`" in help_["dataset"]


def test_help_and_readme_name_the_flags_a_rerun_may_change():
    marked = {name for name, text in train_help().items() if "A rerun may change it." in text}
    resumable = set().union(*(tasks.config_class(name).RESUMABLE for name in tasks.NAMES))
    assert marked == resumable - {"model_dir"}  # which run_dir enforces; model_dir: its path
    readme = (ROOT / "README.md").read_text()
    sentence = re.search(r"A rerun\s+may change (.*?); if any\s+other flag differs", readme, re.S)
    assert set(re.findall(r"`--(\w+)`", sentence[1])) == marked


def fashion_evaluation():
    """What `inference.evaluate_export` returns, for 16 Fashion-MNIST
    examples: the longest class names, a few wrong."""
    labels = np.array([9, 0, 2, 7, 9, 1, 4, 6, 5, 8, 3, 0, 9, 6, 2, 7])
    predictions = labels.copy()
    predictions[[0, 3, 5, 13]] = [7, 9, 0, 0]  # "pred Sneaker / true Ankle boot" first
    return types.SimpleNamespace(
        examples=10000, accuracy=0.8812, labels=labels, predictions=predictions,
        probabilities=np.eye(10)[predictions],
        images=np.random.default_rng(0).integers(0, 256, (16, 28, 28)),
        meta=dict(dataset="fashion_mnist", mode="dynamic", cell="lstm", sequence="rows"),
    )  # fmt: skip


@pytest.mark.parametrize("examples", [1, 2, 5, 16])
def test_prediction_titles_fit_in_the_figure_and_apart(examples):
    figure = figures.predictions_figure(fashion_evaluation(), examples)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = [text for text in figure.findobj(Text) if text.get_text()]
    assert len(texts) == examples + 1  # a title per image, and the figure's
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in texts]
    for text, box in boxes:
        assert 0 <= box.x0 and box.x1 <= figure.bbox.width, text
        assert 0 <= box.y0 and box.y1 <= figure.bbox.height, text
    for (one, a), (other, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (one, other)
