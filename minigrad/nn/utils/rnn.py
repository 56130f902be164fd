"""Batching variable-length sequences, as ``torch.nn.utils.rnn``."""
from __future__ import annotations

from collections.abc import Sequence

import minigrad as mg
from minigrad.tensor import Tensor


def pad_sequence(sequences: Tensor | Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of different lengths (L_i, *) into one (L, B, *) tensor (``batch_first``: (B, L, *)),
    L = max L_i, filling the missing steps with ``padding_value`` after (``padding_side='right'``) or before
    (``'left'``) each sequence.  Differentiable: each sequence gets the gradient of its own steps.
    Pass the lengths on to ``nn.RNN(..., lengths=)``.  The result has the first sequence's dtype; a Tensor
    argument is taken as the sequence of its rows.
    """
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = sequences.unbind(0)
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequence {i} must be a minigrad Tensor, got {type(s).__name__}")
        if s.ndim == 0:
            raise RuntimeError(f"pad_sequence: sequence {i} is 0-d; each sequence needs a time dimension")
        if s.shape[1:] != sequences[0].shape[1:]:
            raise RuntimeError(f"pad_sequence: sequence {i} has shape {s.shape}, whose trailing dimensions "
                               f"differ from the first sequence's {sequences[0].shape}")
    dtype = sequences[0].dtype
    max_len = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        s = s.to(dtype)
        missing = max_len - s.shape[0]
        if missing:
            fill = mg.full((missing, *s.shape[1:]), padding_value, dtype=dtype)
            s = mg.cat([s, fill] if padding_side == "right" else [fill, s], dim=0)
        padded.append(s)
    return mg.stack(padded, dim=0 if batch_first else 1)
