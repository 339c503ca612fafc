"""Whole-sequence LSTM and GRU kernels: `dynamic_rnn(kernel="fused")`.

The generic loop runs the cell whole at every step, and its gradient is
TensorFlow's autodiff of that step: per step, the input projection, the
recurrent matmul, and in the backward pass the matmuls into `h`, `x` and the
weights, each a small one with a transposed operand. For the cells whose
math is known this module organises the work over the whole sequence, as
cuDNN does, in plain TensorFlow ops, with a hand-written gradient
(`tf.custom_gradient`). Each gate's weights are a block of their own
(`W_x[g]`, `W_h[g]`: `[features, units]`, `[units, units]`):

```
xw[g] = x @ W_x[g] + b[g]               # every step at once: a matmul a gate
for t in 0 .. n-1:                      # n: through the last valid step
    z[g] = xw[g][t] + h @ W_h[g]        # the loop's only matmuls, one a gate
    h, c, saved[t] = cell math(z, h, c) # gate values kept for the backward loop
    where not valid[t, b]: h[b], c[b] copied through (outputs zeros)

backward:
W_hT[g] = transpose(W_h[g])             # once, not in every step
for t in n-1 .. 0:
    dz[g][t] = gate gradients(dh, dc, saved[t])
    dh = sum_g dz[g][t] @ W_hT[g]       # the loop's only matmuls
dW_h[g] = h_prev^T @ dz[g]              # every step at once: a matmul a gate
dW_x[g], db[g], dx = x^T @ dz[g], sum(dz[g]), sum_g dz[g] @ W_x[g]^T  # autodiff
```

Three choices make it fast on a CPU (measured at [32, 200, 64, 512] on this
project's 2-core machine, experiments/README.md):
- a step's recurrent product is one matmul a gate, `[batch, units] x
  [units, units]`, not one `[units, 4 units]` product split after: a
  block's 1 MB stays in a core's 2 MB L2 cache where the whole 4 MB does
  not, and no split or concat of `z` runs in either loop (the LSTM's
  forward loop: 57 against 100 ms);
- `W_h^T` is made once: `matmul(dz, W_h, transpose_b=True)`, what autodiff
  of any cell runs at every step, took 1.6-2.1x the time of `matmul(dz,
  W_hT)` in a while loop;
- the weight and input gradients are one matmul each over all steps.

Cells it runs: Keras `LSTMCell` and `GRUCell` with their default
activations and no dropout (with or without bias; GRU with `reset_after`
either way), tfrnn's `LSTMCell` without peepholes, clipping or projection
(its `forget_bias` folded into the bias), and stacks of them
(`tfrnn.MultiRNNCell`, `keras.layers.StackedRNNCells`), each layer fused in
turn. `ineligible(cell)` says why another cell is not. Results are the
generic loop's (tests/test_fused.py: values and gradients within 2e-6):
the same padding rule, the same final and per-step states, under `unroll=k`
(k steps per loop iteration, forward and backward), XLA and mixed precision.

`kernel="auto"` (the default) runs the fused kernel where it was measured
faster (`auto_chooses`): a widest layer of at least 64 units. Measured by
`python -m experiments.kernels` (results/kernels.md: one Adam step of the
layer under a softmax of every output, 7 interleaved rounds, the 2-core CPU
otherwise idle), the fused step over the generic one (TensorFlow's threads,
then intra-op 1 / inter-op 2, the CLI's default on 2 cores):

| [batch, T, features, units] | LSTM | GRU | LSTM, threads 1/2 | GRU, threads 1/2 |
|---|---|---|---|---|
| [32, 200, 64, 512] | 0.61 | 0.66 | 0.68 | 0.75 |
| [64, 100, 128, 256] | 0.61 | 0.68 | 0.82 | 0.80 |
| [64, 100, 64, 256] (the language model's) | 0.65 | 0.74 | 0.84 | 0.73 |
| [256, 28, 28, 128] (MNIST rows) | 0.85 | 0.76 | 0.75 | 0.70 |
| [256, 50, 64, 512] | 1.00 | 1.01 | 0.81 | 0.84 |
| [128, 28, 28, 64] | 1.00 | 0.82 | 0.89 | 0.77 |
| [32, 50, 16, 32] (below the rule) | 1.00 | 0.79 | 0.97 | 0.74 |
"""
import keras
import tensorflow as tf

