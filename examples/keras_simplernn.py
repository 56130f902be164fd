"""Keras's SimpleRNN next to minigrad's nn.RNN: shapes, parameter counts, weights and the bidirectional trap.

Seed post 004 builds ``layers.SimpleRNN(units=32)`` on inputs of 16 steps of 64 features four ways
(return_sequences False/True, batch unspecified or 8) and reads ``Param # 3104`` off ``model.summary()``.
This script builds the same four layers with ``nn.RNN(64, 32, batch_first=True)`` and prints their output
shapes beside Keras's, then the stacked and bidirectional variants (Keras's shapes for those follow the same
rules), ``nn.summary()``'s table, and why minigrad (like torch) counts 3136 parameters where Keras counts
3104: torch's RNN keeps two biases, b_ih and b_hh, where Keras keeps one.  Their sum acts as Keras's bias,
so a Keras layer's weights load exactly: kernel (I, H) -> weight_ih = kernel.T, recurrent_kernel (H, H) ->
weight_hh = recurrent_kernel.T, bias -> bias_ih and zeros -> bias_hh.  The outputs are compared with
Keras's formula ``h_t = tanh(x_t K + h_{t-1} R + b)`` computed in numpy (no Keras needed).

Last, the trap when porting ``Bidirectional(SimpleRNN(32))``: Keras returns the forward direction's last
state joined with the backward direction's last state.  In ``output[:, -1]`` the backward half is the state
after the backward direction's FIRST step (it has read only the last input), so the whole-sequence summary
is ``h_n``, not ``output[:, -1]``.  Exits non-zero if any check fails.

    python examples/keras_simplernn.py        # a few seconds
"""
import argparse
import sys

import numpy as np

import minigrad as mg
from minigrad import nn

STEPS, FEATURES, UNITS, BATCH = 16, 64, 32, 8  # post 004: input_shape=(16, 64), units=32, batch 8


class SimpleRNN(nn.Module):
    """Keras's SimpleRNN layer on batch-first input: the whole sequence of states, or only the last one."""

    def __init__(self, input_size, units, return_sequences=False, num_layers=1, bidirectional=False):
        super().__init__()
        self.rnn = nn.RNN(input_size, units, num_layers=num_layers, batch_first=True,
                          bidirectional=bidirectional)
        self.return_sequences = return_sequences

    def forward(self, x):
        output, h_n = self.rnn(x)
        if self.return_sequences:
            return output
        if self.rnn.bidirectional:  # Keras's Bidirectional: each direction's final state (see the trap below)
            return mg.cat([h_n[-2], h_n[-1]], 1)
        return output[:, -1]


def keras_params(input_size, units, num_layers=1, directions=1):
    """Keras's count: kernel (I, H), recurrent_kernel (H, H) and one bias (H,) per layer and direction."""
    total = 0
    for layer in range(num_layers):
        i = input_size if layer == 0 else units * directions
        total += directions * (i * units + units * units + units)
    return total


def output_shape(model, batch):
    """The model's output shape; with batch None, the dimension that follows the batch size becomes None."""
    if batch is not None:
        with mg.no_grad():
            return tuple(model(mg.zeros(batch, STEPS, FEATURES)).shape)
    return nn.summary(model, (1, STEPS, FEATURES), verbose=False).layers[0][2]


def shapes_table():
    # (Keras layer, Keras's output shape, the same layer here, batch size or None)
    post = [
        ("SimpleRNN(32, input_shape=(16, 64))", (None, 32), SimpleRNN(FEATURES, UNITS), None),
        ("SimpleRNN(32, batch_input_shape=(8, 16, 64))", (8, 32), SimpleRNN(FEATURES, UNITS), BATCH),
        ("SimpleRNN(32, input_shape=(16, 64), return_sequences=True)", (None, 16, 32),
         SimpleRNN(FEATURES, UNITS, return_sequences=True), None),
        ("SimpleRNN(32, batch_input_shape=(8, 16, 64), return_sequences=True)", (8, 16, 32),
         SimpleRNN(FEATURES, UNITS, return_sequences=True), BATCH),
    ]
    beyond = [
        ("two stacked SimpleRNN(32, return_sequences=True), input_shape=(16, 64)", (None, 16, 32),
         SimpleRNN(FEATURES, UNITS, return_sequences=True, num_layers=2), None),
        ("Bidirectional(SimpleRNN(32), input_shape=(16, 64))", (None, 64),
         SimpleRNN(FEATURES, UNITS, bidirectional=True), None),
        ("Bidirectional(SimpleRNN(32, return_sequences=True), input_shape=(16, 64))", (None, 16, 64),
         SimpleRNN(FEATURES, UNITS, return_sequences=True, bidirectional=True), None),
    ]
    ok = True
    beyond_title = "beyond the post: stacked and bidirectional (Keras's shapes by the same rules)"
    for title, cases in [("post 004's four SimpleRNN layers", post), (beyond_title, beyond)]:
        print(f"{title}, beside nn.RNN(64, 32, batch_first=True, ...):")
        for keras_layer, keras, model, batch in cases:
            ours = output_shape(model, batch)
            rnn = model.rnn
            count = keras_params(FEATURES, UNITS, rnn.num_layers, 2 if rnn.bidirectional else 1)
            print(f"  {keras_layer}")
            print(f"      keras {keras!s:<14} minigrad {ours!s:<14} params: keras {count}, minigrad "
                  f"{sum(p.numel() for p in model.parameters())}")
            ok &= ours == keras
    return ok


