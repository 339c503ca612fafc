"""The benchmark: one tiny run, its records, table and ratios. No timing is asserted."""

import copy
import json
import os
import pathlib
import subprocess
import sys

import pytest

from experiments import bench, harness

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Reached at the first evaluation (4 steps): a model that predicts any one
# class already gets ~10 % of 256 test rows right.
TINY = harness.settings(
    bench,
    False,
    dict(
        target=0.05,
        max_epochs=1,
        units=16,
        train_examples=1024,
        test_examples=256,
        eval_every_steps=4,
    ),
)
POSITIVE = (
    "first_step_seconds", "first_step_total_seconds", "median_step_ms", "examples_per_second",
    "steps", "steps_timed", "wall_seconds", "train_seconds", "step_seconds", "eval_seconds",
    "peak_memory_bytes", "parameters", "process_seconds", "seconds_to_target",
    "train_seconds_to_target", "step_seconds_to_target", "epochs_to_target", "steps_to_target",
)  # fmt: skip


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Every system (torch only when importable, keras_cudnn only on a GPU)."""
    output = tmp_path_factory.mktemp("results")
    lines = []
    s = {**TINY, "systems": list(bench.SYSTEMS), "recipes": ["shared"]}
    paths = bench.run(s, output, quick=True, log=lines.append)
    records = json.loads(paths["json"].read_text())
    return paths, records, output, lines


def test_writes_json_and_markdown(quick_run):
    paths, records, output, _ = quick_run
    assert paths["json"] == output / "bench-quick.json"
    assert paths["md"] == output / "bench-quick.md"
    assert isinstance(records, list) and len(records) == len(bench.SYSTEMS)


def test_every_record_has_the_schema(quick_run):
    _, records, _, _ = quick_run
    assert [(r["system"], r["recipe"]) for r in records] == [
        (s, "shared") for s in bench.SYSTEMS
    ]
    assert len({r["run_id"] for r in records}) == 1
    for r in records:
        assert set(r) == set(bench.RECORD_FIELDS), r["system"]
        assert r["status"] in ("ok", "failed", "skipped", "over_budget")
        assert r["experiment"] == "bench"
        assert r["recipe_values"] == bench.SHARED_RECIPE
        assert r["settings"]["units"] == TINY["units"] and r["target"] == TINY["target"]
        assert {"date", "device", "tensorflow", "keras", "tfrnn"} <= set(
            r["environment"]
        )
    by_system = {r["system"]: r for r in records}
    for system in ("tfrnn_dynamic", "tfrnn_static", "keras_while", "keras_unroll"):
        assert by_system[system]["status"] == "ok", by_system[system]["error"]
    gpu = by_system["tfrnn_dynamic"]["gpu"]
    assert by_system["keras_cudnn"]["status"] == ("ok" if gpu else "skipped")
    if bench.available("torch") is None:
        assert by_system["torch"]["status"] == "ok", by_system["torch"]["error"]
        assert by_system["torch"]["environment"]["torch"]
    else:
        assert by_system["torch"]["status"] == "skipped"
        assert "PyTorch" in by_system["torch"]["note"]

    for r in records:
        if r["status"] != "ok":
            assert r["note"] and r["median_step_ms"] is None
            continue
        assert r["target_reached"] is True, r["system"]
        for field in POSITIVE:
            assert r[field] > 0, (r["system"], field)
        assert r["best_test_accuracy"] >= r["target"]
        assert r["seconds_to_target"] >= r["train_seconds_to_target"]
        assert r["train_seconds_to_target"] >= r["step_seconds_to_target"]
        assert r["examples_per_second"] == pytest.approx(
            r["recipe_values"]["batch_size"] / r["median_step_ms"] * 1000
        )
        assert r["evaluations"] and r["evaluations"][-1]["test_accuracy"] >= 0.05
        for e in r["evaluations"]:
            assert set(e) == {
                "step",
                "epoch",
                "seconds",
                "train_seconds",
                "step_seconds",
                "test_accuracy",
            }
            assert e["seconds"] >= e["train_seconds"] > 0 and e["step"] > 0
        assert isinstance(r["kernel"], str) and isinstance(r["xla"], bool)
        assert r["xla"] is False  # the shared recipe: jit_compile=False
    # tfrnn traces before its first step; Keras and PyTorch trace inside it.
    for system in ("tfrnn_dynamic", "tfrnn_static"):
        assert by_system[system]["trace_seconds"] > 0
    assert by_system["keras_while"]["trace_seconds"] is None
    # The same LSTM: equal parameter counts for tfrnn and Keras.
    params = {by_system[s]["parameters"] for s in bench.SYSTEMS[:4]}
    assert params == {4 * 16 * (28 + 16 + 1) + 16 * 10 + 10}
    if not gpu:  # the kernel named is the one read from the traced graph
        assert by_system["keras_while"]["kernel"] == "generic while_loop"
        assert by_system["keras_unroll"]["kernel"] == "generic unrolled"


def test_markdown_table_has_a_row_per_record(quick_run):
    paths, records, _, lines = quick_run
    markdown = paths["md"].read_text()
    table = markdown.split("\n## ")[0]
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| system |")
    ]
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == len(bench.COLUMNS)
        assert cells[:2] == [record["system"], record["recipe"]]
        if record["status"] == "skipped":
            assert cells[-1].startswith("skipped:")
    assert markdown.strip() in "\n".join(lines)  # printed as well


def test_ratios_come_from_this_run_only(quick_run):
    paths, records, _, _ = quick_run
    run_id = records[0]["run_id"]
    found = bench.ratios(records)
    by_system = {r["system"]: r for r in records}
    pairs = {(f["metric"], f["numerator"], f["denominator"]) for f in found}
    assert ("median_step_ms", "tfrnn_dynamic", "keras_while") in pairs
    assert ("median_step_ms", "tfrnn_static", "keras_while") in pairs
    assert {("train_seconds_to_target", m) for m in bench.TFRNN_SYSTEMS} <= {
        (metric, numerator) for metric, numerator, _ in pairs
    }
    if by_system["torch"]["status"] == "ok":
        assert ("median_step_ms", "tfrnn_dynamic", "torch") in pairs
    for f in found:
        assert f["run_id"] == run_id and f["recipe"] == "shared"
        numerator = by_system[f["numerator"]][f["metric"]]
        denominator = by_system[f["denominator"]][f["metric"]]
        assert f["value"] == pytest.approx(numerator / denominator)
        if f["metric"] == "train_seconds_to_target":  # the fastest Keras system
            keras = [
                by_system[s][f["metric"]]
                for s in bench.KERAS_SYSTEMS
                if by_system[s]["status"] == "ok"
            ]
            if f["denominator"].startswith("keras"):
                assert denominator == min(keras)
    markdown = paths["md"].read_text()
    for f in found:
        assert f"| {f['recipe']} | " in markdown and f"{f['value']:.3f} |" in markdown


def test_progress_is_shown(quick_run):
    _, records, _, lines = quick_run
    for record in records:
        name = f"{record['system']} ({record['recipe']}"
        ends = [line for line in lines if line.startswith("[") and name in line]
        if record["status"] == "skipped":
            assert len(ends) == 1 and "skipped" in ends[0]
            continue
        assert len(ends) == 2 and ends[0].endswith("start"), ends
        evaluations = [
            line
            for line in lines
            if line.startswith(f"    {record['system']} ({record['recipe']}): evaluation at step")
        ]
        assert len(evaluations) == len(record["evaluations"])


def test_a_failing_system_is_recorded_not_raised(tmp_path):
    bench.write_data(TINY, tmp_path)
    record = bench.new_record("r1", "keras_while", "shared", TINY)
    record["recipe_values"] = {**record["recipe_values"], "optimizer": "nope"}
    record = bench._isolated(record, tmp_path, None, log=lambda line: None)
    assert record["status"] == "failed"
    assert "nope" in record["error"] and record["median_step_ms"] is None
    assert bench.result_text(record).startswith("failed: ") and "nope" in record["error"]


def test_a_hung_process_is_killed_and_recorded_over_budget(tmp_path):
    record = bench.new_record("r1", "tfrnn_dynamic", "shared", TINY)
    record = bench._isolated(record, tmp_path, 0.5, log=lambda line: None)
    assert record["status"] == "over_budget" and "budget of 0.5 s" in record["error"]


def test_tfrnn_recipe_is_tfrnn_trains_default():
    from tfrnn import config as config_lib

    defaults = config_lib.Config()
    for name, value in bench.TFRNN_RECIPE.items():
        if name not in ("jit_compile", "deterministic"):  # the bench's own choice
            assert getattr(defaults, name) == value, name
    assert bench.TFRNN_RECIPE in bench.SWEEP_RECIPES.values()


def test_recipes_are_recorded_and_eval_steps_scaled():
    record = bench.new_record("r1", "tfrnn_static", "best", TINY)
    assert record["recipe"] == "best" and record["recipe_values"] == bench.TFRNN_RECIPE
    # Evaluations every 4 steps of 128 examples: every 1 of 512, 8 of 64.
    for batch, steps in ((128, 4), (512, 1), (64, 8), (4096, 1)):
        scaled = bench.training_settings(TINY, {**bench.SHARED_RECIPE, "batch_size": batch})
        assert scaled["eval_every_steps"] == steps


def _fake_result(record, base):
    record = dict(record, status="ok", target_reached=True)
    record.update(
        {
            f: base
            for f in bench.RESULT_FIELDS
            if f.endswith(("_ms", "seconds", "seconds_to_target"))
        },
        evaluations=[{"step": 4, "test_accuracy": 0.5}],
    )
    return record


def test_best_recipe_is_compared_with_stock_keras(tmp_path, monkeypatch):
    runs = []
    seconds = {("keras_while", "shared"): 10.0, ("keras_while", "best"): 8.0}

    def fake_run(record, workdir, timeout, log):
        runs.append((record["system"], record["recipe"]))
        return _fake_result(record, seconds.get(runs[-1], 5.0))

    monkeypatch.setattr(bench, "_isolated", fake_run)
    s = {**TINY, "systems": ["tfrnn_dynamic", "keras_while"], "recipes": ["shared", "best"]}
    paths = bench.run(s, tmp_path, quick=False, log=lambda line: None)
    assert runs == [
        ("tfrnn_dynamic", "shared"),
        ("keras_while", "shared"),
        ("tfrnn_dynamic", "best"),
        ("keras_while", "best"),
    ]
    assert paths == {"json": tmp_path / "bench.json", "md": tmp_path / "bench.md"}
    records = json.loads(paths["json"].read_text())
    assert [r["recipe_values"] for r in records[2:]] == [bench.TFRNN_RECIPE] * 2
    found = bench.ratios(records)
    values = {(f["recipe"], f["metric"], f["numerator"]): f["value"] for f in found}
    assert values[("best", "median_step_ms", "tfrnn_dynamic")] == pytest.approx(5 / 8)
    # tfrnn's recipe against stock Keras's (its shared run): 5 s / 10 s.
    stock = [f for f in found if f["recipe"] == "best / shared"]
    assert [(f["numerator"], f["denominator"], f["value"]) for f in stock] == [
        ("tfrnn_dynamic", "keras_while", pytest.approx(0.5))
    ]
    assert "| best / shared | time to target: tfrnn_dynamic / keras_while | 0.500 |" in paths[
        "md"
    ].read_text()


def test_sweep_ranks_recipes_by_median_time_over_seeds(tmp_path, monkeypatch):
    # seconds to target per (recipe, seed); None: not reached.
    seconds = {("slow", 0): 30.0, ("slow", 1): 40.0, ("fast", 0): 10.0}
    seconds.update({("fast", 1): None, ("fast", 2): 12.0, ("slow", 2): 35.0})
    seconds.update({("never", 0): None, ("never", 1): None, ("never", 2): 1.0})

    def fake_run(record, workdir, timeout, log):
        value = seconds[(record["recipe"], record["settings"]["seed"])]
        record = dict(record, status="ok", target_reached=value is not None)
        record.update(train_seconds_to_target=value, median_step_ms=2.0)
        return record

    monkeypatch.setattr(bench, "_isolated", fake_run)
    for name, rate in (("slow", 1e-3), ("fast", 1e-2), ("never", 1.0)):
        recipe = {**bench.SHARED_RECIPE, "learning_rate": rate}
        monkeypatch.setitem(bench.SWEEP_RECIPES, name, recipe)
    s = {**TINY, "sweep": True, "sweep_recipes": ["slow", "fast", "never"]}
    paths = bench.run({**s, "seeds": [0, 1, 2]}, tmp_path, False, lambda line: None)
    records = json.loads(paths["json"].read_text())
    ranking = bench.rank_recipes(records)
    # fast: median of (10, inf, 12) = 12; slow: 35; never: median inf -> last.
    assert [row["recipe"] for row in ranking] == ["fast", "slow", "never"]
    assert ranking[0]["median_seconds_to_target"] == 12.0
    assert ranking[0]["seconds_to_target"] == [10.0, None, 12.0]
    assert ranking[0]["reached"] == 2 and ranking[2]["reached"] == 1
    assert ranking[2]["median_seconds_to_target"] is None
    assert [r["settings"]["seed"] for r in records] == [0, 1, 2] * 3
    assert paths["json"] == tmp_path / "recipe_sweep.json"
    assert "| 1 | fast | 2/3 | 12.0 | 10.0, -, 12.0 |" in paths["md"].read_text()


def test_sweep_trains_with_each_recipe_and_schedule(tmp_path, monkeypatch):
    cosine = {**bench.SHARED_RECIPE, "schedule": "cosine", "decay_epochs": 0.5}
    monkeypatch.setitem(bench.SWEEP_RECIPES, "cosine", cosine)
    record = bench.new_record("r1", "tfrnn_dynamic", "cosine", TINY)
    values = bench.measure({**record, "workdir": str(tmp_path)})  # in this process
    assert record["recipe_values"]["schedule"] == "cosine"
    assert values["target_reached"] and values["median_step_ms"] > 0


def test_cli_refuses_bad_flags():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "--systems=tfrnn,keras"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "--systems: 'tfrnn' is not one of" in done.stderr
