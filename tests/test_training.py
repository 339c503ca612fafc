"""Training: accuracy on a subset, exact resume after SIGKILL, export, bad flags."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrnn.tasks.classify import config as config_lib
from tfrnn.tasks.classify import data, export
from tfrnn.training import loop, optimizers, run_dir, runtime
from tfrnn.training import report as report_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = dict(
    units=32,
    train_examples=2048,
    test_examples=512,
    batch_size=64,
    learning_rate=0.005,
    schedule="constant",
    deterministic=False,
    eval_every_steps=1000,
)


def run_cli(*flags, quiet=True, **kwargs):
    """`python -m tfrnn.train FLAGS`; `quiet=False`: TF_CPP_MIN_LOG_LEVEL unset."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if not quiet:
        del env["TF_CPP_MIN_LOG_LEVEL"]
    return subprocess.Popen(
        [sys.executable, "-m", "tfrnn.train", *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def static_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("static")
    config = config_lib.Config(
        mode="static", max_epochs=3, model_dir=str(model_dir), **SMALL
    )
    report = loop.train(config, log=STATIC_RUN_LINES.append)
    return report, model_dir


STATIC_RUN_LINES = []  # what static_run printed


def test_max_epochs_short_of_the_target_says_so(static_run):
    report, _ = static_run
    best = max(e["test_accuracy"] for e in report["evaluations"])
    assert STATIC_RUN_LINES[-1] == (
        f"stopped at --max_epochs=3 short of the target 0.98 (best test accuracy "
        f"{best:.4f}); report.json says target_reached: false"
    )
    assert report["target_reached"] is False


def test_a_finished_run_rerun_does_nothing(static_run):
    report, model_dir = static_run
    exported = (model_dir / "export" / "saved_model.pb").stat().st_mtime_ns
    config = config_lib.Config(
        mode="static", max_epochs=3, model_dir=str(model_dir), **SMALL
    )
    lines = []
    trainer = loop.TrainingLoop(config, log=lines.append)
    again = trainer.run()
    assert trainer.already_finished
    assert len(lines) == 1 and lines[-1] == (
        f"{model_dir} holds a finished run (--max_epochs=3 run, short of the target "
        f"0.98): nothing to do; its report is {model_dir / 'report.json'} (raise "
        "--max_epochs to train on)"
    )
    assert (model_dir / "export" / "saved_model.pb").stat().st_mtime_ns == exported
    assert again["evaluations"] == report["evaluations"]


def test_files_are_written_0644(static_run, tmp_path):
    _, model_dir = static_run
    for name in ("config.json", "report.json", "export/tfrnn.json"):
        assert (model_dir / name).stat().st_mode & 0o777 == 0o644, name
    previous = os.umask(0o027)
    try:
        run_dir.write_json(tmp_path / "r.json", {})
    finally:
        os.umask(previous)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o640


def test_a_long_static_build_is_announced():
    static = config_lib.Config(mode="static", sequence="pixels")
    line = loop.static_build_notice(static, 784)
    assert line.startswith("building the static graph: 784 copies of the lstm cell")
    assert loop.static_build_notice(static, 28) is None
    assert loop.static_build_notice(config_lib.Config(mode="dynamic"), 784) is None


def test_short_training_reaches_stated_accuracy(static_run):
    report, model_dir = static_run
    accuracies = [e["test_accuracy"] for e in report["evaluations"]]
    assert len(accuracies) == 3  # one per epoch
    assert accuracies[-1] >= 0.7  # 0.775 here: seeded, 3 epochs of 2048 rows
    assert accuracies[-1] > accuracies[0]
    assert not report["target_reached"] and report["seconds_to_target"] is None
    saved = json.loads((model_dir / "report.json").read_text())
    assert saved["evaluations"] == report["evaluations"]
    assert saved["kernel"].startswith("generic: unrolled") and saved["xla"] is False
    assert saved["parameters"] == 28 * 128 + 32 * 128 + 128 + 32 * 10 + 10
    assert saved["timing"]["median_step_ms"] > 0
    assert saved["export"]["bytes"] > 0
    assert (model_dir / "logs").is_dir() and any((model_dir / "logs").iterdir())


def test_export_reload_predicts_the_same(static_run):
    _, model_dir = static_run
    module = export.load(model_dir / "export")
    arrays = data.load_arrays("mnist")
    images = arrays.x_test[:64]
    from_images = module.classify_images(tf.constant(images)).numpy()
    from_sequences = module.classify_sequences(
        tf.constant(data.to_sequences(images, "rows"))
    ).numpy()
    np.testing.assert_allclose(from_images, from_sequences, atol=1e-6)
    report = json.loads((model_dir / "report.json").read_text())
    test_x = data.to_sequences(arrays.x_test[:512], "rows")
    accuracy = np.mean(
        np.argmax(module.classify_sequences(tf.constant(test_x)), -1)
        == arrays.y_test[:512]
    )
    assert accuracy == report["evaluations"][-1]["test_accuracy"]


def test_static_export_refuses_another_length(static_run):
    module = export.load(static_run[1] / "export")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="built for T=28 time steps"
    ):
        module.classify_sequences(tf.zeros([2, 14, 28]))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="reads 28 features per step"
    ):
        module.classify_sequences(tf.zeros([2, 28, 14]))


