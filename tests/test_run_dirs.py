"""Run directories: one trainer per directory (readers welcome), no run
mixed with other files, and every place that cannot be written (a full
disk, a path that cannot be created) refused in one line, losing nothing."""

import errno
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from absl import flags

from tfrnn import predict
from tfrnn.tasks.classify import config as config_lib
from tfrnn.tasks.classify import data
from tfrnn.training import export, loop, run_dir
from tfrnn.training.errors import ConfigError, DataError, RunDirError

ROOT = pathlib.Path(__file__).resolve().parents[1]
OLD_RUN = ROOT / "tests" / "data" / "run-4669887"  # a finished run (config.json, export)
TINY = {"mode": "dynamic", "units": 4, "train_examples": 128, "test_examples": 64,
        "batch_size": 32, "max_epochs": 1, "checkpoint_every_steps": 2,
        "deterministic": False}  # fmt: skip
TINY_FLAGS = [f"--{name}={value}" for name, value in TINY.items()]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
ENV.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI's own quiet start


def train_cli(model_dir, *more, **popen):
    return subprocess.Popen(
        [sys.executable, "-m", "tfrnn.train", *TINY_FLAGS, f"--model_dir={model_dir}", *more],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        **popen,
    )  # fmt: skip


def run_predict(*argv):
    """`predict.main` in-process: its exit message (None: no exit)."""
    flag_values = flags.FlagValues()
    predict.define_flags(flag_values)
    argv = flag_values(["predict", *argv])
    try:
        predict.main(argv[:1], flag_values)
    except SystemExit as exit:
        return str(exit.code)
    return None


# --- one trainer per directory ---------------------------------------------------


def test_a_second_trainer_is_refused_while_predict_reads_the_run(tmp_path, capsys):
    """The first holds the lock; the second, staggered, is refused in one
    line naming the first's process; predict reads the newest checkpoint."""
    slow = ["--train_examples=4096", "--checkpoint_every_steps=1000000"]  # at epoch ends
    first = train_cli(tmp_path, *slow, "--max_epochs=100000", "--log_every_steps=1")
    try:
        for line in first.stdout:
            if line.startswith("epoch 2 step 1/128"):  # ckpt-128 is written
                break
        second = train_cli(tmp_path, *slow)
        output = second.communicate(timeout=300)[0]
        assert second.returncode == 1, output
        assert len(output.strip().splitlines()) == 1, output
        assert re.fullmatch(
            f"error: --model_dir={tmp_path} is in use by process {first.pid} on host "
            rf"{socket.gethostname()} \(since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\), which "
            r"trains there: wait for it to end \(or stop it\), or use another --model_dir",
            output.strip(),
        ), output
        assert run_predict(f"--model_dir={tmp_path}", f"--output_dir={tmp_path}/figures") is None
        printed = capsys.readouterr().out
        assert f"{tmp_path}/checkpoints/ckpt-" in printed, printed  # no export yet
        assert (tmp_path / "figures" / "predictions.png").exists()
    finally:
        first.send_signal(signal.SIGINT)
        output = first.communicate(timeout=300)[0]
    assert first.returncode == 130 and "checkpoint saved" in output, output


LOCK_HOLDER = textwrap.dedent("""
    import sys
    from tfrnn.tasks.classify import config
    from tfrnn.training import run_dir
    run = run_dir.RunDir(sys.argv[1])
    run.lock(run.read_config("") if run.config.exists() else config.Config(model_dir=sys.argv[1]))
    print("locked", flush=True)
    sys.stdin.read()
""")


def hold_lock(model_dir):
    """A process holding the lock of `model_dir` (as a trainer there does)."""
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(model_dir)], env=ENV,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline() == "locked\n"
    return holder


def test_sample_reads_a_run_in_progress(tmp_path):
    """A language model training (its lock held, checkpoints, no export
    yet): sampling reads its newest checkpoint."""
    from tfrnn.tasks.language_model import config as language_config
    from tfrnn.tasks.language_model import sampling

    (tmp_path / "text.txt").write_text("def f(x):\n    return (x + 1) * 2\n" * 60)
    model_dir = tmp_path / "run"
    loop.train(language_config.Config(
        text=str(tmp_path / "text.txt"), units=8, batch_size=4, bptt=10, max_epochs=1,
        model_dir=str(model_dir), deterministic=False), log=lambda line: None)  # fmt: skip
    shutil.rmtree(model_dir / "export")  # as before the run ends
    holder = hold_lock(model_dir)
    try:
        next_characters, vocabulary, sizes, read = sampling.load_generator(model_dir)
        assert read.startswith(f"{model_dir}/checkpoints/ckpt-")
        text = sampling.sample(next_characters, vocabulary, sizes, "def ", 20)
        assert text.startswith("def ") and len(text) == 24
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_trainer_leaves_no_stale_lock(tmp_path):
    config = config_lib.Config(model_dir=str(tmp_path / "run"))
    holder = hold_lock(config.model_dir)
    with pytest.raises(RunDirError, match=f"is in use by process {holder.pid} on host "):
        run_dir.RunDir(config.model_dir).lock(config)
    holder.kill()  # SIGKILL: no chance to clean up
    holder.wait()
    run_dir.RunDir(config.model_dir).lock(config)  # taken
    run_dir.RunDir(config.model_dir).lock(config)  # and held by this process: again
    assert os.listdir(tmp_path / "run") == [run_dir.LOCK]


