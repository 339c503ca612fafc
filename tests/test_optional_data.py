"""The suite passes without the optional data: its tests skip with a reason."""

import os
import pathlib
import subprocess
import sys

from tfrnn.tasks.classify import data

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_optional_data_tests_skip_where_nothing_is(tmp_path):
    """`pytest -m optional_data` with the data directories pointed at an empty
    place: every such test skips, none fails (as on a fresh machine)."""
    nowhere = tmp_path / "fashion-mnist"  # in an empty directory
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TFRNN_FASHION_MNIST_DIR": str(nowhere),
        "TFDS_DATA_DIR": str(tmp_path),
    }
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "optional_data", "tests"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-3000:]
    summary = output.strip().splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary, summary
    assert "failed" not in summary and "error" not in summary, summary
    assert f"Fashion-MNIST not in {nowhere}" in output


def test_fashion_mnist_dir_comes_from_the_environment(tmp_path):
    code = "from tfrnn.tasks.classify import data; print(data.FASHION_MNIST_DIR)"
    printed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TFRNN_FASHION_MNIST_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert printed.strip() == str(tmp_path)
    assert not data.fashion_mnist_available(tmp_path)  # empty: not available
