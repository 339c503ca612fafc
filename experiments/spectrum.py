"""The spectrum between static and dynamic: `tfrnn.dynamic_rnn(unroll=k)`, measured.

    python -m experiments.spectrum --quick      # LSTM-16, T=28 and 112, a few k
    python -m experiments.spectrum              # LSTM/GRU/vanilla-128, T=28 and 784
    python -m experiments.spectrum --cells=lstm --references=measure

Each (cell, T, k) is one `static_vs_dynamic.measure` (without its T/2 and forward
phases) in its own process; one over budget skips the larger k of its cell and T.
"""

import json

from experiments import harness
from experiments import static_vs_dynamic as svd

NAME = "spectrum"
CELLS = svd.CELLS
REFERENCES = ("tfrnn_static", "keras_unroll", "keras_while")
FULL = dict(
    cells=list(CELLS), units=128, short_T=28, short_unrolls=[1, 2, 4, 7, 14, 28], long_T=784,
    long_unrolls=[1, 4, 16, 49, 112, 784], references="committed", batch_size=128,
    warmup_steps=3, timed_steps=30, max_timing_seconds=60.0, budget_seconds=900,
)  # fmt: skip
QUICK = dict(cells=["lstm"], units=16, short_unrolls=[1, 4, 28], long_T=112, long_unrolls=[1, 16])
QUICK.update(references="none", warmup_steps=1, timed_steps=3)
HELP = dict(short_unrolls="k at short_T", long_unrolls="k at long_T (none: only short_T)", references="tfrnn "
            "static and Keras unroll=True/False: committed (static_vs_dynamic.json), measure or none")
CHOICES = dict(cells=CELLS, references=("committed", "measure", "none"))
name = "{system} {cell}-{units} T={T} k={unroll}".format_map  # a configuration in the log


def check(s):
    for key in ("short_T", "long_T"):
        harness.check_divides_784(key, s[key])
    for t, ks in ((s["short_T"], s["short_unrolls"]), (s["long_T"], s["long_unrolls"])):
        if any(k < 1 or k > t for k in ks):
            raise ValueError(f"--*_unrolls: each k in 1..T={t}, got {ks}")


def configurations(s):
    """(cell, T, k) for tfrnn_dynamic, smallest T and k first; then the references."""
    sweeps = [(t, sorted(ks)) for t, ks in ((s["short_T"], s["short_unrolls"]),
                                            (s["long_T"], s["long_unrolls"])) if ks]  # fmt: skip
    at = lambda t, systems: svd.configurations(dict(s, time_steps=[t], systems=systems))  # noqa: E731
    configs = [dict(c, unroll=k) for t, ks in sweeps for c in at(t, ["tfrnn_dynamic"]) for k in ks]
    if s["references"] == "measure":
        configs += [dict(c, unroll=None) for t, _ in sweeps for c in at(t, REFERENCES)]
    return [dict(c, phases=["export"]) for c in configs]


def references(s, records):
    """The reference records: this run's, or the committed static_vs_dynamic's."""
    if s["references"] == "committed":
        records = json.loads((harness.RESULTS / "static_vs_dynamic.json").read_text())
    return [r for r in svd.growth(records) if r["system"] in REFERENCES and r["status"] == "ok"
            and r["units"] == s["units"] and r["cell"] in s["cells"]]  # fmt: skip