# --- what a run directory may hold --------------------------------------------------


def test_an_empty_model_dir_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where an empty --model_dir used to write the run
    with pytest.raises(ConfigError, match="--model_dir is empty: name the run's directory"):
        loop.train(config_lib.Config(model_dir="", **TINY), log=lambda line: None)
    assert run_predict("--model_dir=") == (
        "error: --model_dir is empty: name the run's directory (e.g. --model_dir=runs/default)"
    )
    assert os.listdir(tmp_path) == []


def test_a_directory_of_other_files_is_refused(tmp_path):
    """Other files without a config.json: refused. What a run writes before
    its config.json (its lock, a crash's temporary file) is not other files."""
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "photos").mkdir()
    with pytest.raises(ConfigError, match=(
        rf"--model_dir={tmp_path} holds no tfrnn run but other files \(notes.txt, photos\), "
        "and tfrnn does not mix its files with yours: use a new or empty directory")):  # fmt: skip
        loop.train(config_lib.Config(model_dir=str(tmp_path), **TINY), log=lambda line: None)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "photos"]
    started = tmp_path / "started"
    (started / "logs").mkdir(parents=True)
    for name in ("tfrnn.lock", ".config.json.x1.tmp"):
        (started / name).write_text("")
    run_dir.RunDir(started).check(config_lib.Config(model_dir=str(started)))  # no error


def test_a_model_dir_that_cannot_be_created_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as error:
        loop.train(config_lib.Config(model_dir="/proc/x", **TINY), log=lambda line: None)
    assert str(error.value) == (
        "--model_dir=/proc/x cannot be created (No such file or directory): choose a "
        "directory you can write to"
    )


@pytest.mark.parametrize("where, reason", [
    ("/proc/x", "No such file or directory"),
    ("{tmp}/a_file/figures", "Not a directory"),
    ("{tmp}/a_file", "not a directory"),
])  # fmt: skip
def test_an_output_dir_that_cannot_be_created_is_one_line(tmp_path, where, reason):
    (tmp_path / "a_file").write_text("")
    where = where.format(tmp=tmp_path)
    message = run_predict(f"--model_dir={OLD_RUN}", f"--output_dir={where}")
    assert message == (
        f"error: --output_dir={where} cannot be created ({reason}): choose a directory "
        "you can write to"
    )


def test_a_missing_data_dir_is_named(tmp_path):
    with pytest.raises(DataError, match="mnist: --data_dir=/nonexistent does not exist; drop "
                       "--data_dir to read the copy tfrnn comes with"):  # fmt: skip
        data.load_arrays("mnist", "/nonexistent")
    with pytest.raises(DataError, match=f"{tmp_path}/MD5SUMS: checksum list is missing; a "
                       "--data_dir for mnist holds the four IDX files and MD5SUMS"):  # fmt: skip
        data.load_arrays("mnist", tmp_path)


# --- a full disk ----------------------------------------------------------------------


def test_a_keras_file_that_does_not_fit_is_one_line_and_no_partial_file(tmp_path, monkeypatch):
    """The patched writer: as a full disk makes Keras's own fail (an OSError
    without a file name, after part of the file)."""
    import keras

    def full(model, path):
        pathlib.Path(path).write_bytes(b"PK" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keras.Model, "save", full)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(RunDirError) as error:
        export.save_keras(model, tmp_path / "model.keras")
    assert str(error.value).startswith(
        f"no space left on device writing {tmp_path / 'model.keras'} (it needs more than the "
    )
    assert os.listdir(tmp_path) == []


