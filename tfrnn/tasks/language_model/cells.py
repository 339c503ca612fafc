"""Reading the cells: which units follow simple features of the text.

The lecture's figure: held-out text, each character coloured by one unit's
value after reading it. The units shown are found by correlation: for each
feature of the text below and each unit of each state leaf (`h` and `c` of an
LSTM, every step's state from `tfrnn.RNN(return_all_states=True)`), the
Pearson correlation over the characters; the unit with the largest |r| per
feature is reported.

    >>> features = text_features('x = f("a(b")\\n    y\\n')
    >>> features["in_string"][4:12].tolist()   # f ( " a ( b " )
    [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    >>> features["bracket_depth"][4:13].tolist()  # the ( inside the string does not count
    [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    >>> features["indentation"][-3:].tolist(), features["line_position"][-3:].tolist()
    ([4.0, 4.0, 0.0], [4.0, 5.0, 0.0])

Features (after reading each character; Python's lexical rules, simplified:
a string ends at its quote or at the end of its line, a comment at the end of
its line; triple quotes are read as three quotes):

* `in_string`: inside a string literal (its opening and closing quotes included);
* `bracket_depth`: open `([{` minus closed `)]}`, outside strings and comments;
* `line_position`: characters since the last newline;
* `indentation`: the spaces that begin the current line.
"""

import html
import pathlib

import numpy as np
import tensorflow as tf

import tfrnn
from tfrnn.training.errors import DataError

FEATURES = ("in_string", "bracket_depth", "line_position", "indentation")


def text_features(text):
    """`{feature: float array [len(text)]}`, as the module docstring says."""
    values = {name: np.zeros(len(text)) for name in FEATURES}
    quote, comment, depth, position, indentation, leading = None, False, 0, 0, 0, True
    for i, character in enumerate(text):
        inside = quote is not None
        if character == "\n":
            quote, comment, position, indentation, leading = None, False, 0, 0, True
            inside = False
        else:
            position += 1
            leading = leading and character == " "
            indentation += leading
            if quote is not None:
                quote = None if character == quote else quote
            elif comment:
                pass
            elif character in "'\"":
                quote, inside = character, True
            elif character == "#":
                comment = True
            elif character in "([{":
                depth += 1
            elif character in ")]}":
                depth = max(depth - 1, 0)
        values["in_string"][i] = inside
        values["bracket_depth"][i] = depth
        values["line_position"][i] = position
        values["indentation"][i] = indentation
    return values


def unit_states(model, ids, leaf_names):
    """`{leaf name: [len(ids), units]}`: the state after each character of
    `ids` (int [T]), its recurrence run again by a `tfrnn.RNN` on the same
    cell that returns every step's state."""
    layer = model.get_layer("rnn")
    embedded = model.get_layer("embedding")(tf.constant([ids], tf.int32))
    reader = tfrnn.RNN(layer.cell, return_sequences=True, return_all_states=True)
    _, *all_states = reader(embedded)
    leaves = [np.asarray(leaf[0]) for leaf in tf.nest.flatten(all_states)]
    return dict(zip(leaf_names, leaves, strict=True))


def leaf_names(cell, layers):
    """The names of a `cell` stack's state leaves: `h` (and `c` for an LSTM)
    per layer, `layer I ` before them in a stack."""
    names = ["h", "c"] if cell in ("lstm", "peephole_lstm") else ["h"]
    if layers == 1:
        return names
    return [f"layer {i} {name}" for i in range(layers) for name in names]


def best_units(features, states):
    """For each feature, the unit whose values correlate best with it:
    `[{"feature", "state", "unit", "correlation"}]`, from `states`
    `{leaf name: [len(text), units]}`."""
    rows = []
    for feature, values in features.items():
        best = {"feature": feature, "state": None, "unit": None, "correlation": 0.0}
        for leaf, series in states.items():
            r = _correlations(values, series)
            unit = int(np.nanargmax(np.abs(r))) if np.isfinite(r).any() else None
            if unit is not None and abs(r[unit]) > abs(best["correlation"]):
                best.update(state=leaf, unit=unit, correlation=round(float(r[unit]), 4))
        rows.append(best)
    return rows


def _correlations(values, series):
    """Pearson r of `values` [T] with each column of `series` [T, units]
    (NaN for a constant column)."""
    x = values - values.mean()
    y = series - series.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x @ y) / (np.sqrt((x @ x) * (y * y).sum(axis=0)))


def parse_units(names, states):
    """`[(state, unit)]` of `--units_to_show` names `STATE:UNIT` (`c:17`);
    `DataError` naming the states and sizes there are."""
    there = ", ".join(f"{leaf} (0-{series.shape[1] - 1})" for leaf, series in states.items())
    shown = []
    for name in names:
        state, _, unit = name.rpartition(":")
        if state not in states or not unit.isdigit() or int(unit) >= states[state].shape[1]:
            raise DataError(f"--units_to_show={name} is not STATE:UNIT of this model's "
                            f"states: {there}")  # fmt: skip
        shown.append((state, int(unit)))
    return shown


def write_html(text, units, path):
    """Writes `text` once per `(title, values)` of `units`, each character's
    background coloured by its value (red positive, blue negative, by the
    largest |value|)."""
    sections = []
    for title, unit_values in units:
        scale = max(float(np.max(np.abs(unit_values))), 1e-9)
        spans = []
        for character, value in zip(text, unit_values):
            alpha = abs(float(value)) / scale
            color = f"rgba(220,40,40,{alpha:.2f})" if value > 0 else f"rgba(40,90,220,{alpha:.2f})"
            shown = html.escape(character) if character != "\n" else "\u21b5\n"
            spans.append(f'<span style="background:{color}">{shown}</span>')
        sections.append(f"<h3>{html.escape(title)}</h3><pre style='font-size:13px'>"
                        f"{''.join(spans)}</pre>")  # fmt: skip
    pathlib.Path(path).write_text(
        "<!doctype html><meta charset=utf-8><title>tfrnn: cells</title>\n"
        + "\n".join(sections) + "\n",
        encoding="utf-8",
    )


def plot(text, features, states, rows, path):
    """cells.png: per feature, the best unit's values over the text and the
    feature itself (scaled to the unit's range, upside down where they
    correlate negatively)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 2.2 * len(rows)), layout="constrained")
    FigureCanvasAgg(figure)
    steps = np.arange(len(text))
    for axes, row in zip(figure.subplots(len(rows), 1, squeeze=False)[:, 0], rows):
        axes.set_title(f"{row['feature']}: {row['state']} unit {row['unit']} "
                       f"(r = {row['correlation']:+.2f})", fontsize=10)  # fmt: skip
        if row["unit"] is None:
            continue
        unit = states[row["state"]][:, row["unit"]]
        feature = features[row["feature"]]
        scaled = (feature - feature.min()) / (np.ptp(feature) or 1.0)  # 0..1
        if row["correlation"] < 0:  # drawn down from the top, as the unit follows it
            scaled = 1.0 - scaled
        axes.fill_between(steps, unit.min(), unit.min() + scaled * np.ptp(unit), color="0.85",
                          step="mid", label=row["feature"])  # fmt: skip
        axes.plot(steps, unit, lw=0.8, label="unit value")
        axes.set_xlim(0, len(text))
        axes.legend(loc="upper right", fontsize=8)
    figure.savefig(path, dpi=90)
