"""Many-to-many: tag every step of a sequence with a stacked bidirectional RNN.

The input is a string of random digits; the tag of a digit is 1 when it is a peak -- larger than both of its
neighbours -- and 0 otherwise.  Whether x_t is a peak depends on x_{t+1}, which a left-to-right RNN has not
read yet at step t.  A bidirectional RNN runs a second RNN from the end to the start and concatenates the two
states at every step, so each tag sees the past and the future.  The script trains the same 2-layer model
with one and with two directions and compares them, after printing the shapes involved.

    python examples/many_to_many_tagging.py            # about 30 s
    python examples/many_to_many_tagging.py --smoke    # a few seconds (CI)
"""
import argparse
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F


def make_batch(rng, n, length=16):
    """(digits (n, length) ints, tags (n, length): 1 where a digit is larger than both neighbours)."""
    x = rng.integers(0, 10, (n, length))
    padded = np.pad(x, ((0, 0), (1, 1)), constant_values=-1)  # the ends have a single neighbour
    tags = (x > padded[:, :-2]) & (x > padded[:, 2:])
    return x, tags.astype(np.int64)


class Tagger(nn.Module):
    def __init__(self, bidirectional, hidden=32, layers=2):
        super().__init__()
        self.embed = nn.Embedding(10, 16)
        self.rnn = nn.RNN(16, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), 2)

    def forward(self, digits):
        output, _ = self.rnn(self.embed(digits))  # (N, L, D*H): both directions' states at every step
        return self.head(output)                  # (N, L, 2) tag scores at every step


def show_shapes():
    model = Tagger(bidirectional=True, hidden=8)
    digits, _ = make_batch(np.random.default_rng(0), 3, length=5)
    x = model.embed(digits)
    output, h_n = model.rnn(x)
    hidden = model.rnn.hidden_size
    print(f"input  {x.shape}  (batch, time, embedding), batch_first=True")
    print(f"output {output.shape}  (batch, time, 2 directions x hidden): the last layer at every step")
    print(f"h_n    {h_n.shape}  (2 directions x 2 layers, batch, hidden): l0 fwd, l0 rev, l1 fwd, l1 rev")
    print("  last layer forward  h_n[2] == output[:, -1, :H]:",
          np.allclose(h_n.data[2], output.data[:, -1, :hidden]))
    print("  last layer reverse  h_n[3] == output[:, 0, H:]: ",
          np.allclose(h_n.data[3], output.data[:, 0, hidden:]), "(the reverse direction ends at t = 0)")


def train(bidirectional, steps, batch, seed):
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Tagger(bidirectional)
    optimizer = mg.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(steps):
        digits, tags = make_batch(rng, batch)
        logits = model(digits)
        loss = F.cross_entropy(logits.reshape(-1, 2), tags.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    digits, tags = make_batch(np.random.default_rng(seed + 1), 500)
    with mg.no_grad():
        predicted = model(digits).data.argmax(-1)
    return losses, (predicted == tags).mean()


def main(steps, batch, seed=0):
    show_shapes()
    results = {}
    for bidirectional in (False, True):
        name = "bidirectional " if bidirectional else "unidirectional"
        start = time.time()
        losses, accuracy = train(bidirectional, steps, batch, seed)
        results[bidirectional] = (losses, accuracy)
        print(f"{name}: loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}, "
              f"tag accuracy {accuracy:.1%} on new sequences ({time.time() - start:.1f} s)")
    _, tags = make_batch(np.random.default_rng(seed + 1), 500)
    print(f"always answering 'not a peak' scores {1 - tags.mean():.1%}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args()
    results = main(steps=30 if args.smoke else 600, batch=32)
    bi_losses, bi_acc = results[True]
    learned = np.mean(bi_losses[-5:]) < np.mean(bi_losses[:5])
    sys.exit(0 if learned and (args.smoke or bi_acc > results[False][1]) else 1)