from tfrnn import cells
from tfrnn import step

KERNELS = ("auto", "fused", "generic")


def check_kernel(kernel, where):
    """`kernel`, if it is one of KERNELS."""
    if kernel not in KERNELS:
        raise ValueError(
            f"{where}: kernel must be 'auto', 'fused' or 'generic'; got {kernel!r}."
        )
    return kernel


# --- which cells -----------------------------------------------------------------


def _layers(cell):
    """The cells of a stack, or `[cell]`."""
    if type(cell) in (cells.MultiRNNCell, keras.layers.StackedRNNCells):
        return list(cell.cells)
    return [cell]


def _is(function, name):
    return function is keras.activations.get(name)


def _why_not(cell):
    """Why one layer's cell has no fused kernel; None when it has one."""
    name = type(cell).__name__
    if type(cell) is cells.LSTMCell:
        for option, value in (
            ("use_peepholes", cell.use_peepholes),
            ("cell_clip", cell.cell_clip),
            ("num_proj", cell.num_proj),
        ):
            if value:
                return f"tfrnn.LSTMCell with {option}={value!r}"
        if not _is(cell.activation, "tanh"):
            return "tfrnn.LSTMCell with an activation other than tanh"
        return None
    if type(cell) in (keras.layers.LSTMCell, keras.layers.GRUCell):
        if not (_is(cell.activation, "tanh") and _is(cell.recurrent_activation, "sigmoid")):
            return f"keras.layers.{name} with activations other than tanh and sigmoid"
        if cell.dropout or cell.recurrent_dropout:
            return f"keras.layers.{name} with dropout"
        return None
    return (
        f"{name} is not one of the cells it fuses (keras.layers.LSTMCell, GRUCell, "
        "tfrnn.LSTMCell, and stacks of them)"
    )


def ineligible(cell):
    """Why `cell` has no fused kernel (a phrase), or None when it has one."""
    for index, layer in enumerate(_layers(cell)):
        reason = _why_not(layer)
        if reason is not None:
            return reason if layer is cell else f"layer {index} of the stack: {reason}"
    return None


# The rule of `kernel="auto"` for an eligible cell (`auto_chooses`), from
# `python -m experiments.kernels` (see the module docstring).
AUTO_MIN_UNITS = 64


def auto_chooses(cell):
    """Whether `kernel="auto"` runs `cell` (eligible) fused: where it was
    measured faster, a widest layer of at least AUTO_MIN_UNITS units (at any
    batch size and thread setting measured)."""
    return max(layer.units for layer in _layers(cell)) >= AUTO_MIN_UNITS


def choose(kernel, cell, where="dynamic_rnn"):
    """"fused" or "generic": the kernel that `kernel` runs `cell` with.
    "fused" on a cell that has no fused kernel is a ValueError saying why."""
    if kernel == "generic":
        return "generic"
    reason = ineligible(cell)
    if kernel == "fused" and reason is not None:
        raise ValueError(
            f"{where}: kernel='fused' has no kernel for this cell: {reason}. Use "
            "kernel='generic' (or 'auto', which falls back to it)."
        )
    fuse = reason is None and (kernel == "fused" or auto_chooses(cell))
    return "fused" if fuse else "generic"


# --- the whole sequence ------------------------------------------------------------