def verdicts(records, refs):
    """Per cell and T: the k of the fastest median step, what it costs against k=1
    (trace, memory, SavedModel) and how its step compares with static's."""
    lines = []
    for cell, t in sorted({(r["cell"], r["T"]) for r in records}, key=lambda c: (CELLS.index(c[0]), c[1])):
        rows = [r for r in records if (r["cell"], r["T"]) == (cell, t) and r.get("median_step_ms")]
        one = next((r for r in rows if r["unroll"] == 1), None)
        if one:
            best = min(rows, key=lambda r: r["median_step_ms"])
            static = next((r for r in refs if (r["system"], r["cell"], r["T"]) == ("tfrnn_static", cell, t)), {})
            x = lambda key, of=one: f"×{best[key] / of[key]:.2f}" if of.get(key) else "-"  # noqa: E731
            ms, seconds = harness.fmt(best["median_step_ms"]), harness.fmt(best["trace_seconds"])
            lines.append(f"- **{cell}, T={t}**: fastest step at k={best['unroll']} ({ms} ms, "
                         f"{x('median_step_ms')} of k=1's, {x('median_step_ms', static)} of static's), "
                         f"trace {x('trace_seconds')} of k=1's ({seconds} s), memory {x('memory_bytes')}, "
                         f"SavedModel {x('export_bytes')}.")  # fmt: skip
    return lines


COLUMNS = ("cell", "T", ("k", lambda r: r["unroll"]), "status", "trace_seconds", "graph_ops",
           "first_step_seconds", "median_step_ms", "examples_per_second", "memory_bytes",
           "peak_memory_bytes", "export_bytes")  # fmt: skip
WHERE = dict(measure="measured in this run", none="not measured", committed="from the committed "
             "results/static_vs_dynamic.json (another run: compare trace, ops, memory, export)")


def markdown(records, refs, s, png_name):
    text = harness.header(
        "Partial unrolling: `dynamic_rnn(unroll=k)` between dynamic (k=1) and one block (k=T)", records,
        f"Training step of the {s['units']}-unit classifier, batch {s['batch_size']}, MNIST as T chunks of "
        "784/T pixels, each (cell, T, k) in its own process; method: experiments/README.md. References "
        f"(tfrnn static, Keras `unroll=True/False`): {WHERE[s['references']]}.", "## Verdicts")
    text += "\n".join(verdicts(records, refs) or ["- nothing measured"])
    text += f"\n\n![k spectrum]({png_name})\n\n## Every k\n\n" + harness.table(records, COLUMNS) + "\n"
    if refs:
        columns = ["system", *COLUMNS[:2], *COLUMNS[3:]]
        text += "\n## References\n\n" + harness.table(refs, columns) + "\n"
    return text


def plot(records, refs, path):
    """Each metric against k: a line per cell and T; references as horizontal lines."""
    ts = sorted({r["T"] for r in records})
    series = [(f"{cell} T={t}", [{**r, "x": r["unroll"]} for r in records if (r["cell"], r["T"]) == (cell, t)],
               dict(color=f"C{CELLS.index(cell)}", ls="-" if t == ts[0] else "--"))
              for t in ts for cell in CELLS]  # fmt: skip
    lines = [(f"{r['system']} {r['cell']} T={r['T']}", r, dict(color=f"C{CELLS.index(r['cell'])}",
              alpha=0.35 if r["T"] == ts[0] else 0.9, ls=(":", "-.", "--")[REFERENCES.index(r["system"])]))
             for r in refs]  # fmt: skip
    harness.plot(path, svd.PANELS, series, "dynamic_rnn(unroll=k): solid short T, "
                 "dashed long T; thin lines: static and Keras at the same T",
                 "k (steps per loop iteration)", lines)  # fmt: skip


def run(s, output, quick, log=print):
    paths = harness.result_paths(output, NAME, quick, "json", "md", "png")
    records = harness.run_all(NAME, "experiments.static_vs_dynamic:measure", configurations(s),
                              s["budget_seconds"], log, paths["json"], name, stop_key=("system", "cell", "T"))
    mine = [r for r in records if r.get("unroll")]
    refs = [r for r in references(s, records) if r["T"] in {m["T"] for m in mine}]
    paths["md"].write_text(markdown(mine, refs, s, paths["png"].name))
    plot(mine, refs, paths["png"])
    return paths


if __name__ == "__main__":
    harness.main(__import__(__name__))
