"""Train a tiny character-level RNN on the Zen of Python, built from minigrad's core ops only.

Everything an RNN is shows up as plain tensor code: one set of weights used at every time step, the hidden
state carried forward, backpropagation through time by calling ``backward()`` on the summed loss, and
truncated BPTT by ``detach()``-ing the hidden state between windows.  After training it prints a text sample:
the model is primed with a few characters, then each next character is drawn with ``minigrad.multinomial``
from the softmax of its scores and fed back in.

    python examples/tiny_rnn.py        # several seconds; --smoke: about one
"""
import argparse
import codecs
import contextlib
import io
import sys
import time

import numpy as np

import minigrad as mg

with contextlib.redirect_stdout(io.StringIO()):
    import this  # the Zen of Python ships with every Python: it is our corpus


def main(steps=800, hidden=64, window=24, lr=0.3, max_norm=5.0, seed=0, sample_length=300):
    text = codecs.decode(this.s, "rot13")
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    V = len(chars)
    onehot = np.eye(V, dtype=np.float32)
    g = mg.Generator(seed)
    s = 1 / np.sqrt(hidden)
    params = {
        "W_xh": mg.empty(hidden, V).uniform_(-s, s, generator=g).requires_grad_(),
        "W_hh": mg.empty(hidden, hidden).uniform_(-s, s, generator=g).requires_grad_(),
        "b_h": mg.zeros(hidden, requires_grad=True),
        "W_hy": mg.empty(V, hidden).uniform_(-s, s, generator=g).requires_grad_(),
        "b_y": mg.zeros(V, requires_grad=True),
    }
    W_xh, W_hh, b_h, W_hy, b_y = params.values()
    h = mg.zeros(1, hidden)
    pos, start, losses = 0, time.time(), []
    for step in range(steps):
        if pos + window + 1 >= len(ids):
            pos, h = 0, mg.zeros(1, hidden)
        x = mg.tensor(onehot[ids[pos:pos + window]])            # (window, V)
        target = ids[pos + 1:pos + window + 1]
        h = h.detach()                                          # truncated BPTT: cut the graph here
        loss = 0
        for t in range(window):
            h = (x[t:t + 1] @ W_xh.T + h @ W_hh.T + b_h).tanh()  # the same weights at every step
            logp = (h @ W_hy.T + b_y).log_softmax(1)
            loss = loss - logp[0, int(target[t])]
        loss = loss / window
        for p in params.values():
            p.grad = None
        loss.backward()                                         # BPTT through the window
        # clip the gradients' global norm against exploding gradients, then take an SGD step
        norm = np.sqrt(sum(float((p.grad.data ** 2).sum()) for p in params.values()))
        scale = min(1.0, max_norm / (norm + 1e-6))
        with mg.no_grad():
            for p in params.values():
                p.data -= (lr * scale) * p.grad.data
        losses.append(loss.item())
        pos += window
        if step % 100 == 0 or step == steps - 1:
            recent = np.mean(losses[-100:])
            speed = (step + 1) * window / (time.time() - start)
            print(f"step {step:4d}  loss {recent:.3f}  ({speed:.1f} chars/s)")
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    print(f"loss fell from {first:.3f} to {last:.3f} (uniform guess: {np.log(V):.3f})")

    # sampling: the same step with each drawn character as the next input
    prime = "Beautiful is"
    sample, h = prime, mg.zeros(1, hidden)
    with mg.no_grad():
        for t in range(len(prime) - 1 + sample_length):
            h = (mg.tensor(onehot[[chars.index(sample[t])]]) @ W_xh.T + h @ W_hh.T + b_h).tanh()
            if t >= len(prime) - 1:  # the prime read, each step now draws the character after sample[t]
                p = (h @ W_hy.T + b_y).softmax(1)
                sample += chars[int(mg.multinomial(p, 1, generator=g).item())]
    print("sample:\n" + sample)
    return first, last


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="40 training steps and a short sample, for CI")
    args = parser.parse_args()
    first, last = main(steps=40, sample_length=80) if args.smoke else main()
    sys.exit(0 if last < first else 1)
