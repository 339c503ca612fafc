"""The language model: streams and chunks by hand, the carried state, bits per
character by hand and against a Markov chain's entropy rate, exact resume,
sampling, the export without tfrnn, bad text files."""

import json
import math
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrnn.tasks.language_model import config as config_lib
from tfrnn.tasks.language_model import cells, data, sampling
from tfrnn.training import loop
from tfrnn.training.errors import ConfigError, DataError

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A first-order Markov chain over 4 characters: P(next | current).
STATES = "ab\nc"
TRANSITIONS = np.array([
    [0.1, 0.6, 0.1, 0.2],
    [0.5, 0.1, 0.3, 0.1],
    [0.7, 0.1, 0.1, 0.1],
    [0.25, 0.25, 0.25, 0.25],
])  # fmt: skip


def markov_text(length, seed=0):
    rng = np.random.default_rng(seed)
    state, characters = 0, []
    for _ in range(length):
        state = rng.choice(4, p=TRANSITIONS[state])
        characters.append(STATES[state])
    return "".join(characters)


def entropy_rate():
    """Bits per character of the chain in its stationary distribution."""
    values, vectors = np.linalg.eig(TRANSITIONS.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    stationary /= stationary.sum()
    return float(-np.sum(stationary[:, None] * TRANSITIONS * np.log2(TRANSITIONS)))


@pytest.fixture(scope="module")
def markov_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "markov.txt"
    path.write_text(markov_text(60_000))
    return path


def small_config(text, model_dir, **changes):
    return config_lib.Config(**{
        **dict(text=str(text), units=16, batch_size=8, bptt=20, max_epochs=1,
               eval_every_steps=10**6, model_dir=str(model_dir), log_every_steps=1,
               target_bpc=0.1, deterministic=False),  # op determinism is per process
        **changes,
    })  # fmt: skip


def test_streams_and_chunks_of_a_hand_checked_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghijklmnopqrst" * 3 + "uvwxyz")  # 66 characters
    text = data.load(path)
    assert len(text.train) == 59 and text.vocabulary[1:4] == ("a", "b", "c")
    streams = data.streams(text.train, 3)  # 3 streams of 19 characters
    assert streams.shape == (3, 19)
    first = "".join(text.vocabulary[i] for i in streams[1])
    assert first == ("abcdefghijklmnopqrst" * 3)[19:38]
    assert data.chunks_per_stream(19, 6) == 3  # inputs 0..17, targets 1..18
    assert data.chunks_per_stream(19, 18) == 1 and data.chunks_per_stream(19, 19) == 0
    assert text.test.tolist() == [text.vocabulary.index(c) if c in text.vocabulary else 0
                                  for c in ("abcdefghijklmnopqrst" * 3 + "uvwxyz")[59:]]  # fmt: skip
    assert text.test[-1] == 0  # "z": never in the training part


def chunk_batch(task, step):
    """The batch of chunk `step`, read from the task's own data."""
    return next(iter(task.batches(0, step)))


def test_the_state_entering_chunk_i_plus_1_is_the_state_leaving_chunk_i(markov_file, tmp_path):
    trainer = loop.TrainingLoop(small_config(markov_file, tmp_path), log=lambda line: None)
    task, model = trainer.task, trainer.model
    streams = task.streams.numpy()
    state = [tf.zeros_like(c) for c in task.carried]
    for step in range(3):
        x = streams[:, step * 20 : step * 20 + 20]
        _, *expected = model([tf.constant(x), *state], training=False)  # weights before the step
        loss = trainer.train_step(chunk_batch(task, step))["loss"]
        for carried, leaf in zip(task.carried, expected):
            np.testing.assert_allclose(carried.numpy(), leaf.numpy(), atol=1e-6)
        state = [tf.constant(c.numpy()) for c in task.carried]
    assert float(loss) > 0
    zeros = [tf.zeros_like(c) for c in state]  # step 0 of an epoch starts from zeros
    _, *expected = model([tf.constant(streams[:, :20]), *zeros], training=False)
    trainer.train_step(chunk_batch(task, 0))
    for carried, leaf in zip(task.carried, expected):
        np.testing.assert_allclose(carried.numpy(), leaf.numpy(), atol=1e-6)


def test_no_gradient_crosses_the_carried_state(markov_file, tmp_path):
    """Chunk 1's gradient is that of chunk 1 from a constant state, not the
    full backpropagation through chunks 0 and 1."""
    trainer = loop.TrainingLoop(small_config(markov_file, tmp_path), log=lambda line: None)
    task, model = trainer.task, trainer.model
    streams, weights = task.streams.numpy(), model.trainable_variables
    chunk = [tf.constant(streams[:, c * 20 : c * 20 + 21]) for c in range(2)]

    def chunk_loss(c, state):
        logits, *final_state = model([chunk[c][:, :-1], *state], training=True)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            chunk[c][:, 1:], logits)), final_state  # fmt: skip

    zeros = [tf.zeros_like(c) for c in task.carried]
    _, carried = chunk_loss(0, zeros)
    with tf.GradientTape() as tape:
        truncated = tape.gradient(chunk_loss(1, carried)[0], weights)
    with tf.GradientTape() as tape:
        full = tape.gradient(chunk_loss(1, chunk_loss(0, zeros)[1])[0], weights)
    for carried_variable, leaf in zip(task.carried, carried):
        carried_variable.assign(leaf)
    with tf.GradientTape() as tape:
        through_task = tape.gradient(task.loss(model, chunk_batch(task, 1))[0], weights)
    dense = lambda gradients: [tf.convert_to_tensor(g).numpy() for g in gradients]  # noqa: E731
    truncated, through_task, full = dense(truncated), dense(through_task), dense(full)
    for name, t, g in zip([w.path for w in weights], truncated, through_task):
        np.testing.assert_allclose(g, t, atol=1e-6, err_msg=name)
    assert any(not np.allclose(t, f, atol=1e-4) for t, f in zip(truncated, full))


