"""One to many (seed post 003's third pattern): one input at t = 0, then the model's own outputs.

The input is a single digit, 0-9; the output is the digit's English name spelled letter by letter and an
end mark: 3 -> "three.".  At t = 0 the RNN reads the digit -- the only input the task gives it.  From t = 1
on it reads the letter it produced at the step before, so the whole word unrolls from the one input and the
hidden state it set (post 003: in one-to-many the input sets up the state, and the later steps have nothing
new to read).  One vocabulary holds the digits, the letters and ".", embedded by an ``Embedding``.

Training feeds the correct previous letter instead of the model's own (teacher forcing), so all ten words
train as one batch of 6 steps (words shorter than five letters are padded with "." after their end mark).
Generation is greedy: the argmax letter is fed back in, for all ten digits at once, until "." is written.

    python examples/one_to_many.py        # a few seconds
"""
import argparse
import sys

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
END = "."
TOKENS = "0123456789" + END + "".join(sorted(set("".join(NAMES))))
STEPS = 1 + max(len(name) for name in NAMES)  # the digit, then one step per letter of the longest name


class Speller(nn.Module):
    def __init__(self, hidden=48, embedding=16):
        super().__init__()
        self.embed = nn.Embedding(len(TOKENS), embedding)
        self.rnn = nn.RNN(embedding, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(TOKENS))

    def forward(self, tokens, h=None):
        """Token ids (N, L) and the previous state in; next-token scores (N, L, vocab) and the state out."""
        output, h = self.rnn(self.embed(tokens), h)
        return self.head(output), h


def training_batch():
    """Inputs: the digit, then the name's letters; targets: the name, then "." -- padded with "."."""
    inputs = [str(d) + name.ljust(STEPS - 1, END) for d, name in enumerate(NAMES)]
    targets = [name.ljust(STEPS, END) for name in NAMES]
    ids = np.array([[TOKENS.index(c) for c in text] for text in inputs + targets], dtype=np.int64)
    return mg.tensor(ids[:len(NAMES)]), mg.tensor(ids[len(NAMES):].reshape(-1))


@mg.no_grad()
def generate(model, digits):
    """Greedy one-to-many decoding: the digit at t = 0, then each step's argmax letter as the next input."""
    token = mg.tensor(np.array([[TOKENS.index(str(d))] for d in digits], dtype=np.int64))
    h, columns = None, []
    for _ in range(STEPS):
        scores, h = model(token, h)
        token = mg.argmax(scores, 2)  # (N, 1): the chosen letters, fed back in
        columns.append(token.numpy()[:, 0])
    words = ["".join(TOKENS[i] for i in row) for row in np.stack(columns, 1)]
    return [word.split(END)[0] for word in words]


def main(steps, seed=0):
    mg.manual_seed(seed)
    model = Speller()
    optimizer = mg.optim.Adam(model.parameters(), lr=0.02)
    inputs, targets = training_batch()
    print(f"one batch of {len(NAMES)} words, {STEPS} steps each; vocabulary {TOKENS!r}")
    losses = []
    for step in range(steps):
        scores, _ = model(inputs)
        loss = F.cross_entropy(scores.reshape(-1, len(TOKENS)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {losses[-1]:.4f}")
    words = generate(model, range(10))
    print("\ngenerated from one digit each, the model's own letters fed back in:")
    for digit, word in enumerate(words):
        print(f"  {digit} -> {word + END:<8} {'ok' if word == NAMES[digit] else 'expected ' + NAMES[digit]}")
    correct = sum(w == n for w, n in zip(words, NAMES))
    print(f"{correct}/{len(NAMES)} spelled correctly")
    return losses, correct


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args()
    losses, correct = main(steps=30 if args.smoke else 150)
    sys.exit(0 if losses[-1] < losses[0] and (args.smoke or correct == len(NAMES)) else 1)
