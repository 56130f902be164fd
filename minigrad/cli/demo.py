"""Train a character-level RNN language model and watch it learn.

The model is Embedding -> nn.RNN (or nn.LSTM / nn.GRU with --cell) -> Linear, predicting every next
character.  The training text (by default
the Python standard library's own source, found at run time) is laid out as parallel streams, one per batch
column, and read in windows of --window steps: truncated BPTT, with the hidden state carried from window to
window but detached, gradient-norm clipping and Adam.  Every --sample-every steps a sample is generated; at
the end come the loss curve, the validation perplexity (on the last 10% of each twentieth of the text, at
most 100,000 characters) and a final sample drawn with --seed, which `--load CKPT --sample N` reproduces
exactly.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import minigrad as mg
from minigrad import nn, serialization, tbptt, viz
from minigrad.cli import common
from minigrad.cli.common import CLIError
from minigrad.data import CharVocab, read_text, split_interleaved, stdlib_corpus
from minigrad.nn import functional as F

HELP = "train a character-level RNN language model (truncated BPTT, clipping, Adam)"
EXAMPLES = """examples:
  minigrad demo                                        about a minute on the standard library's source
  minigrad demo --text book.txt --steps 3000 --save book.npz --plot loss.png
  minigrad demo --load book.npz --sample 500 --temperature 0.5 --prime "The "
  minigrad demo --cell lstm --save lstm.npz           an LSTM instead of an Elman RNN
  minigrad demo --steps 1 --graph window.svg           the autograd graph of one BPTT window"""

CHECKPOINT_FORMAT = "minigrad-demo-char-rnn-1"
MODEL_DEFAULTS = {"hidden": 256, "layers": 1, "embed": 32}
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # weight blocks per layer: each gate has its own
# Far beyond what a CPU demo trains in reasonable time; hidden 16384 alone is 1 GiB per weight matrix.  Within
# these, a model whose training state would not fit in the machine's memory is refused too (check_model_fits).
MODEL_LIMITS = {"hidden": 16384, "layers": 64, "embed": 16384}
VALIDATION_FRACTION = 0.1
MAX_VALIDATION_CHARS = 100_000
SAMPLE_LENGTH = 240


class CharRNN(nn.Module):
    """Embedding(vocab, embed) -> RNN, LSTM or GRU (embed, hidden, layers) -> Linear(hidden, vocab).

    Inputs: ``ids`` (L, B) integer character ids, time-major; the state (layers, B, hidden), for an LSTM a
    pair (h, c) of them, or None.
    Outputs: logits (L, B, vocab) for the next character at every position, and the final state.
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int, layers: int, cell: str = "rnn") -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = CELLS[cell](embed, hidden, num_layers=layers)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids: np.ndarray, h: Any = None) -> tuple[mg.Tensor, Any]:
        out, h = self.rnn(self.embed(ids), h)
        return self.head(out), h