def test_bits_per_character_against_hand_computed_value(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(markov_text(4000, seed=1))
    trainer = loop.TrainingLoop(small_config(path, tmp_path / "run", batch_size=4), log=len)
    task, model = trainer.task, trainer.model
    layer = model.get_layer("characters")
    vocabulary = task.text.vocabulary
    p = np.full(len(vocabulary), 0.01)
    p[[vocabulary.index(c) for c in STATES]] = [0.4, 0.3, 0.2, 0.1 - 0.01 * (len(p) - 4)]
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.log(p)])  # every step predicts p
    streams = task.test_streams  # 4 streams of the last 400 characters; 4 chunks of 20
    targets = np.concatenate([streams[:, c * 20 + 1 : c * 20 + 21].ravel() for c in range(4)])
    assert streams.shape == (4, 100) and len(targets) == 320
    expected = -np.mean(np.log2(p[targets]))
    assert task.evaluate(model)["test_bpc"] == pytest.approx(expected, rel=1e-6)


def test_learns_a_markov_chain_to_its_entropy_rate(markov_file, tmp_path):
    """Held-out bpc within 0.15 bits of the entropy rate, and not below what
    the true chain scores on the same held-out characters."""
    config = small_config(markov_file, tmp_path, units=32, batch_size=32, bptt=50,
                          max_epochs=4, learning_rate=1e-2, target_bpc=0.1)  # fmt: skip
    report = loop.train(config, log=lambda line: None)
    text = data.load(markov_file)
    held_out = markov_file.read_text()[len(text.train):]
    best = report["evaluations"][-1]["test_bpc"]
    truth = -np.mean([math.log2(TRANSITIONS[STATES.index(a), STATES.index(b)])
                      for a, b in zip(held_out, held_out[1:])])  # fmt: skip
    assert abs(truth - entropy_rate()) < 0.05  # the sample is typical
    assert truth - 0.02 <= best <= entropy_rate() + 0.15, (best, truth, entropy_rate())


