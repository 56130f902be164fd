"""The "hello" character model: learn h -> e -> l -> l -> o, then sample with a temperature.

The vocabulary is the four letters [e, h, l, o], each fed in as a one-hot vector.  An RNNCell is looped
over "hell" by hand and a Linear layer scores the next letter at every step, so the targets are "ello".  The
two l's are the interesting part: after the first the answer is "l", after the second "o", and the input is
the same -- only the hidden state, which has seen how many l's went by, can tell them apart.

After training, the model spells words itself: start from "h", turn the scores into probabilities with
softmax(scores / temperature), draw a letter, feed it back in.  Low temperatures almost always give "hello";
high ones flatten the distribution and produce "hlelo"-like mistakes.  With --graph PATH the unrolled graph
of one training step is written (DOT, or SVG/PNG with Graphviz): one cluster per time step, the shared
weights outside them, every node coloured by the size of the gradient that reached it.

    python examples/hello.py [--graph hello.svg]     # a few seconds
"""
import argparse
import sys

import numpy as np

import minigrad as mg
from minigrad import nn, viz
from minigrad.nn import functional as F

VOCAB = "ehlo"
ONE_HOT = np.eye(len(VOCAB), dtype=np.float32)


class CharModel(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.cell = nn.RNNCell(len(VOCAB), hidden)
        self.head = nn.Linear(hidden, len(VOCAB))

    def step(self, char, h):
        """One time step: the one-hot letter and the previous state in; scores and the new state out."""
        h = self.cell(mg.tensor(ONE_HOT[[VOCAB.index(char)]]), h)  # (1, hidden)
        return self.head(h), h


def sequence_loss(model, text="hello"):
    """Cross-entropy of predicting text[t + 1] from text[: t + 1], averaged over the steps."""
    h, loss = None, 0.0
    for t, (char, target) in enumerate(zip(text[:-1], text[1:])):
        scores, h = model.step(char, h)
        viz.mark_step(h, t)  # only for the drawing: puts this step's ops in cluster "t = ..."
        loss = loss + F.cross_entropy(scores, [VOCAB.index(target)])
    return loss / (len(text) - 1)


@mg.no_grad()
def sample(model, rng, temperature, start="h", length=4):
    text, h = start, None
    for _ in range(length):
        scores, h = model.step(text[-1], h)
        z = scores.data[0].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        text += VOCAB[rng.choice(len(VOCAB), p=p / p.sum())]
    return text


def main(steps, graph=None, seed=0):
    mg.manual_seed(seed)
    model = CharModel()
    optimizer = mg.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for step in range(steps):
        loss = sequence_loss(model)
        optimizer.zero_grad()
        if graph and step == 0:
            with viz.GradientRecorder(loss) as recorder:
                loss.backward(retain_graph=True)
            viz.summary(loss)
            print("graph written to", viz.draw_graph(loss, graph, params=model, grad_norms=recorder,
                                                     title="hello: one step of BPTT through 4 time steps"))
        else:
            loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} after {steps} steps (uniform guess: {np.log(4):.3f})")

    print("\nwhat the trained model predicts after each prefix:")
    print("  input  " + "  ".join(f"P({c})" for c in VOCAB))
    h = None
    with mg.no_grad():
        for t, char in enumerate("hell"):
            scores, h = model.step(char, h)
            p = F.softmax(scores, 1).data[0]
            probabilities = "  ".join(f"{v:.2f}" for v in p)
            print(f"  {'hell'[:t + 1]:<5}  {probabilities}   -> {VOCAB[p.argmax()]}")

    rng = np.random.default_rng(seed)
    print("\nsampling from 'h', 200 words per temperature:")
    rates = {}
    for temperature in (0.5, 1.0, 2.0, 5.0):
        words = [sample(model, rng, temperature) for _ in range(200)]
        rates[temperature] = words.count("hello") / len(words)
        others = sorted({w for w in words if w != "hello"})[:4]
        examples = ", ".join(others) or "-"
        print(f"  T = {temperature:<4} 'hello' {rates[temperature]:.0%} of the time; e.g. {examples}")
    return losses, rates


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--graph", metavar="PATH", help="draw one training step's graph (.dot, .svg or .png)")
    args = parser.parse_args()
    losses, rates = main(steps=60 if args.smoke else 100, graph=args.graph)
    sys.exit(0 if losses[-1] < losses[0] and (args.smoke or rates[0.5] > 0.9) else 1)