def parameter_counts():
    rnn = nn.RNN(FEATURES, UNITS, batch_first=True)
    print("\nnn.summary() of nn.RNN(64, 32, batch_first=True) on (8, 16, 64); the outputs are (output, h_n):")
    table = nn.summary(rnn, (BATCH, STEPS, FEATURES))
    keras = keras_params(FEATURES, UNITS)
    ours = table.total_params
    print("\nwhy Keras says 3104 and minigrad/torch say 3136:")
    print(f"  keras: kernel {FEATURES}*{UNITS} + recurrent_kernel {UNITS}*{UNITS} + bias {UNITS} = {keras}")
    for name, p in rnn.named_parameters():
        print(f"  minigrad {name:<12} {tuple(p.shape)!s:<9} {p.numel():>5}")
    print(f"  minigrad total {ours} = keras {keras} + {ours - keras} (the second bias, bias_hh)")
    return ours - keras == UNITS


def keras_weights_agree(rng):
    kernel = rng.standard_normal((FEATURES, UNITS)).astype(np.float32) * 0.2
    recurrent_kernel = rng.standard_normal((UNITS, UNITS)).astype(np.float32) * 0.2
    bias = rng.standard_normal(UNITS).astype(np.float32) * 0.1
    x = rng.standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)

    h = np.zeros((BATCH, UNITS))  # Keras's formula, in float64
    states = []
    for t in range(STEPS):
        h = np.tanh(x[:, t] @ kernel.astype(np.float64) + h @ recurrent_kernel.astype(np.float64) + bias)
        states.append(h)
    keras_output = np.stack(states, 1)

    rnn = nn.RNN(FEATURES, UNITS, batch_first=True)
    rnn.load_state_dict({"weight_ih_l0": kernel.T, "weight_hh_l0": recurrent_kernel.T,
                         "bias_ih_l0": bias, "bias_hh_l0": np.zeros(UNITS, np.float32)})
    with mg.no_grad():
        output, h_n = rnn(mg.tensor(x))
    diff = max(np.abs(output.numpy() - keras_output).max(),
               np.abs(h_n.numpy()[0] - keras_output[:, -1]).max())
    print("\nKeras-layout weights loaded into nn.RNN (kernel.T, recurrent_kernel.T, bias, zeros):")
    print(f"  max |minigrad - keras formula| over output and h_n: {diff:.2e}")
    return diff < 1e-5


def bidirectional_trap(rng):
    rnn = nn.RNN(FEATURES, UNITS, batch_first=True, bidirectional=True)
    x = rng.standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    with mg.no_grad():
        output, h_n = rnn(mg.tensor(x))
    out, hn = output.numpy(), h_n.numpy()
    H = UNITS
    # the backward direction's first step reads only the last input, from a zero state
    first_backward = np.tanh(x[:, -1] @ rnn.weight_ih_l0_reverse.numpy().T.astype(np.float64)
                             + rnn.bias_ih_l0_reverse.numpy() + rnn.bias_hh_l0_reverse.numpy())
    last_half = np.abs(out[:, -1, H:] - first_backward).max()
    trap = np.abs(out[:, -1, H:] - hn[1]).max()
    backward_final = np.abs(out[:, 0, H:] - hn[1]).max()
    forward_final = np.abs(out[:, -1, :H] - hn[0]).max()
    print("\nthe bidirectional last-output trap, nn.RNN(64, 32, bidirectional=True) on (8, 16, 64):")
    rows = [("output[:, -1, :32] vs h_n[0] (forward, after all 16 steps)", forward_final, ""),
            ("output[:, -1, 32:] vs the backward direction's first step", last_half, ""),
            ("output[:, -1, 32:] vs h_n[1] (backward, after all 16 steps)", trap, "  <- not the summary"),
            ("output[:, 0, 32:]  vs h_n[1]", backward_final, "")]
    for what, diff, note in rows:
        print(f"  {what:<62} max diff {diff:.2e}{note}")
    print("  so Keras's Bidirectional(SimpleRNN(32)) output is cat(h_n[0], h_n[1]), not output[:, -1]")
    return forward_final < 1e-6 and last_half < 1e-5 and backward_final < 1e-6 and trap > 0.1


def main(seed=0):
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    checks = [shapes_table(), parameter_counts(), keras_weights_agree(rng), bidirectional_trap(rng)]
    return all(checks)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the same run (it takes seconds); for CI")
    args = parser.parse_args()
    sys.exit(0 if main() else 1)
