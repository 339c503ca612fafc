"""The CLIs start light: `--help` imports no TensorFlow (it answers at once)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROBE = """
import runpy, sys
sys.argv = [{module!r}, "--help"]
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit as exit:
    assert exit.code == 0, exit.code
heavy = sorted({{"tensorflow", "keras", "numpy", "matplotlib"}} & set(sys.modules))
print("heavy modules:", heavy)
"""


@pytest.mark.parametrize("module", ["tfrnn.train", "tfrnn.predict", "tfrnn.sample"])
def test_help_imports_no_tensorflow(module):
    process = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    assert "--model_dir" in process.stdout
    assert process.stdout.strip().endswith("heavy modules: []"), process.stdout[-500:]


def test_library_names_load_on_first_use():
    code = (
        "import sys, tfrnn, tfrnn.training.config, tfrnn.training.errors\n"
        "assert 'tensorflow' not in sys.modules\n"
        "assert callable(tfrnn.static_rnn) and 'tensorflow' in sys.modules\n"
        "from tfrnn import dynamic_rnn, LSTMCell, MultiRNNCell, zero_state\n"
        "assert set(tfrnn.__all__) <= set(dir(tfrnn))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr[-2000:]