def add_arguments(p: argparse.ArgumentParser) -> None:
    count, number = common.positive_int, common.positive_float
    data = p.add_argument_group("data and model")
    data.add_argument("--text", metavar="FILE", help="UTF-8 text to train on (default: the Python standard "
                      "library's source files)")
    data.add_argument("--cell", choices=list(CELLS), help="the recurrent layer: nn.RNN, nn.LSTM or nn.GRU "
                      "(default rnn; with --load, the checkpoint's)")
    for name, what in (("hidden", "hidden size"), ("layers", "RNN layers"), ("embed", "embedding size")):
        data.add_argument(f"--{name}", type=common.positive_int_up_to(MODEL_LIMITS[name]), metavar="N",
                          help=f"{what} (default {MODEL_DEFAULTS[name]}, at most {MODEL_LIMITS[name]})")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=count, metavar="N", default=1500,
                       help="optimiser steps (default 1500)")
    train.add_argument("--window", type=count, metavar="N", default=64,
                       help="truncated-BPTT window: time steps per update (default 64)")
    train.add_argument("--streams", type=count, metavar="N", default=32,
                       help="parallel streams = batch size (default 32)")
    train.add_argument("--lr", type=number, metavar="X", default=3e-3,
                       help="Adam learning rate (default 3e-3)")
    train.add_argument("--clip", type=common.non_negative_float, metavar="X", default=1.0,
                       help="clip the gradient norm to this, 0 for no clipping (default 1.0)")
    train.add_argument("--seed", type=common.non_negative_int, metavar="N", default=0,
                       help="seed for initialisation and sampling (default 0)")
    train.add_argument("--threads", type=count, metavar="N", help="threads for minigrad's kernels (default: "
                       "MINIGRAD_NUM_THREADS, else OMP_NUM_THREADS, else all cores)")
    sample = p.add_argument_group("sampling")
    sample.add_argument("--temperature", type=number, metavar="X", default=0.8,
                        help="sampling temperature: < 1 sharper, > 1 more random (default 0.8)")
    sample.add_argument("--sample-every", type=count, metavar="K",
                        help="print a sample every K steps (default: 5 samples per run)")
    sample.add_argument("--prime", metavar="TEXT", help="text to start samples from (default: a newline)")
    sample.add_argument("--sample", type=count, metavar="N",
                        help="with --load: only generate N characters and exit")
    files = p.add_argument_group("files")
    files.add_argument("--save", metavar="PATH", help="write a checkpoint (.npz: model, vocabulary, config, "
                       "optimiser state; no pickle)")
    files.add_argument("--load", metavar="PATH", help="start from a checkpoint written by --save")
    files.add_argument("--plot", metavar="PATH", help="write the loss curve as PNG (needs matplotlib)")
    files.add_argument("--graph", metavar="PATH", help="draw the first window's autograd graph, coloured by "
                       "gradient norm (.dot; .svg/.png with Graphviz installed)")