def run_cli(module, *flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", module, *flags], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def resume_flags(text, model_dir):
    return ["--task=language_model", f"--text={text}", "--units=16", "--batch_size=16",
            "--bptt=25", "--max_epochs=2", "--checkpoint_every_steps=7", "--log_every_steps=1",
            "--eval_every_steps=40", "--target_bpc=0.5", f"--model_dir={model_dir}"]  # fmt: skip


def final_state_of(model_dir):
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map()
             if n.startswith(("model/", "carried_state/"))]  # fmt: skip
    assert any(n.startswith("carried_state/") for n in names)
    return {n: reader.get_tensor(n) for n in names}


def test_killed_mid_epoch_resumes_to_the_weights_and_state_of_an_uninterrupted_run(
    markov_file, tmp_path
):
    whole = run_cli("tfrnn.train", *resume_flags(markov_file, tmp_path / "whole"))
    assert whole.wait() == 0, whole.stdout.read()
    stopped = run_cli("tfrnn.train", *resume_flags(markov_file, tmp_path / "killed"))
    for line in stopped.stdout:
        if line.startswith("epoch 2 step 10/"):
            stopped.send_signal(signal.SIGKILL)
            break
    stopped.communicate()
    assert stopped.returncode == -signal.SIGKILL
    resumed = run_cli("tfrnn.train", *resume_flags(markov_file, tmp_path / "killed"))
    output = resumed.communicate()[0]
    assert resumed.returncode == 0 and "resumed from" in output, output
    expected, found = final_state_of(tmp_path / "whole"), final_state_of(tmp_path / "killed")
    assert expected.keys() == found.keys()
    for name in expected:
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)
    reports = [json.loads((tmp_path / d / "report.json").read_text()) for d in ("whole", "killed")]
    assert [e["test_bpc"] for e in reports[0]["evaluations"]] == [
        e["test_bpc"] for e in reports[1]["evaluations"]]  # fmt: skip


