"""The benchmark: one tiny run, its records, table and ratios. No timing is asserted."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from experiments import baselines, bench, harness

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Reached at the first evaluation (4 steps): a model that predicts any one
# class already gets ~10 % of 256 test rows right.
TINY = harness.settings(bench, False, dict(target=0.05, max_epochs=1, units=16, train_examples=1024,
                                           test_examples=256, eval_every_steps=4))  # fmt: skip
CONFIG = {"experiment", "run_id", "system", "recipe", "recipe_values", "settings", "target", "data"}
CONFIG |= {"status", "note", "environment"}
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
    assert paths == {"json": output / "bench-quick.json", "md": output / "bench-quick.md"}
    assert isinstance(records, list) and len(records) == len(bench.SYSTEMS)


def test_every_record_has_the_schema(quick_run):
    _, records, _, _ = quick_run
    assert [(r["system"], r["recipe"]) for r in records] == [(s, "shared") for s in bench.SYSTEMS]
    assert len({r["run_id"] for r in records}) == 1
    by_system = {r["system"]: r for r in records}
    for r in records:
        measured = set(bench.RESULT_FIELDS) | {"budget_seconds", "process_seconds"}
        assert set(r) == CONFIG | (measured if r["status"] != "skipped" else set()), r["system"]
        assert r["experiment"] == "bench" and r["recipe_values"] == bench.SHARED_RECIPE
        assert r["settings"]["units"] == TINY["units"] and r["target"] == TINY["target"]
        assert {"date", "device", "tensorflow", "keras", "tfrnn"} <= set(r["environment"])
    for system in ("tfrnn_dynamic", "tfrnn_static", "keras_while", "keras_unroll"):
        assert by_system[system]["status"] == "ok", by_system[system]["note"]
    gpu = by_system["tfrnn_dynamic"]["gpu"]
    assert by_system["keras_cudnn"]["status"] == ("ok" if gpu else "skipped")
    if baselines.unavailable("torch") is None:
        assert by_system["torch"]["status"] == "ok", by_system["torch"]["note"]
        assert by_system["torch"]["environment"]["torch"]
    else:
        assert by_system["torch"]["status"] == "skipped" and "PyTorch" in by_system["torch"]["note"]
    for r in (r for r in records if r["status"] == "ok"):
        assert r["target_reached"] is True, r["system"]
        for field in POSITIVE:
            assert r[field] > 0, (r["system"], field)
        assert r["best_test_accuracy"] >= r["target"]
        assert r["seconds_to_target"] >= r["train_seconds_to_target"] >= r["step_seconds_to_target"]
        assert r["examples_per_second"] == pytest.approx(
            r["recipe_values"]["batch_size"] / r["median_step_ms"] * 1000)  # fmt: skip
        assert r["evaluations"] and r["evaluations"][-1]["test_accuracy"] >= 0.05
        for e in r["evaluations"]:
            keys = {"step", "epoch", "seconds", "train_seconds", "step_seconds", "test_accuracy"}
            assert set(e) == keys
            assert e["seconds"] >= e["train_seconds"] > 0 and e["step"] > 0
        assert isinstance(r["kernel"], str) and r["xla"] is False  # shared: jit_compile=False
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
    rows = [line for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| system |")]  # fmt: skip
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == len(bench.COLUMNS)  # one seed: no seed column
        assert cells[:2] == [record["system"], record["recipe"]]
        if record["status"] == "skipped":
            assert cells[-1].startswith("skipped:")
    assert "## Recipes ranked" not in markdown  # one seed: nothing to rank
    assert markdown.strip() in "\n".join(lines)  # printed as well


def test_ratios_come_from_this_run_only(quick_run):
    paths, records, _, _ = quick_run
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
        assert f["run_id"] == records[0]["run_id"] and f["recipe"] == "shared"
        numerator = by_system[f["numerator"]][f["metric"]]
        denominator = by_system[f["denominator"]][f["metric"]]
        assert f["value"] == pytest.approx(numerator / denominator)
        if f["metric"] == "train_seconds_to_target" and f["denominator"].startswith("keras"):
            keras = [by_system[s][f["metric"]] for s in bench.KERAS_SYSTEMS
                     if by_system[s]["status"] == "ok"]  # fmt: skip
            assert denominator == min(keras)  # the fastest Keras system
    markdown = paths["md"].read_text()
    for f in found:
        assert f"| {f['recipe']} | " in markdown and f"{f['value']:.3f} |" in markdown


def test_progress_is_shown(quick_run):
    """A line per run, after the evaluation lines its process printed (relayed, indented)."""
    _, records, _, lines = quick_run
    assert lines[0] == f"benchmark {records[0]['run_id']}: {len(records)} runs"
    start = 1
    for number, record in enumerate(records, 1):
        name = f"[{number}/{len(records)}] {record['system']} (shared, seed 0): "
        end = next(i for i, line in enumerate(lines) if line.startswith(name))
        evaluations = [x for x in lines[start:end] if x.startswith("    evaluation at step ")]
        assert len(evaluations) == len(record.get("evaluations", [])), record["system"]
        assert ("skipped" in lines[end]) == (record["status"] == "skipped")
        start = end + 1


def _one(config, budget, tmp_path):
    (record,) = harness.run_all(bench.NAME, "experiments.bench:measure", [config], budget,
                                lambda line: None, tmp_path / "r.json")  # fmt: skip
    return record


def test_a_failing_system_is_recorded_not_raised(tmp_path):
    baselines.write_data(tmp_path / "data.npz", 1024, 256)
    s = {**TINY, "systems": ["keras_while"], "recipes": ["shared"]}
    (config,) = bench.configs(s, "r1", str(tmp_path / "data.npz"))
    config["recipe_values"] = {**config["recipe_values"], "optimizer": "nope"}
    record = _one(config, None, tmp_path)
    assert record["status"] == "failed" and record.get("median_step_ms") is None
    assert "nope" in record["note"] and "adam, sgd, rmsprop" in record["note"]
    assert bench.result_text(record).startswith("failed: ")


def test_a_hung_process_is_killed_and_recorded_over_budget(tmp_path):
    (config,) = bench.configs({**TINY, "systems": ["tfrnn_dynamic"], "recipes": ["shared"]}, "r1", "-")
    record = _one(config, 0.5, tmp_path)
    assert record["status"] == "over_budget" and "budget of 0.5 s" in record["note"]


def test_tfrnn_recipe_is_tfrnn_trains_default():
    from tfrnn.tasks.classify import config as config_lib

    defaults = config_lib.Config()
    for name, value in bench.TFRNN_RECIPE.items():
        if name not in ("jit_compile", "deterministic"):  # the bench's own choice
            assert getattr(defaults, name) == value, name
    assert bench.RECIPES["best"] == bench.TFRNN_RECIPE in bench.SWEEP.values()


def test_recipes_are_recorded_and_eval_steps_scaled(monkeypatch):
    configs = bench.configs({**TINY, "recipes": ["best", "sweep"], "seeds": [0, 1]}, "r1", "-")
    names = ["best", *bench.SWEEP]
    assert [c["recipe"] for c in configs[:: len(bench.SYSTEMS) * 2]] == names
    assert [c["settings"]["seed"] for c in configs[: 2 * len(bench.SYSTEMS)]] == (
        [0] * len(bench.SYSTEMS) + [1] * len(bench.SYSTEMS))  # fmt: skip
    assert all(c["recipe_values"] == bench.RECIPES[c["recipe"]] for c in configs)
    # Evaluations every 4 steps of 128 examples: every 1 of 512, 8 of 64.
    for batch, steps in ((128, 4), (512, 1), (64, 8), (4096, 1)):
        monkeypatch.setitem(bench.RECIPES, "b", {**bench.SHARED_RECIPE, "batch_size": batch})
        (config,) = bench.configs({**TINY, "recipes": ["b"], "systems": ["torch"]}, "r1", "-")
        assert config["settings"]["eval_every_steps"] == steps


def _fake_isolated(seconds):
    """`harness.isolated` without a process: each run reaches the target after
    `seconds(config)` (None: does not reach it), every timing field that value."""

    def isolated(function, config, budget, log):
        value = seconds(config)
        times = {f: value or 1.0 for f in bench.RESULT_FIELDS if f.endswith(("_ms", "seconds"))}
        return {**dict.fromkeys(bench.RESULT_FIELDS), **times, "status": "ok", "note": None,
                "target_reached": value is not None,
                "train_seconds_to_target": value, "evaluations": []}  # fmt: skip

    return isolated


def test_best_recipe_is_compared_with_stock_keras(tmp_path, monkeypatch):
    seconds = {("keras_while", "shared"): 10.0, ("keras_while", "best"): 8.0}
    runs = []
    seconds_of = lambda c: runs.append((c["system"], c["recipe"])) or seconds.get(runs[-1], 5.0)  # noqa: E731
    monkeypatch.setattr(harness, "isolated", _fake_isolated(seconds_of))
    s = {**TINY, "systems": ["tfrnn_dynamic", "keras_while"], "recipes": ["shared", "best"]}
    paths = bench.run(s, tmp_path, quick=False, log=lambda line: None)
    assert runs == [("tfrnn_dynamic", "shared"), ("keras_while", "shared"),
                    ("tfrnn_dynamic", "best"), ("keras_while", "best")]  # fmt: skip
    assert paths == {"json": tmp_path / "bench.json", "md": tmp_path / "bench.md"}
    records = json.loads(paths["json"].read_text())
    assert [r["recipe_values"] for r in records[2:]] == [bench.TFRNN_RECIPE] * 2
    found = bench.ratios(records)
    values = {(f["recipe"], f["metric"], f["numerator"]): f["value"] for f in found}
    assert values[("best", "median_step_ms", "tfrnn_dynamic")] == pytest.approx(5 / 8)
    # tfrnn's recipe against stock Keras's (its shared run): 5 s / 10 s.
    stock = [(f["numerator"], f["denominator"], f["value"]) for f in found if f["recipe"] == "best / shared"]
    assert stock == [("tfrnn_dynamic", "keras_while", pytest.approx(0.5))]
    markdown = paths["md"].read_text()
    assert "| best / shared | time to target: tfrnn_dynamic / keras_while | 0.500 |" in markdown


def test_seeds_rank_recipes_by_median_time_to_target(tmp_path, monkeypatch):
    # seconds to target per (recipe, seed); None: not reached.
    seconds = {("slow", 0): 30.0, ("slow", 1): 40.0, ("slow", 2): 35.0}
    seconds.update({("fast", 0): 10.0, ("fast", 1): None, ("fast", 2): 12.0})
    seconds.update({("never", 0): None, ("never", 1): None, ("never", 2): 1.0})
    seconds_of = lambda c: seconds[c["recipe"], c["settings"]["seed"]]  # noqa: E731
    monkeypatch.setattr(harness, "isolated", _fake_isolated(seconds_of))
    for name, rate in (("slow", 1e-3), ("fast", 1e-2), ("never", 1.0)):
        monkeypatch.setitem(bench.RECIPES, name, {**bench.SHARED_RECIPE, "learning_rate": rate})
    s = {**TINY, "systems": ["tfrnn_dynamic"], "recipes": ["slow", "fast", "never"], "seeds": [0, 1, 2]}
    paths = bench.run(s, tmp_path, False, lambda line: None)
    records = json.loads(paths["json"].read_text())
    assert [(r["recipe"], r["settings"]["seed"]) for r in records] == [
        (name, seed) for name in ("slow", "fast", "never") for seed in (0, 1, 2)]  # fmt: skip
    ranking = bench.ranking(records)
    # fast: median of (10, inf, 12) = 12; slow: 35; never: median inf -> last.
    assert [(row["recipe"], row["reached"], row["median"]) for row in ranking] == [
        ("fast", "2/3", 12.0), ("slow", "3/3", 35.0), ("never", "1/3", float("inf"))]  # fmt: skip
    markdown = paths["md"].read_text()
    assert "| tfrnn_dynamic | fast | 2/3 | 12 | 10, inf, 12 |" in markdown
    assert "| tfrnn_dynamic | slow | 1 |" in markdown  # the seed column: several seeds


def test_a_sweep_recipe_trains_with_its_schedule(tmp_path):
    name = "adam 1e-2 clip 1 cosine 3"
    s = {**TINY, "systems": ["tfrnn_dynamic"], "recipes": [name]}
    (config,) = bench.configs(s, "r1", "-")
    assert config["recipe_values"]["schedule"] == "cosine"
    values = bench.measure(config)  # in this process
    assert values["target_reached"] and values["median_step_ms"] > 0


@pytest.mark.parametrize("flag, message", [
    ("--systems=tfrnn,keras", "error: --systems: 'tfrnn' is not one of"),
    ("--recipes=fast", "error: --recipes: 'fast' is not one of shared, best, "),
    ("--seeds=a", "error: --seeds=a: give integers, e.g. 0"),
])  # fmt: skip
def test_cli_refuses_bad_flags_in_one_line(flag, message):
    done = subprocess.run([sys.executable, "-m", "experiments.bench", flag], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().startswith(message) and len(done.stderr.strip().splitlines()) == 1
