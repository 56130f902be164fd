"""Seedable random numbers for the factories and initialisers (numpy's PCG64 underneath)."""
import numpy as np

__all__ = ["Generator", "manual_seed", "default_generator", "seed"]


class Generator:
    """A random stream: ``Generator(seed)``; pass it as ``generator=`` to make one draw reproducible."""

    def __init__(self, seed=None):
        self.manual_seed(seed)

    def manual_seed(self, seed):
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise ValueError("seed must be a non-negative int, got %r" % (seed,))
        self.initial_seed = seed
        self.numpy_rng = np.random.Generator(np.random.PCG64(seed))
        return self


_default = Generator()


def default_generator():
    return _default


def manual_seed(seed):
    """Seed the default generator used by randn, rand, nn initialisation and dropout."""
    return _default.manual_seed(seed)


def seed():
    """Re-seed the default generator from the operating system's entropy."""
    return _default.manual_seed(None)