def fused_rnn(cell, inputs, state, valid, unroll, options, return_sequences=True,
              return_all_states=False):
    """The fused kernel over time-major `inputs` `[T, batch, features]`.

    `state` is the checked initial state nest, `valid` the `[T, batch]` bool
    tensor of `step.valid_steps` (None: every step counts), `unroll` the steps
    per loop iteration, `options` the while loops' keyword arguments.

    Returns `(outputs, final_state, all_states or ())` with `dynamic_rnn`'s
    semantics: outputs `[T, batch, units]`, zeros where a step does not count
    and past the last step run (with `return_sequences=False`, each row's last
    valid output, zeros for a row with none: its final `h` otherwise); the
    state copied through; `all_states` a nest of `[T, batch, size]` (copies
    of the final state past the last step run).
    """
    time_steps = tf.shape(inputs)[0]
    steps = step.steps_to_run(valid, time_steps)
    loop = _Loop(steps, time_steps, unroll, valid, options)
    layers = list(zip(_layers(cell), _per_layer(cell, state)))
    x, finals, every_step = inputs, [], []
    for index, (layer_cell, layer_state) in enumerate(layers):
        top = index == len(layers) - 1
        layer = _Layer(layer_cell, x.shape[-1])
        # every step's h feeds the layer above, or the outputs; every step's c
        # only return_all_states
        h_steps = not top or return_sequences or return_all_states
        final, sequences = layer.run(x, layer_state, loop, h_steps, return_all_states)
        finals.append(final)
        every_step.append(sequences)
        if h_steps:
            x = _where_valid(valid, sequences[0], tf.zeros_like(sequences[0]))
    if not return_sequences:
        any_step = None if valid is None else tf.reduce_any(valid, axis=0)
        x = _where(any_step, finals[-1][0], tf.zeros_like(finals[-1][0]))
    if not return_all_states:
        return x, _pack(state, finals), ()
    if valid is not None:  # past the last step run: copies of the final state
        after_end = (tf.range(time_steps) >= steps)[:, tf.newaxis, tf.newaxis]
        every_step = [
            [tf.where(after_end, final, s) for s, final in zip(sequences, layer_finals)]
            for sequences, layer_finals in zip(every_step, finals)
        ]
    return x, _pack(state, finals), _pack(state, every_step)


def _per_layer(cell, state):
    """The flat state leaves of each layer."""
    if len(_layers(cell)) == 1 and _layers(cell)[0] is cell:
        return [tf.nest.flatten(state)]
    return [tf.nest.flatten(layer_state) for layer_state in state]


def _pack(state, per_layer):
    """Per-layer leaves in the structure of `state`."""
    return tf.nest.pack_sequence_as(state, [leaf for leaves in per_layer for leaf in leaves])


class _Loop:
    """The time loops: `n` steps (through the last valid one), `unroll` per
    while-loop iteration, the steps left over one per iteration."""

    def __init__(self, steps, time_steps, unroll, valid, options):
        self.steps, self.time_steps, self.unroll = steps, time_steps, unroll
        self.valid, self.options = valid, options

    def valid_at(self, t):
        return None if self.valid is None else tf.gather(self.valid, t)

    def run(self, step_fn, carry, reverse=False):
        """`carry = step_fn(t, carry)` for t = 0 .. n-1 (n-1 .. 0 when `reverse`)."""
        n, k = self.steps, self.unroll
        at = (lambda i: n - 1 - i) if reverse else (lambda i: i)

        def block(i, carry):
            for offset in range(k):
                carry = step_fn(at(i + offset), carry)
            return i + k, carry

        def single(i, carry):
            return i + 1, step_fn(at(i), carry)

        i = tf.constant(0)
        if k > 1:
            i, carry = tf.while_loop(
                lambda i, _: i + k <= n, block, (i, carry),
                maximum_iterations=self.time_steps // k, **self.options,
            )  # fmt: skip
        _, carry = tf.while_loop(
            lambda i, _: i < n, single, (i, carry),
            maximum_iterations=self.time_steps if k == 1 else k - 1, **self.options,
        )  # fmt: skip
        return carry


def _where(valid, new, old):
    """`new` in the rows (`[batch]`) where `valid`, `old` in the others."""
    return new if valid is None else tf.where(valid[:, tf.newaxis], new, old)


def _valid_part(valid, x):
    """`x` in the rows where `valid`, zeros in the others."""
    return x if valid is None else tf.where(valid[:, tf.newaxis], x, tf.zeros_like(x))


def _where_valid(valid, new, old):
    """`new` at the steps and rows (`[T, batch]`) where `valid`, else `old`."""
    return new if valid is None else tf.where(valid[..., tf.newaxis], new, old)


