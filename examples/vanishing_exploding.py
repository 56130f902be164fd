"""Vanishing and exploding gradients through time, and what gradient clipping changes.

Backpropagation through time multiplies the gradient by the recurrent Jacobian diag(1 - h_t^2) W_hh once per
step.  This script scales a tanh RNN's recurrent weight W_hh (Gaussian, spectral radius about ``scale``) and
measures, with ``minigrad.diagnostics.gradient_through_time``, the gradient of a loss on the *last* state
with respect to every earlier state h_t, and each step's term of dL/dW_hh:

- scale 0.5: the gradient shrinks by ~10x every few steps -- the first steps get ~1e-15 of it (vanishing);
- scale 1.0: it fades slowly;
- scale 3.0: it grows by orders of magnitude on the way back (exploding).

Clipping (``nn.utils.clip_grad_norm_``) rescales the whole gradient when its norm is too large: every step's
term keeps its direction and relative size, only the total shrinks.  It does nothing for vanishing
gradients, but it stops one exploding gradient from wrecking training: the third panel trains the same
model (recurrent scale 1.5, plain SGD) with and without it.

    python examples/vanishing_exploding.py [--out gradient_through_time.png]   # about 15 s
"""
import argparse
import sys

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.diagnostics import gradient_through_time, plot_gradient_through_time, require_matplotlib
from minigrad.nn import functional as F

HIDDEN = 32
CLIP = 1.0


def scaled_rnn(scale, rng, input_size=8):
    rnn = nn.RNN(input_size, HIDDEN)
    rnn.weight_hh_l0.data[...] = scale * rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)
    return rnn


def measure(steps, seed):
    """gradient_through_time for three recurrent scales on the same random input sequence."""
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = 0.5 * rng.standard_normal((steps, 4, 8))
    results = {}
    for scale, regime in ((0.5, "vanishing"), (1.0, "near the edge"), (3.0, "exploding")):
        r = gradient_through_time(scaled_rnn(scale, rng), x)
        results[f"W_hh scale {scale} ({regime})"] = r
        picks = np.linspace(0, steps - 1, 5).astype(int)
        print(f"scale {scale}: ||dL/dh_t|| at t = {', '.join(map(str, picks))}: "
              + "  ".join(f"{v:.1e}" for v in r.dh_norms[picks]))
        clipped = r.clipped(CLIP)
        print(f"           total gradient norm {r.grad_norm:.2e}; after clip_grad_norm_({CLIP:g}): "
              f"{clipped.grad_norm:.2e} (every step's term x {clipped.clip_coef:.1e})")
    return results


def train(clip, steps, seed, scale=1.5, length=30, lag=5, lr=0.1):
    """SGD on 'output the input from `lag` steps ago' with a too-large recurrent weight; the loss per step
    (stops at the first non-finite loss)."""
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rnn, head = scaled_rnn(scale, rng, input_size=1), nn.Linear(HIDDEN, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    optimizer = mg.optim.SGD(params, lr=lr)
    losses = []
    with np.errstate(all="ignore"):  # the unclipped run overflows on purpose
        for _ in range(steps):
            x = rng.standard_normal((length, 16, 1)).astype(np.float32)
            out, _ = rnn(mg.tensor(x))
            loss = F.mse_loss(head(out[-1]), x[-1 - lag])
            optimizer.zero_grad()
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            losses.append(loss.item())
            if not np.isfinite(losses[-1]):
                break
    return losses


def main(steps, train_steps, out, seed=0):
    results = measure(steps, seed)
    runs = {"no clipping": train(None, train_steps, seed),
            f"clip_grad_norm_({CLIP:g})": train(CLIP, train_steps, seed)}
    for name, losses in runs.items():
        end = f"diverged (loss {losses[-1]:.3g}) at step {len(losses)}" if not np.isfinite(losses[-1]) else \
            f"loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}"
        print(f"training, W_hh scale 1.5, SGD lr 0.1, {name}: {end}")
    try:
        figure_class = require_matplotlib()
    except ModuleNotFoundError as e:
        print(f"no figure: {e}")
        return results, runs
    fig = figure_class(figsize=(15, 4.4), layout="constrained")
    axes = fig.subplots(1, 3)
    plot_gradient_through_time(results, axes=axes[:2], clip=CLIP)
    for name, losses in runs.items():
        finite = [v for v in losses if np.isfinite(v)]
        line, = axes[2].semilogy(np.arange(1, len(finite) + 1), finite, label=name)
        if len(finite) < len(losses):  # mark where the loss overflowed
            axes[2].plot(len(finite), finite[-1], "x", color=line.get_color(), markersize=10)
    axes[2].set(xlabel="SGD step", ylabel="loss", title="training with W_hh scale 1.5: clipping vs not")
    axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    fig.suptitle(f"gradient through time, tanh RNN, hidden {HIDDEN}, loss on the last of {steps} states")
    fig.savefig(out, dpi=110)
    print("figure written to", out)
    return results, runs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--out", default="gradient_through_time.png", help="figure path (PNG)")
    args = parser.parse_args()
    results, runs = main(steps=20 if args.smoke else 50, train_steps=30 if args.smoke else 200, out=args.out)
    vanishing, _, exploding = results.values()
    ok = vanishing.dh_norms[0] < vanishing.dh_norms[-1] < exploding.dh_norms[0]
    sys.exit(0 if ok and np.isfinite(list(runs.values())[1][-1]) else 1)