@pytest.fixture(scope="module")
def trained(markov_file, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("lm")
    loop.train(small_config(markov_file, model_dir), log=lambda line: None)
    return model_dir


def test_sampling_is_the_same_for_a_seed_from_the_export_and_the_checkpoint(trained):
    texts = {}
    for format in ("saved_model", "checkpoint"):
        generator = sampling.load_generator(trained, format, log=lambda line: None)
        next_characters, vocabulary, sizes, _ = generator
        texts[format] = [sampling.sample(next_characters, vocabulary, sizes, "ab", 60, 1.0, seed)
                         for seed in (0, 0, 1)]  # fmt: skip
    assert texts["saved_model"] == texts["checkpoint"]
    same, again, other = texts["saved_model"]
    assert same == again and same != other
    assert len(same) == 62 and same.startswith("ab") and set(same) <= set(STATES)
    with pytest.raises(DataError, match="never saw in training: 'xz'"):
        sampling.sample(next_characters, vocabulary, sizes, "axz", 5)


def test_the_export_generates_without_tfrnn(trained):
    code = f"""
import json, sys
import tensorflow as tf
module = tf.saved_model.load({str(trained / "export")!r})
meta = json.load(open({str(trained / "export" / "tfrnn.json")!r}))
ids = tf.constant([[meta["vocabulary"].index("a")]], tf.int32)
state = [tf.zeros([1, size]) for size in meta["state_sizes"]]
out = module.signatures["serving_default"](ids=ids, **{{f"state_{{i}}": s for i, s in enumerate(state)}})
assert out["log_probabilities"].shape == (1, 1, len(meta["vocabulary"]))
print(sorted(out), "tfrnn" in sys.modules)
"""
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)  # fmt: skip
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert printed.stdout.split("] ")[-1].strip() == "False"
    asset = json.loads((trained / "export" / "assets" / "vocabulary.json").read_text())
    meta = json.loads((trained / "export" / "tfrnn.json").read_text())
    assert asset["characters"] == meta["vocabulary"] and meta["vocabulary"][0] == data.UNKNOWN
    assert "'log_probabilities', 'state_0', 'state_1'" in printed.stdout


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "is empty"),
    (b"abc\x00def" * 10, "NUL bytes: a binary file"),
    (b"caf\xe9 au lait" * 10, "is not UTF-8"),
    (b"short text", "too short for --batch_size=8 streams of --bptt=20"),
])  # fmt: skip
def test_bad_text_files_are_refused_with_what_to_do(tmp_path, content, message):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        loop.TrainingLoop(small_config(path, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_cli_errors_are_one_line(tmp_path):
    process = run_cli("tfrnn.train", "--task=language_model", f"--text={tmp_path}/none.txt",
                      f"--model_dir={tmp_path}/run")  # fmt: skip
    output = process.communicate()[0]
    assert process.returncode == 1 and output.strip().splitlines()[-1] == (
        f"error: --text={tmp_path}/none.txt: no such file")
    process = run_cli("tfrnn.train", "--task=language_model", "--dataset=mnist")
    output = process.communicate()[0]
    assert process.returncode == 1
    assert "error: --dataset applies to --task=classify, not --task=language_model" in output


def test_the_best_unit_per_feature_is_found_by_correlation():
    rng = np.random.default_rng(0)
    features = cells.text_features('def f(x):\n    return "a, (b"  # c\'s\n' * 20)
    noise = rng.normal(size=(len(features["in_string"]), 3))
    states = {"h": noise, "c": np.stack([noise[:, 0], -2 * features["bracket_depth"]
                                          + 0.1 * noise[:, 1], noise[:, 2]], 1)}  # fmt: skip
    rows = {row["feature"]: row for row in cells.best_units(features, states)}
    assert (rows["bracket_depth"]["state"], rows["bracket_depth"]["unit"]) == ("c", 1)
    assert rows["bracket_depth"]["correlation"] < -0.95
    assert all(abs(rows[f]["correlation"]) < 0.5 for f in ("line_position", "indentation"))


def test_predict_reads_the_cells_of_a_language_model(trained, tmp_path):
    process = run_cli("tfrnn.predict", f"--model_dir={trained}", f"--output_dir={tmp_path}")
    output = process.communicate()[0]
    assert process.returncode == 0, output
    record = json.loads((tmp_path / "cells.json").read_text())
    report = json.loads((trained / "report.json").read_text())
    assert report["cells"]["units"] == record["units"]
    assert report["best_test_bpc"] == min(e["test_bpc"] for e in report["evaluations"])
    assert [row["feature"] for row in record["units"]] == list(cells.FEATURES)
    for row in record["units"]:
        assert f"{row['feature']:<14} {row['state']} unit {row['unit']}: r = " in output
    assert (tmp_path / "cells.png").stat().st_size > 10_000
    assert (tmp_path / "cells.html").read_text().count("<span") == 2000
    process = run_cli("tfrnn.predict", f"--model_dir={trained}", f"--output_dir={tmp_path}",
                      "--units_to_show=c:3,h:15")  # fmt: skip
    assert process.wait() == 0
    page = (tmp_path / "cells.html").read_text()
    assert page.count("<span") == 4000 and "<h3>c unit 3</h3>" in page
    process = run_cli("tfrnn.predict", f"--model_dir={trained}", "--units_to_show=c:16")
    output = process.communicate()[0]
    assert process.returncode == 1 and output.strip().splitlines()[-1] == (
        "error: --units_to_show=c:16 is not STATE:UNIT of this model's states: h (0-15), c (0-15)")


@pytest.mark.parametrize("changes", [
    dict(mode="static"), dict(unroll=4), dict(cell="gru", layers=2),
    dict(precision="mixed_bfloat16"),
], ids=lambda changes: "-".join(f"{k}={v}" for k, v in changes.items()))  # fmt: skip
def test_every_unroll_stack_and_precision_trains_and_generates(markov_file, tmp_path, changes):
    report = loop.train(small_config(markov_file, tmp_path, **changes), log=lambda line: None)
    assert report["evaluations"][-1]["test_bpc"] < 2.2  # uniform over the 5 ids: 2.32
    texts = []
    for format in ("saved_model", "checkpoint"):
        next_characters, vocabulary, sizes, _ = sampling.load_generator(tmp_path, format, len)
        texts.append(sampling.sample(next_characters, vocabulary, sizes, "ab", 30, 1.0, 7))
    assert texts[0] == texts[1]