def _array(like, size, element_shape):
    """A TensorArray of `like`'s dtype whose elements may be read more than once."""
    return tf.TensorArray(
        like.dtype, size=size, element_shape=element_shape, clear_after_read=False
    )


class _Layer:
    """One layer's weights, in its compute dtype, and its kernel."""

    def __init__(self, cell, features):
        if not cell.built:
            cell.build((None, features))
        self.dtype = tf.as_dtype(cell.compute_dtype)
        self.units = cell.units
        weight = lambda v: tf.cast(tf.convert_to_tensor(v), self.dtype)
        self.w_x, self.w_h = weight(cell.kernel), weight(cell.recurrent_kernel)
        self.b_x = self.b_h = None
        self.kind = "gru" if isinstance(cell, keras.layers.GRUCell) else "lstm"
        self.reset_after = getattr(cell, "reset_after", False)
        if getattr(cell, "use_bias", True):
            bias = weight(cell.bias)
            if self.kind == "gru" and self.reset_after:
                # the z and r gates' recurrent biases join the inputs' (both are
                # added before the sigmoid); the h gate's stays (r * (h @ U_h + b_h))
                units = self.units
                self.b_x = bias[0] + tf.concat([bias[1][: 2 * units], tf.zeros([units], self.dtype)], 0)
                self.b_h = bias[1][2 * units :]
            else:
                self.b_x = bias
        forget_bias = getattr(cell, "forget_bias", 0.0)
        if forget_bias:  # tfrnn's LSTMCell: sigmoid(f + forget_bias)
            units = self.units
            self.b_x = self.b_x + tf.constant(
                [0.0] * units + [forget_bias] * units + [0.0] * 2 * units, self.dtype
            )

    def run(self, x, state, loop, h_steps=True, c_steps=False):
        """`(final, sequences)`: the state after the last step, `[h, c]`
        (LSTM) or `[h]` (GRU), each `[batch, units]`, and after every step
        `[T, batch, units]` (h if `h_steps`, c if `c_steps`): the state copied
        through where a step does not count, zeros past the last step run."""
        gates = 4 if self.kind == "lstm" else 3
        # each gate's weights a block of their own: a step's products are
        # `gates` matmuls of [batch, units] x [units, units] (see _lstm)
        split = lambda w: None if w is None else tf.split(w, gates, axis=-1)
        x = tf.cast(x, self.dtype)
        shape = tf.shape(x)
        flat_x = tf.reshape(x, [-1, shape[2]])
        xw = []
        for w_x, b_x in zip(split(self.w_x), split(self.b_x) or [None] * gates):
            product = tf.matmul(flat_x, w_x)
            product = product if b_x is None else tf.nn.bias_add(product, b_x)
            xw.append(tf.reshape(product, [shape[0], shape[1], self.units]))
        state = [tf.cast(s, self.dtype) for s in state]
        w_h = split(self.w_h)
        if self.kind == "lstm":
            outputs = _lstm(xw, state[0], state[1], w_h, loop, h_steps, c_steps)
            return list(outputs[:2]), list(outputs[2:])
        if self.reset_after:
            b_h = self.b_h if self.b_h is not None else tf.zeros([self.units], self.dtype)
            outputs = _gru_reset_after(xw, state[0], w_h, b_h, loop, h_steps)
        else:
            outputs = _gru_reset_before(xw, state[0], w_h, loop, h_steps)
        return list(outputs[:1]), list(outputs[1:])


def _states(h0, time_steps):
    """A TensorArray of T + 1 states: the initial one at 0, after step t at t + 1."""
    return _array(h0, time_steps + 1, h0.shape).write(0, h0)


def _arrays(like, time_steps, count):
    """`count` TensorArrays of `time_steps` elements shaped as `like`."""
    return [_array(like, time_steps, like.shape) for _ in range(count)]


def _stacked(arrays):
    """The TensorArrays' elements as `[T, ...]` tensors: what the backward
    loop reads (a gradient function that captured a TensorArray could not be
    saved in a SavedModel)."""
    return [a.stack() for a in arrays]


def _weight_gradient(before, d_pre):
    """`sum_t before[t]^T @ d_pre[t]`: one matmul over every step."""
    flat = lambda s: tf.reshape(s, [-1, s.shape[-1]])
    return tf.matmul(flat(before), flat(d_pre), transpose_a=True)


