"""The "hello" character model of seed post 003: learn h -> e -> l -> l -> o, then decode it two ways.

The vocabulary is the post's [h, e, l, o] (the letters of "hello" in the order they first appear), each fed
in as a one-hot vector.  An RNNCell is looped over "hell" by hand and a Linear layer scores the next letter
at every step, so the targets are "ello".  The two l's are the interesting part: after the first the answer
is "l", after the second "o", and the input is the same -- only the hidden state, which has seen how many
l's went by, can tell them apart.

At test time the model spells words itself from "h", feeding each chosen letter back in.  Post 003's point
is that there are two ways to choose: greedy decoding takes the argmax of the scores and always gives the
same word; sampling draws a letter from softmax(scores / temperature) (``minigrad.multinomial`` with a
fixed ``Generator``, so the run is reproducible) and gives varied words.  The script prints both before,
during and after training, then how often sampling spells "hello" at four temperatures.  With --graph PATH
the unrolled graph of one training step is written (DOT, or SVG/PNG with Graphviz): one cluster per time
step, the shared weights outside them, every node coloured by the size of the gradient that reached it.

    python examples/hello.py [--graph hello.svg]     # a few seconds
"""
import argparse
import sys

import numpy as np

import minigrad as mg
from minigrad import nn, viz
from minigrad.nn import functional as F

VOCAB = "helo"  # post 003's order: the letters of "hello" as they first appear
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
def decode(model, pick, start="h", length=4):
    """Spell ``length`` letters after ``start``, feeding each chosen letter back in; ``pick`` maps the
    next-letter probabilities (1, vocab) to a letter index."""
    text, h = start, None
    for _ in range(length):
        scores, h = model.step(text[-1], h)
        text += VOCAB[pick(scores)]
    return text


def greedy(scores):
    return int(mg.argmax(scores, 1).item())


def sampler(generator, temperature=1.0):
    """Draw a letter from softmax(scores / temperature) with ``generator``."""
    def pick(scores):
        return int(mg.multinomial(F.softmax(scores / temperature, 1), 1, generator=generator).item())
    return pick


def show_decoding(model, generator, when):
    samples = [decode(model, sampler(generator)) for _ in range(8)]
    print(f"{when}: greedy (argmax) gives {decode(model, greedy)!r} every time; sampling gives "
          + " ".join(samples))


def main(steps, graph=None, seed=0):
    mg.manual_seed(seed)
    model = CharModel()
    generator = mg.Generator(seed)  # a fixed stream for the samples: the run prints the same words every time
    show_decoding(model, generator, "untrained")
    optimizer = mg.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for step in range(steps):
        if step in (5, 10):
            show_decoding(model, generator, f"after {step} steps")
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

    print()
    show_decoding(model, generator, "trained")
    word = decode(model, greedy)
    print(f"greedy: {word[1:]}")
    print("\nsampling from 'h', 200 words per temperature:")
    rates = {}
    for temperature in (0.5, 1.0, 2.0, 5.0):
        words = [decode(model, sampler(generator, temperature)) for _ in range(200)]
        rates[temperature] = words.count("hello") / len(words)
        others = sorted({w for w in words if w != "hello"})[:4]
        examples = ", ".join(others) or "-"
        print(f"  T = {temperature:<4} 'hello' {rates[temperature]:.0%} of the time; e.g. {examples}")
    return losses, word, rates


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--graph", metavar="PATH", help="draw one training step's graph (.dot, .svg or .png)")
    args = parser.parse_args()
    losses, word, rates = main(steps=60 if args.smoke else 100, graph=args.graph)
    learned = word == "hello" and rates[0.5] > 0.9 and rates[5.0] < 1
    sys.exit(0 if losses[-1] < losses[0] and (args.smoke or learned) else 1)