def test_dynamic_pixels_export_takes_any_length(tmp_path):
    config = config_lib.Config(
        mode="dynamic",
        sequence="pixels",
        units=8,
        train_examples=64,
        test_examples=64,
        batch_size=64,
        max_epochs=1,
        deterministic=False,
        model_dir=str(tmp_path),
    )
    loop.train(config, log=lambda line: None)
    module = export.load(tmp_path / "export")
    for time in (784, 100, 3):
        assert module.classify_sequences(tf.zeros([2, time, 1])).shape == (2, 10)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="reads 1 features per step"
    ):
        module.classify_sequences(tf.zeros([2, 28, 28]))
    assert module.classify_images(tf.zeros([3, 28, 28], tf.uint8)).shape == (3, 10)


RESUME_FLAGS = [
    "--units=16",
    "--train_examples=1024",
    "--test_examples=128",
    "--batch_size=64",
    "--max_epochs=3",
    "--checkpoint_every_steps=5",
    "--log_every_steps=1",
    "--eval_every_steps=7",
    "--mode=static",
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("whole")
    whole = run_cli(*RESUME_FLAGS, f"--model_dir={model_dir}")
    assert whole.wait() == 0, whole.stdout.read()
    return model_dir


def final_weights(model_dir):
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/")]
    assert len(names) >= 5
    return {n: reader.get_tensor(n) for n in names}


def test_an_interrupt_after_an_epochs_last_step_names_it_as_the_progress_line(tmp_path):
    # Two steps an epoch; SIGINT as the second step's line is said: the stop
    # says "epoch 1 step 2", the line's words (not "epoch 2 step 0").
    config = config_lib.Config(
        **{**SMALL, "units": 8, "train_examples": 128, "batch_size": 64},
        max_epochs=2,
        log_every_steps=1,
        model_dir=str(tmp_path),
    )
    lines = []

    def log(line):
        lines.append(line)
        if line.startswith("epoch 1 step 2/2"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(loop.Interrupted) as stopped:
        loop.train(config, log=log)
    progress = [line for line in lines if line.startswith("epoch ")]
    assert progress[-1].startswith("epoch 1 step 2/2 loss ")  # the last one said
    assert str(stopped.value) == (
        "interrupted at epoch 1 step 2; checkpoint saved; rerun the same command to resume"
    )
    assert stopped.value.exit_code == 130


@pytest.mark.parametrize(
    "number", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=lambda n: n.name
)
def test_resume_after_a_signal_equals_uninterrupted_run(
    uninterrupted, tmp_path, number
):
    """Killed, or interrupted (checkpoint at the step, one line, 130 / 143)."""
    stopped = run_cli(*RESUME_FLAGS, f"--model_dir={tmp_path}")
    for line in stopped.stdout:  # stop mid-epoch, after a checkpoint or two
        if line.startswith("epoch 2 step 9/16"):
            stopped.send_signal(number)
            break
    output = stopped.communicate()[0]
    if number == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL
    else:
        assert stopped.returncode == 128 + number, output
        assert "Traceback" not in output
        last = output.strip().splitlines()[-1]
        match = re.fullmatch(
            r"interrupted at epoch 2 step (\d+); checkpoint saved; "
            "rerun the same command to resume",
            last,
        )
        assert match, output
        step = int(match[1])  # a step boundary after the signal: no lost steps
        latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
        assert latest.endswith(f"ckpt-{16 + step}")
    resumed = run_cli(*RESUME_FLAGS, f"--model_dir={tmp_path}")
    output = resumed.communicate()[0]
    assert resumed.returncode == 0, output
    assert "resumed from" in output and "epoch 2, step" in output
    whole_weights = final_weights(uninterrupted)
    resumed_weights = final_weights(tmp_path)
    assert whole_weights.keys() == resumed_weights.keys()
    for name in whole_weights:
        np.testing.assert_array_equal(
            resumed_weights[name], whole_weights[name], err_msg=name
        )
    whole_report = json.loads((uninterrupted / "report.json").read_text())
    resumed_report = json.loads((tmp_path / "report.json").read_text())
    strip = lambda evals: [(e["step"], e["test_accuracy"]) for e in evals]  # noqa: E731
    assert strip(resumed_report["evaluations"]) == strip(whole_report["evaluations"])


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(mode="eager"), "--mode=eager is not one of: static, dynamic"),
        (dict(cell="transformer"), "--cell=transformer is not one of: rnn, gru, lstm"),
        (dict(target_accuracy=0.0), r"--target_accuracy=0.0 must be in \(0, 1\]"),
        (dict(target_accuracy=1.5), r"--target_accuracy=1.5 must be in \(0, 1\]"),
        (dict(batch_size=0), "--batch_size=0 must be > 0"),
        (dict(learning_rate=-1.0), "--learning_rate=-1.0 must be > 0"),
        (dict(schedule="step"), "--schedule=step is not one of: constant, cosine"),
        (dict(decay_epochs=0.0), "--decay_epochs=0.0 must be > 0"),
        (
            dict(dataset="cifar"),
            "--dataset=cifar is not one of: mnist, fashion_mnist, tfds:NAME",
        ),
        (
            dict(model="cnn_rnn", sequence="pixels"),
            "cnn_rnn reads images: use --sequence=rows",
        ),
        (dict(unroll=0), "--unroll=0 must be >= 1"),
        (
            dict(precision="float16"),
            "--precision=float16 is not one of: float32, mixed_bfloat16",
        ),
        (dict(intra_op_threads=-1), "--intra_op_threads=-1 must be >= 0"),
        (dict(unroll=2.0), "--unroll=2.0 must be an int >= 1"),
        (
            dict(mode="static", unroll=4),
            "--unroll=4 applies to --mode=dynamic .* drop --unroll, or use "
            "--mode=dynamic",
        ),
    ],
)
def test_bad_values_are_refused(tmp_path, change, message):
    config = config_lib.Config(model_dir=str(tmp_path), **change)
    with pytest.raises(ValueError, match=message):
        loop.train(config)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(train_examples=100, test_examples=100),
            "--batch_size=256 is larger than the 100 training examples",
        ),
        (dict(dataset="tfds:foo"), "TFDS has no data set called 'foo'"),
        (
            dict(dataset="fashion_mnist", data_dir="/nonexistent/fashion-mnist"),
            "fashion-mnist does not exist",
        ),
        (dict(dataset="cifar"), "--dataset=cifar is not one of"),
    ],
)
def test_a_failed_start_writes_nothing(tmp_path, change, message):
    model_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        loop.train(config_lib.Config(model_dir=str(model_dir), **change))
    assert not model_dir.exists()