def _products(rows, blocks):
    """`rows[k] @ blocks[k]`, summed over k."""
    return tf.add_n([tf.matmul(r, b) for r, b in zip(rows, blocks)])


# --- LSTM: Keras's and tfrnn's (gates i, f, j, o; forget bias folded into b) --------


def _lstm(xw, h0, c0, w_h, loop, h_steps, c_steps):
    """`[h, c]` after the last step of an LSTM, then every step's h (if
    `h_steps`) and c (if `c_steps`). `xw` holds `x @ W_x + b` and `w_h` the
    recurrent weights, each as 4 blocks of `units` columns (gates i, f, j, o).

    A step's recurrent product is 4 matmuls of [batch, units] x [units,
    units], not one of [batch, units] x [units, 4 units]: at [32, 200, 64,
    512] on the 2-core CPU the forward loop took 57 against 100 ms (a block's
    1 MB stays in a core's 2 MB L2 cache, the whole 4 MB does not), and no
    split of z is needed; the backward loop's `dz @ W_h^T` is likewise 4
    products of blocks transposed once."""

    @tf.custom_gradient
    def lstm(*args):
        xw, (h0, c0), w_h = args[:4], args[4:6], args[6:]
        time_steps = tf.shape(xw[0])[0]

        def forward(t, carry):
            h, c, hs, cs, saved = carry
            z_i, z_f, z_j, z_o = (x[t] + tf.matmul(h, w) for x, w in zip(xw, w_h))
            i, f, j, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_j), tf.sigmoid(z_o)
            c_new = f * c + i * j
            tc = tf.tanh(c_new)
            valid = loop.valid_at(t)
            h, c = _where(valid, o * tc, h), _where(valid, c_new, c)
            saved = [a.write(t, v) for a, v in zip(saved, (i, f, j, o, tc))]
            return h, c, hs.write(t + 1, h), cs.write(t + 1, c), saved

        saved = _arrays(h0, time_steps, 5)  # i, f, j, o, tanh c: read in the backward loop
        carry = (h0, c0, _states(h0, time_steps), _states(c0, time_steps), saved)
        h, c, hs, cs, saved = loop.run(forward, carry)
        saved, hs, cs = _stacked(saved), hs.stack(), cs.stack()  # hs, cs: [T + 1, B, units]

        def gradient(d_h, d_c, *d_steps):
            d_h_steps, d_c_steps = _step_gradients(d_steps, h_steps, c_steps)
            w_h_t = [tf.transpose(w) for w in w_h]  # once, not in every step

            def backward(t, carry):
                dh, dc, d_z = carry
                if d_h_steps is not None:
                    dh = dh + d_h_steps[t]
                if d_c_steps is not None:
                    dc = dc + d_c_steps[t]
                valid = loop.valid_at(t)
                g, gc = _valid_part(valid, dh), _valid_part(valid, dc)
                i, f, j, o, tc = (a[t] for a in saved)
                gc = gc + _tanh_grad(tc, g * o)
                dz = (
                    _sigmoid_grad(i, gc * j),
                    _sigmoid_grad(f, gc * cs[t]),
                    _tanh_grad(j, gc * i),
                    _sigmoid_grad(o, g * tc),
                )
                dh_prev = _where(valid, _products(dz, w_h_t), dh)
                dc_prev = _where(valid, gc * f, dc)
                return dh_prev, dc_prev, [a.write(t, d) for a, d in zip(d_z, dz)]

            carry = (_dense(d_h, h), _dense(d_c, c), _arrays(h0, time_steps, 4))
            dh0, dc0, d_z = loop.run(backward, carry, reverse=True)
            d_z = [a.stack() for a in d_z]
            before = hs[:-1]  # h before each step
            d_w_h = [_weight_gradient(before, d) for d in d_z]
            return [*d_z, dh0, dc0, *d_w_h]

        every_step = [hs[1:]] * h_steps + [cs[1:]] * c_steps
        return [h, c, *every_step], gradient

    return lstm(*xw, h0, c0, *w_h)


