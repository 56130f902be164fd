"""Sequence to sequence: an encoder-decoder RNN that reverses strings of digits.

The encoder (many-to-one) reads "3141" and keeps only its final hidden state, the context vector.  The
decoder (one-to-many) starts from that state and writes "1413" followed by an end token, one digit per step.
Training uses teacher forcing: at every step the decoder is fed the *correct* previous digit (after a start
token), so all steps train in parallel and early mistakes do not derail the rest.  At test time there is no
correct digit to feed: greedy decoding feeds back the decoder's own most likely digit until it writes the
end token.  Inputs have 3 to 6 digits, padded in a batch and passed to the encoder with their lengths.

    python examples/seq2seq_reverse.py            # about 40 s
    python examples/seq2seq_reverse.py --smoke    # a few seconds (CI)
"""
import argparse
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

BOS, EOS, PAD = 10, 11, 12  # tokens after the ten digits
VOCAB = 13


def make_batch(rng, n, min_len=3, max_len=6):
    """(source (n, max_len) padded digits, lengths (n,), decoder input and target (n, max_len + 1))."""
    lengths = rng.integers(min_len, max_len + 1, n)
    source = np.full((n, max_len), PAD)
    dec_in = np.full((n, max_len + 1), PAD)
    target = np.full((n, max_len + 1), PAD)
    for i, length in enumerate(lengths):
        digits = rng.integers(0, 10, length)
        source[i, :length] = digits
        dec_in[i, :length + 1] = np.r_[BOS, digits[::-1]]   # teacher forcing: the right previous token
        target[i, :length + 1] = np.r_[digits[::-1], EOS]
    return source, lengths, dec_in, target


class Seq2Seq(nn.Module):
    def __init__(self, hidden=128, embed=32):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, embed)
        self.encoder = nn.RNN(embed, hidden, batch_first=True)
        self.tgt_embed = nn.Embedding(VOCAB, embed)
        self.decoder = nn.RNN(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def encode(self, source, lengths):
        _, context = self.encoder(self.src_embed(source), lengths=lengths)
        return context                                    # (1, N, hidden): all the decoder gets to see

    def decode(self, tokens, h):
        out, h = self.decoder(self.tgt_embed(tokens), h)  # tokens (N, T) -> out (N, T, hidden)
        return self.head(out), h                          # scores (N, T, VOCAB)

    def forward(self, source, lengths, dec_in):
        scores, _ = self.decode(dec_in, self.encode(source, lengths))
        return scores

    @mg.no_grad()
    def greedy(self, source, lengths, max_len):
        h = self.encode(source, lengths)
        token = np.full((len(source), 1), BOS)
        steps = []
        for _ in range(max_len + 1):
            scores, h = self.decode(token, h)
            token = scores.data.argmax(-1)                # (N, 1): its own best guess becomes the next input
            steps.append(token[:, 0])
        return np.stack(steps, axis=1)


def strip(tokens):
    out = []
    for t in tokens:
        if t == EOS:
            break
        out.append(int(t))
    return out


def main(steps, seed=0):
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Seq2Seq()
    optimizer = mg.optim.Adam(model.parameters(), lr=3e-3)
    start, losses = time.time(), []
    for step in range(1, steps + 1):
        source, lengths, dec_in, target = make_batch(rng, 64)
        scores = model(source, lengths, dec_in)
        loss = F.cross_entropy(scores.reshape(-1, VOCAB), target.reshape(-1), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % max(1, steps // 8) == 0:
            print(f"step {step:5d}  loss {np.mean(losses[-50:]):.3f}  ({time.time() - start:.0f} s)")

    source, lengths, _, _ = make_batch(np.random.default_rng(seed + 1), 500)
    decoded = model.greedy(source, lengths, source.shape[1])
    right = [strip(d) == list(s[:n][::-1]) for s, n, d in zip(source, lengths, decoded)]
    print(f"greedy decoding reverses {np.mean(right):.1%} of 500 new strings exactly")
    for s, n, d, ok in list(zip(source, lengths, decoded, right))[:6]:
        digits, answer = "".join(map(str, s[:n])), "".join(map(str, strip(d)))
        print(f"  {digits:>6} -> {answer:<7} {'ok' if ok else 'wrong'}")
    return losses, float(np.mean(right))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args()
    losses, accuracy = main(steps=40 if args.smoke else 1500)
    sys.exit(0 if np.mean(losses[-10:]) < np.mean(losses[:10]) and (args.smoke or accuracy > 0.5) else 1)