def test_cli_corrected_command_runs_after_a_failed_start(tmp_path):
    """The issue's case: batch 256 > 100 examples, then `--batch_size=50`."""
    flags = ["--train_examples=100", "--test_examples=100", f"--model_dir={tmp_path}/r"]
    failed = run_cli(*flags, quiet=False)  # and no TensorFlow C++ lines
    output = failed.communicate()[0]
    assert failed.returncode == 1, output
    assert output.strip().splitlines() == [
        "error: --batch_size=256 is larger than the 100 training examples; lower it"
    ]
    assert not (tmp_path / "r").exists()
    corrected = run_cli(*flags, "--batch_size=50", "--max_epochs=1", "--units=4")
    output = corrected.communicate()[0]
    assert corrected.returncode == 0, output
    assert (tmp_path / "r" / "config.json").exists()


def test_cosine_schedule_decays_over_its_epochs_from_the_saved_step():
    from experiments import baselines

    config = config_lib.Config(learning_rate=0.01, schedule="cosine", decay_epochs=2)
    optimizer = optimizers.make_optimizer(config, steps_per_epoch=50)  # 100 steps
    optimizer.build([tf.Variable(0.0)])
    floor = optimizers.COSINE_FLOOR
    assert baselines.COSINE_FLOOR == floor  # PyTorch's schedule is the same
    assert baselines.EVAL_BATCH == config_lib.EVAL_BATCH  # and its evaluations
    quarter = floor + (1 - floor) * (1 + np.cos(np.pi / 4)) / 2
    for step, factor in (
        (0, 1.0),
        (25, quarter),
        (50, (1 + floor) / 2),
        (100, floor),
        (150, floor),
    ):
        optimizer.iterations.assign(step)  # what a resumed run restores
        expected = 0.01 * factor
        assert float(optimizer.learning_rate) == pytest.approx(expected, abs=1e-9)
        assert baselines.cosine_decay(step, 100) == pytest.approx(factor)
    constant = optimizers.make_optimizer(
        config_lib.Config(learning_rate=0.01, schedule="constant"), 50
    )
    constant.build([tf.Variable(0.0)])
    constant.iterations.assign(100)
    assert float(constant.learning_rate) == pytest.approx(0.01)