def _step_gradients(d_steps, *which):
    """The gradients of the every-step outputs there are (as `which` says),
    dense, None for those that are not outputs."""
    d_steps, result = list(d_steps), []
    for present in which:
        gradient = d_steps.pop(0) if present else None
        result.append(None if gradient is None else tf.convert_to_tensor(gradient))
    return result


def _dense(gradient, like):
    """`gradient` as a tensor; zeros like `like` for None."""
    return tf.zeros_like(like) if gradient is None else tf.convert_to_tensor(gradient)


def _sigmoid_grad(y, dy):
    """`dy * y * (1 - y)`: the gradient of `y = sigmoid(x)`, autodiff's op."""
    return tf.raw_ops.SigmoidGrad(y=y, dy=dy)


def _tanh_grad(y, dy):
    """`dy * (1 - y * y)`: the gradient of `y = tanh(x)`, autodiff's op."""
    return tf.raw_ops.TanhGrad(y=y, dy=dy)


# --- GRU: Keras's (gates z, r, h), each gate's weights a block as in _lstm -----------


def _incoming(dh, d_h_steps, t, loop):
    """`(dh, valid, g)` at step t of a backward loop: `dh` from the step after
    plus, when every step's h is an output, that output's gradient; the rows
    where the step counts (`loop.valid_at`); `dh` in those rows, zeros in the
    others (a step that does not count passes `dh` through unchanged)."""
    if d_h_steps is not None:
        dh = dh + d_h_steps[t]
    valid = loop.valid_at(t)
    return dh, valid, _valid_part(valid, dh)


def _update_gradients(g, z, hh, h_hh):
    """`(g * z, dz, dhh)` for `h = hh + z * (h_prev - hh)` with `z = sigmoid`,
    `hh = tanh` of their inputs and `h_hh = h_prev - hh`: the gradient `g` of
    h into h_prev directly, into z's and into hh's pre-activations."""
    g_z = g * z
    return g_z, _sigmoid_grad(z, g * h_hh), _tanh_grad(hh, g - g_z)


def _gru_reset_after(xw, h0, w_h, b_h, loop, h_steps):
    """`[h]` after the last step of Keras's GRU with `reset_after=True`, then
    every step's h if `h_steps`: `hh = tanh(x_h + r * (h @ U_h + b_h))`; `xw`
    holds `x @ W + b_x` (and the z and r gates' recurrent biases), `xw` and
    `w_h` are 3 blocks each, `b_h` the h gate's recurrent bias."""

    @tf.custom_gradient
    def gru(*args):
        xw, h0, w_h, b_h = args[:3], args[3], args[4:7], args[7]
        time_steps = tf.shape(xw[0])[0]

        def forward(t, carry):
            h, hs, saved = carry
            z = tf.sigmoid(xw[0][t] + tf.matmul(h, w_h[0]))
            r = tf.sigmoid(xw[1][t] + tf.matmul(h, w_h[1]))
            r_h = tf.nn.bias_add(tf.matmul(h, w_h[2]), b_h)
            hh = tf.tanh(xw[2][t] + r * r_h)
            h_hh = h - hh
            h = _where(loop.valid_at(t), hh + z * h_hh, h)  # z * h + (1 - z) * hh
            saved = [a.write(t, v) for a, v in zip(saved, (z, r, hh, r_h, h_hh))]
            return h, hs.write(t + 1, h), saved

        saved = _arrays(h0, time_steps, 5)  # z, r, hh, U_h h + b_h, h - hh
        h, hs, saved = loop.run(forward, (h0, _states(h0, time_steps), saved))
        saved, hs = _stacked(saved), hs.stack()  # hs: [T + 1, B, units]

        def gradient(d_h, *d_steps):
            (d_h_steps,) = _step_gradients(d_steps, h_steps)
            w_h_t = [tf.transpose(w) for w in w_h]  # once, not in every step

            def backward(t, carry):
                dh, d_arrays = carry
                dh, valid, g = _incoming(dh, d_h_steps, t, loop)
                z, r, hh, r_h, h_hh = (a[t] for a in saved)
                g_z, d_z, d_hh = _update_gradients(g, z, hh, h_hh)
                d_r = _sigmoid_grad(r, d_hh * r_h)
                d_recurrent = (d_z, d_r, d_hh * r)  # into U_h's blocks
                dh_prev = _where(valid, g_z + _products(d_recurrent, w_h_t), dh)
                written = (*d_recurrent, d_hh)
                return dh_prev, [a.write(t, d) for a, d in zip(d_arrays, written)]

            dh0, d_arrays = loop.run(
                backward, (_dense(d_h, h), _arrays(h0, time_steps, 4)), reverse=True
            )  # fmt: skip
            d_z, d_r, d_rec_h, d_hh = (a.stack() for a in d_arrays)
            d_recurrent = (d_z, d_r, d_rec_h)
            before = hs[:-1]  # h before each step
            d_w_h = [_weight_gradient(before, d) for d in d_recurrent]
            return [d_z, d_r, d_hh, dh0, *d_w_h, tf.reduce_sum(d_rec_h, axis=[0, 1])]

        return [h, *[hs[1:]] * h_steps], gradient

    return gru(*xw, h0, *w_h, b_h)