def _tmpfs_allowed():
    """Whether this machine lets an unprivileged user namespace mount a tmpfs."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, check=False,
    )  # fmt: skip
    return probe.returncode == 0


# Runs in its own mount namespace on a 4 MB tmpfs: the training command with
# a nearly full disk (a filler file leaving `free` bytes), then with space.
FULL_DISK = textwrap.dedent("""
    import hashlib, json, os, subprocess, sys
    mount, steps = sys.argv[1], json.loads(sys.argv[2])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mount], check=True)
    subprocess.run(["cp", "-r", sys.argv[3], mount + "/run"], check=True)
    results = []
    for free, flags in steps:
        filler = mount + "/filler"
        if os.path.exists(filler):
            os.remove(filler)
        if free is not None:
            stat = os.statvfs(mount)
            with open(filler, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, stat.f_bavail * stat.f_frsize - free)
        process = subprocess.run([sys.executable, "-m", "tfrnn.train", *flags],
                                 capture_output=True, text=True)
        files = {os.path.relpath(os.path.join(d, n), mount + "/run"):
                 hashlib.md5(open(os.path.join(d, n), "rb").read()).hexdigest() if n in names
                 else None for d, dirs, names in os.walk(mount + "/run") for n in dirs + names}
        results.append([process.returncode, process.stdout + process.stderr, files])
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch run: ckpt-2 and ckpt-4, its export and report."""
    model_dir = tmp_path_factory.mktemp("trained")
    loop.train(config_lib.Config(model_dir=str(model_dir), **TINY), log=lambda line: None)
    return model_dir


def full_disk(tmp_path, run, steps):
    """`[(exit status, output, files of the run)]` of each `(free bytes,
    extra flags)` step on a tmpfs holding a copy of `run`."""
    (tmp_path / "mnt").mkdir()
    steps = [(free, [*TINY_FLAGS, f"--model_dir={tmp_path}/mnt/run", *more])
             for free, more in steps]  # fmt: skip
    process = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", FULL_DISK,
         str(tmp_path / "mnt"), json.dumps(steps), str(run)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout)


@pytest.mark.skipif(not _tmpfs_allowed(), reason="no tmpfs mount in a user namespace here")
def test_a_checkpoint_that_does_not_fit_is_one_line_and_keeps_the_one_before(
    trained, tmp_path
):
    ckpt_4 = "checkpoints/ckpt-4.data-00000-of-00001"
    md5 = hashlib.md5((trained / ckpt_4).read_bytes()).hexdigest()
    (full, output, files), (resumed, resumed_output, resumed_files) = full_disk(
        tmp_path, trained, [(8192, ["--max_epochs=2"]), (None, ["--max_epochs=2"])]
    )
    run = tmp_path / "mnt" / "run"
    assert full == 1, output
    lines = output.strip().splitlines()
    assert lines[0].startswith("resumed from") and len(lines) == 2, lines
    needed = sum(p.stat().st_size for p in (trained / "checkpoints").glob("ckpt-4.*"))
    match = re.fullmatch(
        f"error: no space left on device writing {run}/checkpoints/ckpt-6 "
        rf"\({needed / 1000:.1f} kB needed, (\d\.\d) kB free there\): free some space, then "
        r"rerun the same command \(training resumes from its last checkpoint\)",
        lines[1],
    )  # a checkpoint needs what the one before took
    assert match and float(match[1]) < needed / 1000, lines[1]
    assert sorted(name for name in files if "ckpt-" in name) == [
        "checkpoints/ckpt-2.data-00000-of-00001", "checkpoints/ckpt-2.index",
        "checkpoints/ckpt-4.data-00000-of-00001", "checkpoints/ckpt-4.index",
    ]  # fmt: skip
    assert files[ckpt_4] == md5  # intact
    assert files["checkpoints/checkpoint"] == hashlib.md5(
        (trained / "checkpoints" / "checkpoint").read_bytes()).hexdigest()  # fmt: skip
    assert resumed == 0, resumed_output
    assert f"resumed from {run}/checkpoints/ckpt-4: epoch 2, step 0/4" in resumed_output
    assert "checkpoints/ckpt-8.index" in resumed_files


@pytest.mark.skipif(not _tmpfs_allowed(), reason="no tmpfs mount in a user namespace here")
def test_an_export_that_does_not_fit_is_one_line_and_a_rerun_exports(trained, tmp_path):
    """Stopped after training, before its export: the SavedModel, then
    model.keras, do not fit; the rerun with space exports both."""
    stopped = tmp_path / "stopped"
    shutil.copytree(trained, stopped)
    shutil.rmtree(stopped / "export")
    (stopped / "model.keras").unlink()
    (stopped / "report.json").unlink()
    pages = sum(-(-p.stat().st_size // 4096) * 4096 for p in (trained / "export").rglob("*")
                if p.is_file())  # fmt: skip
    results = full_disk(tmp_path, stopped, [(65536, []), (pages + 12288, []), (None, [])])
    run = tmp_path / "mnt" / "run"
    for (status, output, files), path in zip(results, (run / "export", run / "model.keras")):
        assert status == 1, output
        last = output.strip().splitlines()[-1]
        assert last.startswith(
            f"error: no space left on device writing {path} (it needs more than the "
        )
        assert not [name for name in files if "partial" in name or "_temp" in name], files
        assert "report.json" not in files
    assert "export/saved_model.pb" in results[1][2]  # it fitted, then model.keras did not
    status, output, files = results[2]
    assert status == 0, output
    assert {"export/saved_model.pb", "model.keras", "report.json"} <= set(files)
    assert not [name for name in files if "partial" in name or "_temp" in name], files
