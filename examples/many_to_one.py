"""Many-to-one: classify a whole sequence from the RNN's last hidden state.

Each sequence is 20 to 40 samples of a noisy wave -- a sine, a square or a sawtooth, with random frequency and
phase -- and the task is to say which.  The RNN reads the sequence step by step; only its final hidden state
h_n goes to a Linear layer that scores the three classes.  Sequences in a batch have different lengths: they
are zero-padded to the longest and the true lengths are passed to the RNN, so h_n is each sequence's state at
its *own* last sample (what PyTorch's pack_padded_sequence gives), never a state that has read padding.

    python examples/many_to_one.py            # about 20 s
    python examples/many_to_one.py --smoke    # a few seconds (CI)
"""
import argparse
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

CLASSES = ["sine", "square", "sawtooth"]


def make_batch(rng, n, min_len=20, max_len=40, noise=0.3):
    """(x (n, L, 1) float32 batch-first and zero-padded, lengths (n,), labels (n,))."""
    lengths = rng.integers(min_len, max_len + 1, n)
    labels = rng.integers(0, len(CLASSES), n)
    t = np.arange(lengths.max())
    cycles = rng.uniform(0.04, 0.12, n)[:, None] * t + rng.uniform(0, 1, n)[:, None]
    waves = np.stack([np.sin(2 * np.pi * cycles), np.sign(np.sin(2 * np.pi * cycles)), 2 * (cycles % 1) - 1])
    x = waves[labels, np.arange(n)] + noise * rng.standard_normal(cycles.shape)
    x[t[None, :] >= lengths[:, None]] = 0.0  # padding: never read, thanks to lengths
    return x[..., None].astype(np.float32), lengths, labels


class Classifier(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.rnn = nn.RNN(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(CLASSES))

    def forward(self, x, lengths):
        _, h_n = self.rnn(x, lengths=lengths)  # h_n (1, N, H): each sequence's state after its last sample
        return self.head(h_n[-1])              # the last layer's final state -> (N, 3) class scores


def main(steps, batch, seed=0):
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Classifier()
    optimizer = mg.optim.Adam(model.parameters(), lr=1e-2)

    x, lengths, labels = make_batch(rng, 4)
    output, h_n = model.rnn(mg.tensor(x), lengths=lengths)
    print(f"input {x.shape} (batch, time, features), lengths {lengths.tolist()}")
    print(f"output {output.shape}: every step's state (zeros past each length); h_n {h_n.shape}: the last "
          "real step's state")
    print(f"h_n[0, 0] equals output[0, {lengths[0] - 1}]:",
          np.allclose(h_n.data[0, 0], output.data[0, lengths[0] - 1]))

    start, losses = time.time(), []
    for step in range(1, steps + 1):
        x, lengths, labels = make_batch(rng, batch)
        loss = F.cross_entropy(model(mg.tensor(x), lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % max(1, steps // 8) == 0:
            print(f"step {step:4d}  loss {np.mean(losses[-20:]):.3f}")

    x, lengths, labels = make_batch(np.random.default_rng(seed + 1), 1000)
    with mg.no_grad():
        predicted = model(mg.tensor(x), lengths).data.argmax(1)
    accuracy = (predicted == labels).mean()
    print(f"test accuracy on 1000 new sequences: {accuracy:.1%} (chance {1 / len(CLASSES):.0%}); "
          f"{time.time() - start:.1f} s")
    for k, name in enumerate(CLASSES):
        print(f"  {name:<9} {np.mean(predicted[labels == k] == k):.1%}")
    return losses, accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args()
    losses, accuracy = main(steps=40 if args.smoke else 400, batch=32 if args.smoke else 64)
    learned = np.mean(losses[-10:]) < np.mean(losses[:10]) and (args.smoke or accuracy > 0.8)
    sys.exit(0 if learned else 1)
