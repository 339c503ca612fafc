"""The spectrum between static and dynamic: `tfrnn.dynamic_rnn(unroll=k)`, measured.

    python -m experiments.spectrum --quick      # LSTM-16, T=28 and 112, a few k
    python -m experiments.spectrum              # LSTM/GRU/vanilla-128, T=28 and 784
    python -m experiments.spectrum --cells=lstm --references=measure

k = 1 is the plain while loop, k = T one block holding the whole unrolled
sequence (`static_rnn` is the other end: no loop at all). Each (cell, T, k)
is one `static_vs_dynamic.measure` in its own process (same model, training
step, batch 128 and MNIST chunks), without the T/2 and forward phases: trace
seconds and graph ops of the training step, first step, median step,
examples/s, memory and SavedModel bytes. A k over budget skips the larger k of
that cell and T. Reference lines: tfrnn static and Keras `unroll=True/False`
at the same T, measured in this run (`--references=measure`) or read from the
committed `results/static_vs_dynamic.json` (`committed`, the default: the
same measurement, another day).
"""

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
HELP = dict(
    short_unrolls="k at short_T", long_unrolls="k at long_T (none: only short_T)",
    references="tfrnn static and Keras's two modes: committed (static_vs_dynamic.json), "
    "measure (in this run) or none",
)


CHOICES = dict(cells=CELLS, references=("committed", "measure", "none"))


def check(s):
    for key in ("short_T", "long_T"):
        harness.check_divides_784(key, s[key])
    for t, ks in ((s["short_T"], s["short_unrolls"]), (s["long_T"], s["long_unrolls"])):
        if any(k < 1 or k > t for k in ks):
            raise ValueError(f"--*_unrolls: each k in 1..T={t}, got {ks}")