def _gru_reset_before(xw, h0, w_h, loop, h_steps):
    """`[h]` after the last step of Keras's GRU with `reset_after=False`, then
    every step's h if `h_steps`: `hh = tanh(x_h + (r * h) @ U_h)`; `xw` holds
    `x @ W + b`; `xw` and `w_h` are 3 blocks each."""

    @tf.custom_gradient
    def gru(*args):
        xw, h0, (w_z, w_r, w_hh) = args[:3], args[3], args[4:]
        time_steps = tf.shape(xw[0])[0]

        def forward(t, carry):
            h, hs, saved = carry
            z = tf.sigmoid(xw[0][t] + tf.matmul(h, w_z))
            r = tf.sigmoid(xw[1][t] + tf.matmul(h, w_r))
            rh = r * h
            hh = tf.tanh(xw[2][t] + tf.matmul(rh, w_hh))
            h_hh = h - hh
            h_new = _where(loop.valid_at(t), hh + z * h_hh, h)  # z * h + (1 - z) * hh
            saved = [a.write(t, v) for a, v in zip(saved, (z, r, hh, rh, h_hh))]
            return h_new, hs.write(t + 1, h_new), saved

        saved = _arrays(h0, time_steps, 5)  # z, r, hh, r * h, h - hh
        h, hs, saved = loop.run(forward, (h0, _states(h0, time_steps), saved))
        saved, hs = _stacked(saved), hs.stack()

        def gradient(d_h, *d_steps):
            (d_h_steps,) = _step_gradients(d_steps, h_steps)
            w_z_t, w_r_t, w_hh_t = (tf.transpose(w) for w in (w_z, w_r, w_hh))

            def backward(t, carry):
                dh, d_arrays = carry
                dh, valid, g = _incoming(dh, d_h_steps, t, loop)
                z, r, hh, _, h_hh = (a[t] for a in saved)
                g_z, d_z, d_hh = _update_gradients(g, z, hh, h_hh)
                d_rh = tf.matmul(d_hh, w_hh_t)
                d_r = _sigmoid_grad(r, d_rh * hs[t])
                dh_prev = g_z + d_rh * r + _products((d_z, d_r), (w_z_t, w_r_t))
                dh_prev = _where(valid, dh_prev, dh)
                return dh_prev, [a.write(t, d) for a, d in zip(d_arrays, (d_z, d_r, d_hh))]

            dh0, d_arrays = loop.run(
                backward, (_dense(d_h, h), _arrays(h0, time_steps, 3)), reverse=True
            )  # fmt: skip
            d_z, d_r, d_hh = (a.stack() for a in d_arrays)
            before = hs[:-1]  # h before each step
            d_w_h = [
                _weight_gradient(before, d_z),
                _weight_gradient(before, d_r),
                _weight_gradient(saved[3], d_hh),  # r * h before each step
            ]
            return [d_z, d_r, d_hh, dh0, *d_w_h]

        return [h, *[hs[1:]] * h_steps], gradient

    return gru(*xw, h0, *w_h)