def test_unwritable_model_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    config = config_lib.Config(model_dir=str(blocker / "run"))
    with pytest.raises(ValueError, match="is not writable.*choose a directory"):
        loop.train(config)


def test_model_dir_of_another_configuration_is_refused(static_run, tmp_path):
    _, model_dir = static_run
    config = config_lib.Config(
        mode="static", max_epochs=3, model_dir=str(model_dir), **{**SMALL, "units": 64}
    )
    with pytest.raises(
        ValueError,
        match="holds a run with another configuration "
        r"\(units=32 there, 64 now\)",
    ):
        loop.train(config)


def test_corrupt_data_file_is_refused(tmp_path):
    corrupt = tmp_path / "mnist"
    shutil.copytree(data.MNIST_DIR, corrupt)
    (corrupt / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    config = config_lib.Config(model_dir=str(tmp_path / "run"), data_dir=str(corrupt))
    with pytest.raises(
        data.DataError,
        match="t10k-labels-idx1-ubyte.gz.*ec29112dd5afa0611ce80d1b7f02629c",
    ):
        loop.train(config)


def test_cli_refuses_bad_flags_with_messages(tmp_path):
    cases = {
        ("--mode=eager",): "error: --mode=eager is not one of: static, dynamic",
        (
            "--batch_size=0",
            f"--model_dir={tmp_path}",
        ): "error: --batch_size=0 must be > 0",
    }
    for flags, message in cases.items():
        process = run_cli(*flags)
        output = process.communicate()[0]
        assert process.returncode != 0
        assert message in output, output


def test_permuted_export_reads_images_in_the_training_order(tmp_path):
    from tfrnn.tasks.classify import models

    model = models.build_classifier("dynamic", "gru", 8, time_steps=784, features=1)
    meta = {
        "mode": "dynamic",
        "sequence": "permuted",
        "time_steps": 784,
        "features": 1,
        "image_shape": [28, 28],
        "permutation_seed": 0,
    }
    export.export(model, tmp_path, meta)
    images = data.load_arrays("mnist").x_test[:4]
    expected = model(data.to_sequences(images, "permuted"), training=False)
    loaded = export.load(tmp_path)
    got = loaded.classify_images(tf.constant(images))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    unpermuted = model(data.to_sequences(images, "pixels"), training=False)
    assert np.abs(np.asarray(unpermuted) - np.asarray(expected)).max() > 1e-4


def test_columns_and_symmetric_export_reads_images_as_trained(tmp_path):
    """The SavedModel's `classify_images` reads uint8 images as the run trained on them:
    columns, in [-1, 1]."""
    from tfrnn.tasks.classify import models

    model = models.build_classifier("dynamic", "gru", 8)
    meta = {"mode": "dynamic", "sequence": "columns", "normalize": "symmetric",
            "time_steps": 28, "features": 28, "image_shape": [28, 28],
            "permutation_seed": 0}  # fmt: skip
    export.export(model, tmp_path, meta)
    images = data.load_arrays("mnist").x_test[:4]
    columns = np.transpose(images, (0, 2, 1)).astype(np.float32) / 127.5 - 1.0
    expected = model(columns, training=False)
    loaded = export.load(tmp_path)
    got = loaded.classify_images(tf.constant(images))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    rows = model(data.to_sequences(images, "rows", normalize="symmetric"), training=False)
    assert np.abs(np.asarray(rows) - np.asarray(expected)).max() > 1e-4


def test_adadelta_is_torchs_with_pytorchs_defaults():
    """--optimizer=adadelta takes torch.optim.Adadelta's steps (rho 0.9, eps 1e-6):
    s = rho s + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(s + eps) g;
    u = rho u + (1 - rho) d^2;  w -= lr d.  Loss w^2 / 2 (g = w) from w = 1, lr 0.1:
    step 1: s = 0.1, d = sqrt(1e-6 / 0.100001) = 0.0031622618, w = 0.99968377382,
    u = 0.1 d^2 = 0.99999e-6;
    step 2: s = 0.09 + 0.1 w^2 = 0.18993676476, d = sqrt(1.99999e-6 / 0.18993776476) w,
    w = 0.99935938125 (Keras's own rho 0.95, eps 1e-7 give 0.99985858 at step 1)."""
    config = config_lib.Config(optimizer="adadelta", learning_rate=0.1, clip_norm=0,
                               schedule="constant")  # fmt: skip
    optimizer = optimizers.make_optimizer(config, steps_per_epoch=10)
    w = tf.Variable([1.0, -2.0], dtype=tf.float64)
    got = []
    for _ in range(2):
        optimizer.apply_gradients([(tf.identity(w), w)])  # the gradient of sum(w^2) / 2
        got.append(w.numpy().copy())
    np.testing.assert_allclose(got[0][0], 0.99968377382, rtol=1e-10)
    step_2 = 0.99968377382 * (1 - 0.1 * np.sqrt(1.99999e-6 / 0.18993776476))
    np.testing.assert_allclose(got[1][0], step_2, rtol=1e-10)
    np.testing.assert_allclose(got[1][0], 0.99935938125, rtol=1e-10)
    # w = -2: d = sqrt(1e-6 / (0.4 + 1e-6)) * -2 at step 1
    np.testing.assert_allclose(got[0][1], -2.0 + 0.1 * 2 * np.sqrt(1e-6 / 0.400001), rtol=1e-9)


def test_cli_help_states_the_new_choices():
    help_text = subprocess.run(
        [sys.executable, "-m", "tfrnn.train", "--helpfull"], cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    ).stdout  # fmt: skip
    text = " ".join(help_text.split())
    assert "adadelta with PyTorch's defaults, rho 0.9 and epsilon 1e-6" in text
    assert "columns (T=28: column t at step t" in text
    assert "<unit|symmetric>" in text or "unit, in [0, 1]" in text


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_xla_train_step_equals_the_plain_one(tmp_path, mode):
    """`--jit_compile`: the same two Adam steps from the same weights, and the
    run reports that XLA compiled them."""
    losses, weights = {}, {}
    for jit_compile in (False, True):
        config = config_lib.Config(
            mode=mode,
            jit_compile=jit_compile,
            model_dir=str(tmp_path / f"xla-{jit_compile}"),
            **{**SMALL, "units": 16, "train_examples": 256},
        )
        trainer = loop.TrainingLoop(config, log=lambda line: None)
        indices = tf.range(config.batch_size, dtype=tf.int32)
        losses[jit_compile] = [float(trainer.train_step(indices)["loss"]) for _ in range(2)]
        weights[jit_compile] = [v.numpy() for v in trainer.model.trainable_variables]
        assert trainer.xla_ran() is jit_compile
    assert losses[True][1] < losses[True][0]  # the first step changed the weights
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
    for compiled, plain in zip(weights[True], weights[False]):
        np.testing.assert_allclose(compiled, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode, unroll", [("dynamic", 3), ("static", 1)])
def test_unrolled_train_step_equals_the_plain_loop(tmp_path, mode, unroll):
    """`--unroll=3` (and static, k = T) take the same two Adam steps as the
    plain while loop from the same weights; the report says which k ran."""
    losses, weights = {}, {}
    for name, change in (("loop", {}), ("other", dict(mode=mode, unroll=unroll))):
        config = config_lib.Config(
            model_dir=str(tmp_path / name),
            **{**SMALL, "units": 16, "train_examples": 256, **change},
        )
        trainer = loop.TrainingLoop(config, log=lambda line: None)
        indices = tf.range(config.batch_size, dtype=tf.int32)
        losses[name] = [float(trainer.train_step(indices)["loss"]) for _ in range(2)]
        weights[name] = [v.numpy() for v in trainer.model.trainable_variables]
        ran = report_lib.unroll_ran(trainer.model, trainer.task.time_steps)
        assert ran == {"loop": 1, "other": 28 if mode == "static" else unroll}[name]
    assert losses["other"][1] < losses["other"][0]
    np.testing.assert_allclose(losses["other"], losses["loop"], rtol=1e-5)
    for other, plain in zip(weights["other"], weights["loop"]):
        np.testing.assert_allclose(other, plain, rtol=1e-4, atol=1e-5)


def test_thread_defaults_follow_the_core_count():
    """Intra-op 1 / inter-op 2 up to the 2 cores they were measured faster on,
    TensorFlow's own choice (0, 0) on more; read when the config is imported."""
    from tfrnn.training.config import default_threads

    assert default_threads(1) == default_threads(2) == (1, 2)
    assert default_threads(3) == default_threads(16) == (0, 0)
    code = (
        "import os; os.cpu_count = lambda: {cores}\n"
        "from tfrnn.tasks.classify.config import Config\n"
        "print(Config().intra_op_threads, Config().inter_op_threads)"
    )
    for cores, expected in ((2, "1 2"), (16, "0 0")):
        result = subprocess.run([sys.executable, "-c", code.format(cores=cores)], cwd=ROOT,
                                capture_output=True, text=True, check=True)  # fmt: skip
        assert result.stdout.split() == expected.split()


def test_fused_kernel_takes_the_generic_kernels_steps_and_is_reported(tmp_path):
    """`--kernel=fused` (an LSTM stack, 2 steps per iteration): the same two
    Adam steps as `--kernel=generic` from the same weights; the report names
    the kernel that ran."""
    losses, weights, kernels = {}, {}, {}
    for kernel in ("generic", "fused"):
        config = config_lib.Config(
            model_dir=str(tmp_path / kernel), kernel=kernel, unroll=2, layers=2,
            **{**SMALL, "units": 16, "train_examples": 256},
        )  # fmt: skip
        trainer = loop.TrainingLoop(config, log=lambda line: None)
        indices = tf.range(config.batch_size, dtype=tf.int32)
        losses[kernel] = [float(trainer.train_step(indices)["loss"]) for _ in range(2)]
        weights[kernel] = [v.numpy() for v in trainer.model.trainable_variables]
        kernels[kernel] = report_lib.kernel_name(config.cell, trainer.model)
    assert kernels == {
        "generic": "generic: tf.while_loop, 2 steps unrolled per iteration (lstm cell)",
        "fused": "fused: whole-sequence kernel, tf.while_loop, 2 steps unrolled per "
        "iteration (lstm cell)",
    }
    assert losses["fused"][1] < losses["fused"][0]
    np.testing.assert_allclose(losses["fused"], losses["generic"], rtol=1e-5)
    for fused, generic in zip(weights["fused"], weights["generic"]):
        np.testing.assert_allclose(fused, generic, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mode=static"], "--kernel=fused runs a dynamic lstm or gru (got --mode=static"),
        (["--cell=peephole_lstm"], "--kernel=fused runs a dynamic lstm or gru (got "
         "--mode=dynamic --cell=peephole_lstm): use --mode=dynamic with --cell=lstm or gru"),
    ],
)
def test_cli_refuses_the_fused_kernel_where_it_cannot_run(tmp_path, flags, message):
    process = run_cli("--kernel=fused", *flags, f"--model_dir={tmp_path}/r")
    output = process.communicate()[0]
    assert process.returncode == 1, output
    assert output.strip().splitlines()[-1].startswith("error: " + message)
    assert not (tmp_path / "r").exists()


TINY_FLAGS = [
    "--units=8",
    "--train_examples=512",
    "--test_examples=128",
    "--batch_size=64",
    "--max_epochs=1",
    "--learning_rate=0.01",
    "--nodeterministic",
]


def test_cli_unroll_k_and_threads_are_reported(tmp_path):
    process = run_cli(
        *TINY_FLAGS,
        "--unroll=4",
        "--intra_op_threads=1",
        "--inter_op_threads=2",
        f"--model_dir={tmp_path}",
    )
    output = process.communicate()[0]
    assert process.returncode == 0, output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["run"]["unroll"] == 4 and report["unroll"] == 4
    assert report["threads"] == {"intra_op": 1, "inter_op": 2}
    assert "| threads intra / inter op     | 1 / 2 |" in output
    assert report["kernel"] == (
        "generic: tf.while_loop, 4 steps unrolled per iteration (lstm cell)"
    )
    assert "| unroll (steps per iteration) | 4 (while loop) |" in output
    assert "4 steps unrolled per iteration" in output


def test_cli_refuses_unroll_for_static(tmp_path):
    process = run_cli("--mode=static", "--unroll=4", f"--model_dir={tmp_path}/r")
    output = process.communicate()[0]
    assert process.returncode == 1, output
    assert output.strip().splitlines()[-1].startswith(
        "error: --unroll=4 applies to --mode=dynamic"
    )
    assert not (tmp_path / "r").exists()


def test_cli_bidirectional_trains_and_writes_both_models(tmp_path):
    import keras

    process = run_cli(*TINY_FLAGS, "--bidirectional", f"--model_dir={tmp_path}")
    output = process.communicate()[0]
    assert process.returncode == 0, output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kernel"] == "generic: tf.while_loop (lstm cell, bidirectional)"
    lstm = 4 * 8 * (28 + 8) + 4 * 8
    assert report["parameters"] == 2 * lstm + 2 * 8 * 10 + 10  # two LSTMs, 16 -> 10
    assert report["export"]["keras"]["bytes"] == (tmp_path / "model.keras").stat().st_size
    assert "dynamic / lstm x1 (8 units), bidirectional" in output
    model = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(model.get_layer("rnn"), keras.layers.Bidirectional)
    module = export.load(tmp_path / "export")
    images = data.load_arrays("mnist").x_test[:128]
    sequences = data.to_sequences(images, "rows")
    from_keras = np.asarray(model(sequences, training=False))
    np.testing.assert_allclose(
        from_keras, module.classify_sequences(tf.constant(sequences)), atol=1e-6
    )
    labels = data.load_arrays("mnist").y_test[:128]
    accuracy = np.mean(np.argmax(from_keras, -1) == labels)
    assert accuracy == report["evaluations"][-1]["test_accuracy"]
    assert accuracy > 0.2  # 10 classes: above chance after 8 steps
    # The backward direction reads the rows last to first: its last output is
    # a plain loop's over the reversed rows.
    layer = model.get_layer("rnn")
    backward = keras.Model(model.inputs[0], layer.backward_layer(model.inputs[0]))
    forward_of_reversed = tfrnn_dynamic(layer.backward_layer.cell, sequences[:, ::-1])
    np.testing.assert_allclose(
        backward(sequences), forward_of_reversed, rtol=1e-5, atol=1e-6
    )


def tfrnn_dynamic(cell, sequences):
    """Each row's last output of a plain Python loop over the steps (LSTM-8)."""
    state = [tf.zeros([len(sequences), 8])] * 2
    for t in range(sequences.shape[1]):
        output, state = cell(tf.constant(sequences[:, t]), state)
    return output


def test_threads_are_reported_as_the_process_has_them(tmp_path):
    """In a process whose TensorFlow has started, thread pools no longer
    change: the report says the ones that ran, not the ones asked for."""
    tf.constant(1.0) + 1.0  # the runtime runs
    kept = runtime.set_threads(0, 0)
    asked = kept["intra_op"] + 3
    assert runtime.set_threads(asked, 0) == kept
    assert kept == {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def test_mixed_bfloat16_trains_in_bfloat16_with_float32_weights(tmp_path):
    config = config_lib.Config(
        precision="mixed_bfloat16",
        model_dir=str(tmp_path),
        **{**SMALL, "units": 16, "train_examples": 256},
    )
    trainer = loop.TrainingLoop(config, log=lambda line: None)
    rnn = trainer.model.get_layer("rnn")
    assert rnn.cell.compute_dtype == "bfloat16"
    assert {v.dtype for v in trainer.model.trainable_variables} == {"float32"}
    probabilities = trainer.model(tf.zeros([2, 28, 28]))
    assert probabilities.dtype == tf.float32  # the softmax computes in float32
    hidden = rnn(tf.zeros([2, 28, 28]))
    assert hidden.dtype == tf.bfloat16
    indices = tf.range(config.batch_size, dtype=tf.int32)
    losses = [float(trainer.train_step(indices)["loss"]) for _ in range(3)]
    assert losses[2] < losses[0]
    assert report_lib.unroll_ran(trainer.model, 28) == 1