def configurations(s):
    """(cell, T, k) for tfrnn_dynamic, smallest T and k first; the references."""
    timing = {k: s[k] for k in ("warmup_steps", "timed_steps", "max_timing_seconds")}
    base = dict(measurement="growth", units=s["units"], batch=s["batch_size"],
                sequence=svd.SEQUENCE_VIEW, phases=["export"], **timing)
    sweeps = [(s["short_T"], s["short_unrolls"]), (s["long_T"], s["long_unrolls"])]
    configs = [dict(base, system="tfrnn_dynamic", cell=cell, T=t, F=784 // t, unroll=k)
               for t, ks in sweeps if ks for cell in s["cells"] for k in sorted(ks)]
    if s["references"] == "measure":
        configs += [dict(base, system=system, cell=cell, T=t, F=784 // t, unroll=None)
                    for t, ks in sweeps if ks for cell in s["cells"] for system in REFERENCES]
    return configs  # fmt: skip


def references(s, records):
    """The reference records: this run's, or the committed static_vs_dynamic's."""
    if s["references"] == "committed":
        import json

        records = json.loads((harness.RESULTS / "static_vs_dynamic.json").read_text())
    return [r for r in svd.growth(records) if r["system"] in REFERENCES and r["status"] == "ok"
            and r["units"] == s["units"] and r["cell"] in s["cells"]]  # fmt: skip


def verdicts(records, refs):
    """Per cell and T: the k of the fastest median step, what it costs against
    k=1 (trace, memory) and how it compares with static."""
    lines = []
    for cell in CELLS:
        for t in sorted({r["T"] for r in records}):
            rows = [r for r in records if (r["cell"], r["T"]) == (cell, t) and r.get("median_step_ms")]
            one = next((r for r in rows if r["unroll"] == 1), None)
            if not one:
                continue
            best = min(rows, key=lambda r: r["median_step_ms"])
            static = [r for r in refs if (r["system"], r["cell"], r["T"]) == ("tfrnn_static", cell, t)]
            x = lambda key, of=one: f"×{best[key] / of[key]:.2f}" if of.get(key) else "-"  # noqa: E731
            lines.append(
                f"- **{cell}, T={t}**: fastest step at k={best['unroll']} "
                f"({harness.fmt(best['median_step_ms'])} ms, {x('median_step_ms')} of k=1's, "
                f"{x('median_step_ms', (static or [{}])[0])} of static's), trace "
                f"{x('trace_seconds')} of k=1's ({harness.fmt(best['trace_seconds'])} s), "
                f"memory {x('memory_bytes')}, SavedModel {x('export_bytes')}."
            )
    return lines


PANELS = ("median_step_ms", "trace_seconds", "first_step_seconds", "graph_ops", "memory_bytes")
PANELS += ("export_bytes",)
COLUMNS = ("cell", "T", ("k", lambda r: r["unroll"]), "status", "trace_seconds", "graph_ops",
           "first_step_seconds", "median_step_ms", "examples_per_second", "memory_bytes",
           "peak_memory_bytes", "export_bytes")  # fmt: skip


def markdown(records, refs, s, png_name):
    where = {
        "committed": "from the committed results/static_vs_dynamic.json (the same measurement "
        "in another run, under another load: compare trace, ops, memory and export with them, "
        "not step times)", "measure": "measured in this run", "none": "not measured",
    }[s["references"]]  # fmt: skip
    text = harness.header(
        "Partial unrolling: `dynamic_rnn(unroll=k)` between dynamic (k=1) and one block (k=T)",
        records, f"Training step of the {s['units']}-unit classifier, batch {s['batch_size']}, MNIST as "
        "T chunks of 784/T pixels, each (cell, T, k) in its own process. Memory: "
        f"{svd.MEMORY_DEFINITION}. References (tfrnn static, Keras `unroll=True/False`): {where}.",
        "## Verdicts",
    )  # fmt: skip
    text += "\n".join(verdicts(records, refs) or ["- nothing measured"])
    text += f"\n\n![k spectrum]({png_name})\n\n## Every k\n\n" + harness.table(records, COLUMNS) + "\n"
    if refs:
        columns = ["system", *COLUMNS[:2], *COLUMNS[3:]]
        text += "\n## References\n\n" + harness.table(refs, columns) + "\n"
    return text


def plot(records, refs, path):
    colors = dict(zip(CELLS, ("tab:blue", "tab:orange", "tab:green")))
    ts = sorted({r["T"] for r in records})
    series = [(f"{cell} T={t}", [{**r, "x": r["unroll"]} for r in records if (r["cell"], r["T"]) == (cell, t)],
               dict(color=colors[cell], ls="-" if t == ts[0] else "--"))
              for t in ts for cell in CELLS]  # fmt: skip
    lines = []
    for r in refs:
        ls = (":", "-.", (0, (5, 5)))[REFERENCES.index(r["system"])]
        style = dict(color=colors[r["cell"]], alpha=0.35 if r["T"] == ts[0] else 0.9, ls=ls)
        lines.append((f"{r['system']} {r['cell']} T={r['T']}", r, style))
    harness.plot(path, PANELS, series, "dynamic_rnn(unroll=k): solid short T, dashed long T; thin "
                 "lines: static and Keras at the same T", "k (steps per loop iteration)", lines)  # fmt: skip


def run(s, output, quick, log=print):
    paths = harness.result_paths(output, NAME, quick, "json", "md", "png")
    budgets = {"growth": s["budget_seconds"]}
    records = svd.measure_all(NAME, configurations(s), budgets, log, paths, ("system", "cell", "T"))
    write_reports(records, s, paths)
    return paths


def write_reports(records, s, paths):
    """The Markdown and the plot, from the records (and the references)."""
    mine = [r for r in records if r.get("unroll")]
    refs = [r for r in references(s, records) if r["T"] in {m["T"] for m in mine}]
    paths["md"].write_text(markdown(mine, refs, s, paths["png"].name))
    plot(mine, refs, paths["png"])


if __name__ == "__main__":
    harness.main(__import__(__name__))
