"""Seedable random numbers for the factories and initialisers (numpy's PCG64 underneath)."""
import numpy as np

__all__ = ["Generator", "manual_seed", "default_generator", "seed", "bernoulli", "multinomial"]


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


def _float_probabilities(input, what):
    from minigrad.tensor import Tensor
    if not isinstance(input, Tensor):
        raise TypeError("%s expects a minigrad Tensor, got %s" % (what, type(input).__name__))
    return input.data


def bernoulli(input, generator=None):
    """0/1 samples, 1 with probability ``input`` (elementwise, each in [0, 1]), in ``input``'s float dtype;
    not differentiable."""
    from minigrad.tensor import Tensor, _check_generator
    p = _float_probabilities(input, "bernoulli")
    if p.dtype.kind != "f":
        raise NotImplementedError("\"bernoulli_tensor_cpu_p_\" not implemented for '%s'"
                                  % _TORCH_NAMES[p.dtype.name])
    if not np.all((p >= 0) & (p <= 1)):  # nan fails both
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    g = _check_generator(generator)
    return Tensor._from_array((g.numpy_rng.random(p.shape) < p).astype(p.dtype))


def multinomial(input, num_samples, replacement=False, generator=None):
    """``num_samples`` category indices (int64) drawn from each row of ``input``, a 1-D or 2-D tensor of
    non-negative weights (they need not sum to 1; they are normalised in float64, float32 weights too).

    Without replacement each row gives distinct indices (a zero-weight category only once the positive
    ones are used up, as in torch); errors as torch's: negative, inf or nan weights, a row summing to 0,
    more samples than categories without replacement.
    """
    from minigrad.tensor import Tensor, _check_generator
    w = _float_probabilities(input, "multinomial")
    if w.dtype.kind != "f":
        raise RuntimeError("multinomial only supports floating-point dtypes for input, got: %s"
                           % _TORCH_NAMES[w.dtype.name])
    if w.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool):
        raise TypeError("multinomial(): argument 'num_samples' must be int, not %s"
                        % type(num_samples).__name__)
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    rows = np.asarray(w, dtype=np.float64).reshape(-1, w.shape[-1])
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if not np.all(np.isfinite(rows)) or (rows < 0).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    totals = rows.sum(axis=1)
    if rows.shape[1] == 0 or (totals <= 0).any():
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    rng = _check_generator(generator).numpy_rng
    if replacement:
        out = np.empty((rows.shape[0], num_samples), dtype=np.int64)
        for r in range(rows.shape[0]):
            cdf = np.cumsum(rows[r] / totals[r])
            # side="right" never lands on a zero-weight category; the clip guards cdf[-1] rounding below u
            out[r] = np.minimum(np.searchsorted(cdf, rng.random(num_samples), side="right"),
                                np.flatnonzero(rows[r])[-1])
    else:
        # Efraimidis-Spirakis: the num_samples largest keys u ** (1 / w) are a weighted sample without
        # replacement; log(u) / w orders the same and a zero weight gives -inf (drawn last)
        with np.errstate(divide="ignore"):
            keys = np.log(rng.random(rows.shape)) / rows
        out = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples].astype(np.int64)
    return Tensor._from_array(out.reshape(w.shape[:-1] + (num_samples,)))


_TORCH_NAMES = {"float32": "Float", "float64": "Double", "int32": "Int", "int64": "Long", "bool": "Bool"}