def run(args: argparse.Namespace) -> int:
    save, plot = _check_arguments(args)
    if args.threads:
        try:
            mg.set_num_threads(args.threads)
        except ValueError as e:
            raise CLIError(f"--threads {args.threads}: {e}") from None
    mg.manual_seed(args.seed)
    if args.sample is not None:
        model, vocab, _, _ = load_checkpoint(args.load, args)
        prime = _prime(args.prime, vocab)
        print(printable(with_prime(args.prime, generate(model, vocab, args.sample, args.temperature, args.seed,
                                                        prime))))
        return 0

    text, source = _training_text(args.text)
    if args.load:
        model, vocab, config, state = load_checkpoint(args.load, args)
    else:
        vocab, state = CharVocab.from_text(text), None
        config = {key: getattr(args, key) or default for key, default in MODEL_DEFAULTS.items()}
        config["cell"] = args.cell or "rnn"
        check_model_fits(len(vocab), config)
        model = CharRNN(len(vocab), config["embed"], config["hidden"], config["layers"], config["cell"])
    prime = _prime(args.prime, vocab)
    train_ids, val_ids = _split(text, source, vocab, args)
    optimizer = mg.optim.Adam(model.parameters(), lr=args.lr)
    start_step = 0
    if state is not None:  # resume: Adam's moments and step counts, with this run's learning rate
        optimizer.load_state_dict(state["optimizer"])
        optimizer.param_groups[0]["lr"] = args.lr
        start_step = state["step"]
        print(f"resumed from {args.load} after step {start_step}: training steps {start_step + 1} to "
              f"{start_step + args.steps}")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"data: {source}: {len(train_ids) + len(val_ids):,} characters, vocabulary {len(vocab)}; "
          f"{len(train_ids):,} for training, {len(val_ids):,} for validation")
    embed, hidden = config["embed"], config["hidden"]
    print(f"model: Embedding({len(vocab)}, {embed}) -> {type(model.rnn).__name__}({embed}, {hidden}, "
          f"num_layers={config['layers']}) -> Linear({hidden}, {len(vocab)}): {n_params:,} parameters")
    print(f"training: {args.steps} steps of truncated BPTT, {args.streams} streams x {args.window} steps, "
          f"Adam lr {args.lr:g}, " + (f"clip grad norm {args.clip:g}" if args.clip else "no clipping")
          + f", seed {args.seed}; kernels: {mg.config()['backend']}/{mg.config()['isa']}, "
          f"{mg.get_num_threads()} threads")

    every = args.sample_every or max(1, args.steps // 5)
    losses, elapsed, interrupted = train(model, optimizer, train_ids, args, every, vocab, prime, start_step)
    if save is not None:  # first: the checkpoint is what a long run is for
        config.update(window=args.window, streams=args.streams, lr=args.lr, clip=args.clip, seed=args.seed)
        try:
            save_checkpoint(save, model, vocab, config, optimizer, start_step + len(losses))
        except OSError as e:
            raise CLIError(f"--save {save}: {e.strerror or e}") from None
        print(f"checkpoint written to {save}")
    val = evaluate(model, val_ids, args.streams, args.window) if len(val_ids) >= 2 else None
    report(losses, elapsed, val, vocab, train_ids, args)
    print(f"\n--- sample (seed {args.seed}, temperature {args.temperature:g}) ---")
    print(printable(with_prime(args.prime, generate(model, vocab, SAMPLE_LENGTH, args.temperature, args.seed,
                                                    prime))))
    print("---")
    if plot is not None:
        try:
            plot_losses(plot, losses, val, start_step, args)
        except OSError as e:
            raise CLIError(f"--plot {plot}: {e.strerror or e}") from None
        print(f"loss curve written to {plot}")
    return 130 if interrupted else 0


def _check_arguments(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """Everything that can be wrong with the options, checked before any work: (save path, plot path)."""
    if args.sample is not None and args.load is None:
        raise CLIError("--sample N generates from a trained model: give --load PATH too")
    save = common.writable_path(args.save, "--save", replace=True) if args.save else None
    plot = common.writable_path(args.plot, "--plot") if args.plot else None
    if plot is not None:
        _require_matplotlib()
    if args.graph:
        common.writable_path(args.graph, "--graph")
        if Path(args.graph).suffix.lower() not in (".dot", ".gv", ".svg", ".png", ".pdf"):
            raise CLIError(f"--graph {args.graph}: use a .dot, .svg, .png or .pdf file name")
    return save, plot


def check_model_fits(vocab_size: int, config: dict[str, Any]) -> None:
    """Refuse a model whose float32 parameters, gradients and Adam's two moments alone exceed this machine's
    physical memory: the allocations would each succeed and then end in the kernel's out-of-memory killer,
    not in an error message."""
    embed, hidden, layers = config["embed"], config["hidden"], config["layers"]
    recurrent = hidden * (embed + hidden + 2) + (layers - 1) * hidden * (2 * hidden + 2)
    params = vocab_size * embed + GATES[config["cell"]] * recurrent + (hidden + 1) * vocab_size
    need = params * 4 * 4
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no way to ask
        return
    if need > have:
        raise CLIError(f"the model would have {params:,} parameters: with their gradients and Adam's state "
                       f"{need / 2**30:.1f} GiB, more than this machine's {have / 2**30:.1f} GiB of memory; "
                       "use a smaller --hidden, --layers or --embed")


def _split(text: str, source: str, vocab: CharVocab,
           args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(training ids, validation ids), checking that the training part fills the streams and a window."""
    try:
        ids = vocab.encode(text)
    except ValueError as e:  # only a loaded checkpoint's vocabulary can miss a character
        raise CLIError(f"{source}: {e} of the checkpoint") from None
    fraction = min(VALIDATION_FRACTION, MAX_VALIDATION_CHARS / len(ids))
    train_ids, val_ids = split_interleaved(ids, fraction)
    if len(train_ids) < args.streams * (args.window + 1):
        per_stream = len(train_ids) // args.streams
        raise CLIError(f"--window {args.window} is longer than the data: {len(train_ids):,} training "
                       f"characters over {args.streams} streams leave {per_stream:,} per stream, and a "
                       f"window needs {args.window + 1}; use a smaller --window or --streams, or more text")
    return train_ids, val_ids


def _training_text(path: str | None) -> tuple[str, str]:
    if path is None:
        try:
            return stdlib_corpus(), "Python standard library sources"
        except FileNotFoundError as e:
            raise CLIError(f"{e} (--text FILE)") from None
    try:
        text = read_text(path)
    except (OSError, ValueError) as e:
        raise CLIError(f"--text {e}") from None
    if not text:
        raise CLIError(f"--text {path}: holds no text (only a UTF-8 byte-order mark)")
    return text, path


def _prime(text: str | None, vocab: CharVocab) -> np.ndarray:
    """Ids that start every sample: --prime, else a newline (else the vocabulary's first character)."""
    if text is None:
        text = "\n" if "\n" in vocab.chars else vocab.chars[0]
    if text == "":
        raise CLIError("--prime must not be empty")
    try:
        return vocab.encode(text)
    except ValueError as e:
        raise CLIError(f"--prime: {e}") from None


def train(model: CharRNN, optimizer: Any, train_ids: np.ndarray, args: argparse.Namespace, every: int,
          vocab: CharVocab, prime: np.ndarray, start_step: int = 0) -> tuple[list[float], float, bool]:
    """The truncated-BPTT loop; returns (loss per step, seconds spent, whether Ctrl-C stopped it).

    Steps are numbered from ``start_step + 1`` (a resumed run continues its checkpoint's count).
    """
    params = list(model.parameters())
    rng = np.random.default_rng(args.seed)
    losses: list[float] = []
    bar = Progress(args.steps, start=start_step)
    h, batches = None, iter(())
    start = time.perf_counter()
    try:
        for step in range(1, args.steps + 1):
            batch = next(batches, None)
            if batch is None:
                # A new pass over the text, from a random offset so windows do not always cut at the same
                # places; each stream starts again from a zero state.
                offset = int(rng.integers(args.window))
                batches = tbptt.windows(tbptt.batchify(train_ids[offset:], args.streams), args.window)
                h, batch = None, next(batches)
            inputs, targets = batch
            logits, h = model(inputs, h)
            h = tbptt.detach_state(h)  # the next window starts from here, but backward stops here
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            optimizer.zero_grad()
            if step == 1 and args.graph:
                draw_window(loss, model, args.graph)
            else:
                loss.backward()
            # Returns the norm before clipping, shown in the progress line; --clip 0 only measures it.
            grad_norm = nn.utils.clip_grad_norm_(params, args.clip or math.inf).item()
            optimizer.step()
            losses.append(loss.item())
            bar.update(step, losses, inputs.size, grad_norm, time.perf_counter() - start)
            if step % every == 0 and step < args.steps:
                done = start_step + step
                text = with_prime(args.prime, generate(model, vocab, SAMPLE_LENGTH, args.temperature,
                                                       args.seed + done, prime))
                bar.interrupt(f"--- sample at step {done} (temperature {args.temperature:g}) ---\n{text}")
    except KeyboardInterrupt:
        bar.interrupt(f"interrupted at step {start_step + len(losses)}: finishing with what has been "
                      "learned")
        return losses, time.perf_counter() - start, True
    bar.close()
    return losses, time.perf_counter() - start, False


def draw_window(loss: mg.Tensor, model: CharRNN, path: str) -> None:
    """Backpropagate ``loss`` while recording every node's gradient norm, then draw the window's graph with
    its repeated time steps collapsed."""
    with viz.GradientRecorder(loss) as recorder:
        loss.backward()
    written = viz.draw_graph(loss, path, params=model, grad_norms=recorder, collapse=3,
                             title="one truncated-BPTT window of the demo model")
    print(f"graph of the first window written to {written}")


@mg.no_grad()
def evaluate(model: CharRNN, ids: np.ndarray, streams: int, window: int) -> float:
    """Mean cross-entropy (nats per character) of predicting each next character of ``ids``."""
    streams = max(1, min(streams, len(ids) // 64))
    total, count, h = 0.0, 0, None
    for inputs, targets in tbptt.windows(tbptt.batchify(ids, streams), window * 4):
        logits, h = model(inputs, h)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
        total += loss.item()
        count += targets.size
    return total / count


@mg.no_grad()
def generate(model: CharRNN, vocab: CharVocab, length: int, temperature: float, seed: int,
             prime: np.ndarray) -> str:
    """``length`` characters sampled one at a time from softmax(logits / temperature), after ``prime``.

    Deterministic for a given model, seed, temperature and prime.
    """
    rng = np.random.default_rng(seed)
    logits, h = model(prime.reshape(-1, 1))
    last = logits[-1, 0].data.astype(np.float64)
    out = []
    for _ in range(length):
        p = sampling_probabilities(last, temperature)
        nxt = int(rng.choice(len(p), p=p))
        out.append(nxt)
        logits, h = model(np.array([[nxt]]), h)
        last = logits[0, 0].data.astype(np.float64)
    return vocab.decode(out)


def with_prime(prime: str | None, sample: str) -> str:
    """A sample as it is shown: the --prime text it continues (none given: nothing), then the sample."""
    return (prime or "") + sample


def sampling_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / temperature) in float64.  A diverged model's logits still give a distribution: nan
    counts as -inf, +inf logits share all the probability, and all -inf (or nan) is uniform."""
    z = np.where(np.isnan(logits), -np.inf, logits / temperature)
    top = z.max()
    if top == -np.inf:
        return np.full(len(z), 1.0 / len(z))
    p = (z == np.inf).astype(np.float64) if top == np.inf else np.exp(z - top)
    return p / p.sum()


def printable(text: str) -> str:
    """``text`` for a terminal: control characters other than newline and tab (a carriage return or an
    escape sequence sampled from the training text would garble the screen) shown as U+FFFD."""
    if not sys.stdout.isatty():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


class Progress:
    """A one-line progress bar on a terminal; periodic plain lines otherwise (logs, CI, pipes)."""

    def __init__(self, total: int, width: int = 24, start: int = 0) -> None:
        """``total`` steps to run, shown as steps ``start + 1`` to ``start + total``."""
        self.total, self.width, self.start = total, width, start
        self.tty = sys.stdout.isatty()
        self.every = max(1, total // 10)
        self.chars = 0
        self.line = ""
        self.drawn_at = -1.0

    def update(self, step: int, losses: list[float], chars: int, grad_norm: float, elapsed: float) -> None:
        self.chars += chars
        if self.tty and elapsed - self.drawn_at < 0.1 and step != self.total:
            return  # at most 10 redraws a second
        self.drawn_at = elapsed
        recent = float(np.mean(losses[-20:]))
        rate = self.chars / max(elapsed, 1e-9)
        eta = elapsed / step * (self.total - step)
        last = self.start + self.total
        width = len(str(last))
        stats = (f"step {self.start + step:>{width}}/{last}  loss {recent:.3f}  grad {grad_norm:6.2f}  "
                 f"{rate:,.0f} chars/s  eta {eta:4.0f}s")
        if self.tty:
            done = self.width * step // self.total
            self.line = "[" + "#" * done + "." * (self.width - done) + "] " + stats
            print("\r" + self.line, end="", flush=True)
        elif step % self.every == 0 or step == self.total:
            print(stats, flush=True)

    def interrupt(self, text: str) -> None:
        """Print ``text`` on lines of its own, then redraw the bar."""
        if self.tty and self.line:
            print("\r" + " " * len(self.line) + "\r", end="")
        print(printable(text), flush=True)
        if self.tty and self.line:
            print(self.line, end="", flush=True)

    def close(self) -> None:
        if self.tty:
            print()


def report(losses: list[float], elapsed: float, val: float | None, vocab: CharVocab, train_ids: np.ndarray,
           args: argparse.Namespace) -> None:
    """The end-of-run summary: loss curve, speed, validation perplexity with two baselines."""
    if not losses:
        print("no steps were run")
        return
    n = len(losses)
    k = max(1, n // 20)
    print(f"\nloss curve (mean of each 1/20 of the run): {sparkline(losses)}")
    print(f"train loss: {np.mean(losses[:k]):.3f} -> {np.mean(losses[-k:]):.3f} nats/char "
          f"(first and last {k} steps), lowest {min(losses):.3f}")
    print(f"time: {elapsed:.1f} s, {n * args.streams * args.window / elapsed:,.0f} chars/s, "
          f"{elapsed / n * 1000:.1f} ms per step")
    counts = np.bincount(train_ids, minlength=len(vocab)) + 1
    unigram = float(-(counts / counts.sum() * np.log(counts / counts.sum())).sum())
    if val is None:
        print("validation: skipped (the text is too short to hold out any)")
        return
    print(f"validation: {val:.3f} nats/char = {val / math.log(2):.2f} bits/char, "
          f"perplexity {perplexity(val):.2f} "
          f"(unigram frequencies: {math.exp(unigram):.1f}, uniform: {len(vocab)})")


def perplexity(nats: float) -> float:
    """exp(nats): inf for a diverged model's loss (math.exp raises OverflowError above ~709)."""
    try:
        return math.exp(nats)
    except OverflowError:
        return math.inf


def sparkline(values: list[float], buckets: int = 20) -> str:
    """Block characters, one per bucket of ``values``, taller for larger means; a bucket whose mean is inf or
    nan (a diverged run) gets the tallest."""
    chunks = [c for c in np.array_split(np.asarray(values, dtype=float), min(buckets, len(values))) if len(c)]
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf in a bucket's mean is nan: shown tallest
        means = np.array([c.mean() for c in chunks])
    levels = "▁▂▃▄▅▆▇█"
    finite = np.isfinite(means)
    scaled = np.full(len(means), len(levels) - 1)
    if finite.any():
        lo, hi = means[finite].min(), means[finite].max()
        if hi > lo:
            scaled[finite] = ((means[finite] - lo) / (hi - lo) * (len(levels) - 1)).round()
        else:
            scaled[finite] = 0
    return "".join(levels[i] for i in scaled) + f"  ({means[0]:.2f} .. {means[-1]:.2f})"


def _require_matplotlib() -> None:
    from minigrad.diagnostics import require_matplotlib
    try:
        require_matplotlib()
    except ModuleNotFoundError as e:
        raise CLIError(f"--plot: {e}") from None


def plot_losses(path: Path, losses: list[float], val: float | None, start_step: int,
                args: argparse.Namespace) -> None:
    from minigrad.diagnostics import require_matplotlib
    fig = require_matplotlib()(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    steps = np.arange(start_step + 1, start_step + len(losses) + 1)
    ax.plot(steps, losses, color="C0", alpha=0.35, linewidth=0.8, label="training loss (each step)")
    k = max(1, len(losses) // 50)
    if len(losses) >= k:
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, color="C0", linewidth=2, label=f"mean of {k} steps")
    if val is not None and math.isfinite(val):
        ax.axhline(val, color="C3", linestyle="--",
                   label=f"validation {val:.3f} (perplexity {perplexity(val):.2f})")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per character)",
           title=f"char-RNN, truncated BPTT: {args.streams} streams x {args.window} steps, "
                 f"Adam lr {args.lr:g}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110)


def save_checkpoint(path: Path, model: CharRNN, vocab: CharVocab, config: dict[str, Any], optimizer: Any,
                    step: int) -> None:
    """Model state, vocabulary, config, Adam's state and the step count in one ``.npz``
    (``minigrad.serialization``: plain arrays plus JSON, never pickle; written atomically)."""
    serialization.save({"format": CHECKPOINT_FORMAT, "config": config, "vocab": vocab.chars, "step": step,
                        "model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)


def load_checkpoint(path: str, args: argparse.Namespace) -> tuple[CharRNN, CharVocab, dict[str, Any], dict]:
    """(model, vocab, config, {"optimizer": state dict, "step": int}) from ``save_checkpoint``'s file.

    Model sizes and the cell come from the checkpoint; a --hidden/--layers/--embed/--cell that disagrees is
    an error.  A checkpoint from before --cell existed holds an nn.RNN.
    """
    try:
        ckpt = serialization.load(path)
    except FileNotFoundError:
        raise CLIError(f"--load {path}: no such file") from None
    except serialization.CheckpointError:
        problem = "not a minigrad checkpoint (or a truncated or corrupted one)"
        raise CLIError(f"--load {path}: {problem}") from None
    except OSError as e:
        raise CLIError(f"--load {path}: {e.strerror or e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CLIError(f"--load {path}: a minigrad checkpoint, but not one written by `minigrad demo --save`")
    config = ckpt["config"]
    config.setdefault("cell", "rnn")
    for key in [*MODEL_DEFAULTS, "cell"]:
        given = getattr(args, key)
        if given is not None and given != config[key]:
            raise CLIError(f"--{key} {given} disagrees with the checkpoint, which has {key} {config[key]}")
    vocab = CharVocab(ckpt["vocab"])
    model = CharRNN(len(vocab), config["embed"], config["hidden"], config["layers"], config["cell"])
    model.load_state_dict(ckpt["model"])
    return model, vocab, config, {"optimizer": ckpt["optimizer"], "step": ckpt["step"]}
