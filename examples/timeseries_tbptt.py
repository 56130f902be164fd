"""Time-series prediction with truncated BPTT over 2 parallel streams, in windows of 10 steps.

The series is 1000 samples of two mixed sines plus noise; the model (RNN + Linear) predicts every next sample.
Truncated BPTT with minibatches, as in the seed notes: the series is laid out as 2 streams -- stream 0 reads
samples 0..499, stream 1 samples 500..999 -- so one batch holds one window of each stream, and the windows
advance together: the first covers samples 0-9 and 500-509, the next 10-19 and 510-519, and so on.  The
hidden state flows from one window to the next (the forward pass never forgets), but it is detached at every
window boundary, so each update backpropagates through at most 10 steps.  ``minigrad.tbptt`` does the layout
(``batchify``) and the loop (``run``); the script then forecasts 200 further samples, one step ahead.

    python examples/timeseries_tbptt.py [--plot series.png]    # about 20 s
"""
import argparse
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn, tbptt
from minigrad.nn import functional as F

NOISE = 0.1


def signal(n, seed):
    t = np.arange(n)
    clean = np.sin(2 * np.pi * t / 40) + 0.5 * np.sin(2 * np.pi * t / 13)
    return (clean + NOISE * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


class Forecaster(nn.Module):
    """inputs (t, B, 1), state -> predictions of the next sample (t, B, 1), new state."""

    def __init__(self, hidden=32):
        super().__init__()
        self.rnn = nn.RNN(1, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, h=None):
        out, h = self.rnn(x, h)
        return self.head(out), h


def main(epochs, plot=None, seed=0):
    mg.manual_seed(seed)
    series = signal(1200, seed)
    train, test = series[:1000], series[1000:]
    streams = tbptt.batchify(train[:, None], 2)  # (500, 2, 1): column b is train[500 b : 500 (b + 1)]
    print(f"streams {streams.shape} (time, stream, feature); stream 1 starts at sample 500:",
          bool(streams[0, 1, 0] == train[500]))
    inputs, targets = next(tbptt.windows(streams, 10))
    print(f"first window: inputs {inputs.shape} = samples 0-9 and 500-509; targets {targets.shape} = "
          "the same windows one step later")

    model = Forecaster()
    optimizer = mg.optim.Adam(model.parameters(), lr=2e-3)
    start, history = time.time(), []
    for epoch in range(1, epochs + 1):
        # One pass: 50 windows of 10 steps, state carried across windows but detached at each boundary.
        losses, h = tbptt.run(model, F.mse_loss, streams, k1=10, optimizer=optimizer, max_norm=1.0)
        history.append(float(np.mean(losses)))
        if epoch % max(1, epochs // 6) == 0 or epoch == 1:
            print(f"epoch {epoch:3d}  mean window loss {history[-1]:.4f}  ({len(losses)} updates)")

    # Forecast the held-out 200 samples one step ahead: warm the state up on the training series first.
    with mg.no_grad():
        _, h = model(mg.tensor(train[:, None, None]))
        predicted, _ = model(mg.tensor(np.concatenate([train[-1:], test[:-1]])[:, None, None]), h)
    predicted = predicted.data[:, 0, 0]
    mse = float(np.mean((predicted - test) ** 2))
    naive = float(np.mean((test[1:] - test[:-1]) ** 2))
    print(f"test MSE {mse:.4f}; repeating the previous sample: {naive:.4f}; noise floor {NOISE ** 2:.4f} "
          f"({time.time() - start:.1f} s)")
    if plot:
        _plot(plot, train, test, predicted, history)
    return history, mse, naive


def _plot(path, train, test, predicted, history):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("--plot needs matplotlib: pip install matplotlib (or pip install 'minigrad[viz]')")
        return
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax, ax_loss = fig.subplots(1, 2, width_ratios=[3, 1])
    t = np.arange(len(train) + len(test))
    ax.plot(t[800:1000], train[800:], color="grey", label="training series (end)")
    ax.plot(t[1000:], test, color="black", label="held-out series")
    ax.plot(t[1000:], predicted, color="C3", label="one-step-ahead forecast")
    ax.set(xlabel="t", title="truncated BPTT: 2 streams, windows of 10")
    ax.legend(fontsize=8)
    ax_loss.semilogy(np.arange(1, len(history) + 1), history)
    ax_loss.set(xlabel="epoch", ylabel="MSE", title="training loss")
    fig.savefig(path, dpi=110)
    print("figure written to", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--plot", metavar="PATH", help="write the forecast and loss curve (PNG, matplotlib)")
    args = parser.parse_args()
    history, mse, naive = main(epochs=3 if args.smoke else 40, plot=args.plot)
    sys.exit(0 if history[-1] < history[0] and (args.smoke or mse < naive) else 1)
