"""Custom differentiable operations written in Python, with torch's ``autograd.Function`` API.

    class Cube(minigrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, grad):
            x, = ctx.saved_tensors
            return grad * 3 * x * x

    y = Cube.apply(x)

``forward`` runs under ``no_grad``; ``apply`` records one graph node, ``CubeBackward``, which is also the
``ctx`` both methods receive.  ``backward`` gets one gradient per output (zeros for an output no gradient
reached, None for an output that is not a tensor) and returns one gradient per ``forward`` argument: a
Tensor, a numpy array or None (None for every argument that is not a tensor).  Higher-order gradients are
not supported: ``backward`` runs under ``no_grad`` too.
"""
import weakref

import numpy as np

from minigrad.autograd.engine import FREED_MESSAGE, Node
from minigrad.autograd.grad_mode import is_grad_enabled, no_grad
from minigrad.tensor import Tensor, _grad_edge, record_node


def grad_edge(tensor):
    """(node, output_nr) that receives ``tensor``'s gradient, or None when it needs none: a leaf's is its
    AccumulateGrad, made on first use."""
    return _grad_edge(tensor)


class FunctionCtx(Node):
    """The graph node of one ``Function.apply`` call, handed to ``forward`` and ``backward`` as ``ctx``.

    Besides the methods below it takes any attribute (``ctx.k = 3``).  ``needs_input_grad`` is a tuple with
    one bool per ``forward`` argument: whether that argument is a tensor that needs a gradient.
    """
    _function = None  # the Function subclass, set on each generated <Name>Backward class

    def save_for_backward(self, *tensors):
        """Keep tensors (or None) for ``backward``; call it once, in ``forward``."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError("save_for_backward can only save tensors, but argument %d is of type %s"
                                % (i, type(t).__name__))
        self._to_save = tensors

    def mark_non_differentiable(self, *outputs):
        """Declare outputs of ``forward`` that get no gradient (indices, masks): they do not require grad and
        ``backward`` receives zeros for them."""
        self._non_differentiable = outputs

    @property
    def saved_tensors(self):
        """The tensors given to ``save_for_backward``, checked against in-place changes since then."""
        if self.saved is None:
            if self.freed:
                raise RuntimeError(FREED_MESSAGE)
            return ()
        # ``saved`` holds the arrays, then one (tensor or weak reference, version) per array, so that the
        # engine's release drops everything and ``saved_arrays`` reports the memory as for any node.
        n = len(self.saved) // 2
        out = []
        for k, (array, (held, version)) in enumerate(zip(self.saved[:n], self.saved[n:])):
            if held is None:
                out.append(None)
                continue
            if isinstance(held, weakref.ref):  # a saved output (see _save); gone, it cannot have changed
                t = held()
                now = version if t is None else getattr(t, "_version", None)
                out.append(Tensor._from_array(array))
            else:
                now = getattr(held, "_version", None)
                out.append(held)
            if now != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an inplace "
                    "operation: [%s tensor of shape %s], which is saved tensor %d of %s, is at version %s; "
                    "expected version %s instead."
                    % (array.dtype, list(array.shape), k, self.name(), now, version))
        return tuple(out)

    def _save(self, outputs, returned):
        """Store what ``forward`` saved.  A saved output is held weakly (it refers to this node: holding it
        would make a reference cycle) and checked through the tensor ``apply`` returns for it."""
        arrays, held = [], []
        for t in getattr(self, "_to_save", ()):
            k = None if t is None else next((k for k, o in enumerate(outputs) if o is t), None)
            if t is None:
                arrays.append(None)
                held.append((None, None))
            elif k is None:
                arrays.append(t.data)
                held.append((t, getattr(t, "_version", None)))
            else:
                arrays.append(outputs[k].data)
                held.append((weakref.ref(returned[k]), getattr(returned[k], "_version", None)))
        self._to_save = None
        self.saved = tuple(arrays) + tuple(held)

    def backward(self, grad):
        """Called by the engine: materialize missing output gradients, run the user's backward, check it."""
        grads = grad if self.multi_output else (grad,)
        shapes = self.shape if self.multi_output else (self.shape,)
        dtypes = self.dtype if self.multi_output else (self.dtype,)
        given = iter([Tensor._from_array(np.zeros(s, d) if g is None else g)
                      for g, s, d in zip(grads, shapes, dtypes)])
        args = [next(given) if is_tensor else None for is_tensor in self._output_is_tensor]  # torch's way
        with no_grad():
            result = self._function.backward(self, *args)
        result = result if isinstance(result, tuple) else (result,)
        expected = len(self.needs_input_grad)
        if len(result) < expected or any(g is not None for g in result[expected:]):
            raise RuntimeError("function %s returned an incorrect number of gradients (expected %d, got %d)"
                               % (self.name(), expected, len(result)))
        out = []
        for i, (g, meta) in enumerate(zip(result, self._inputs)):
            if meta is None:
                if g is not None:
                    raise RuntimeError("function %s returned a gradient different than None at position %d, "
                                       "but the corresponding forward input was not a Variable"
                                       % (self.name(), i + 1))
                continue
            out.append(None if g is None or not self.needs_input_grad[i] else self._check(i, g, *meta))
        return tuple(out)

    def _check(self, i, g, shape, dtype):
        """``g`` as an array of the input's dtype, summed down to its shape if it broadcasts (as torch)."""
        if isinstance(g, Tensor):
            g = g.data
        elif not isinstance(g, np.ndarray):
            raise RuntimeError("function %s returned an invalid gradient at index %d: expected a Tensor, a "
                               "numpy array or None (got %s)" % (self.name(), i, type(g).__name__))
        if g.dtype.kind not in "fiub":
            raise TypeError("function %s returned a gradient of dtype %s at index %d"
                            % (self.name(), g.dtype, i))
        if g.shape != shape:
            try:
                broadcasts = np.broadcast_shapes(shape, g.shape) == g.shape
            except ValueError:
                broadcasts = False
            if not broadcasts:
                raise RuntimeError("Function %s returned an invalid gradient at index %d - got %s but "
                                   "expected shape compatible with %s"
                                   % (self.name(), i, list(g.shape), list(shape)))
            lead = g.ndim - len(shape)
            axes = tuple(range(lead)) + tuple(lead + k for k, n in enumerate(shape)
                                              if n == 1 != g.shape[lead + k])
            g = g.sum(axis=axes).reshape(shape)
        return g.astype(dtype, copy=False)


class Function:
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)``; call ``apply(*args)``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._backward_cls = type(cls.__name__ + "Backward", (FunctionCtx,), {"_function": cls})

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a Function subclass must define a static forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("a Function subclass must define a static backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args):
        if cls is Function:
            raise TypeError("apply is called on a subclass of Function, not on Function itself")
        ctx = cls._backward_cls()
        grad_on = is_grad_enabled()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad and grad_on for a in args)
        with no_grad():
            result = cls.forward(ctx, *args)
        if not any(ctx.needs_input_grad):
            return result
        single = not isinstance(result, tuple)
        values = (result,) if single else result
        outputs = [v for v in values if isinstance(v, Tensor)]
        if not outputs:
            raise TypeError("%s.forward returned no Tensor, so there is nothing to differentiate"
                            % cls.__name__)
        ctx._output_is_tensor = [isinstance(v, Tensor) for v in values]
        inputs = tuple(a for a in args if isinstance(a, Tensor))
        ctx._inputs = [(a.shape, a.dtype) if isinstance(a, Tensor) else None for a in args]
        attached = record_node([o.data for o in outputs], ctx, inputs)
        if len(outputs) == 1:  # an ordinary single-output node: backward gets an array, not a tuple
            ctx.multi_output, ctx.shape, ctx.dtype = False, ctx.shape[0], ctx.dtype[0]
        # ctx may hold anything (ctx.module = ...) that leads back to this graph: the collector must see it
        ctx.hold_user_objects()
        fixed = getattr(ctx, "_non_differentiable", ())
        returned = [Tensor._from_array(o.data) if any(o is f for f in fixed) else a
                    for o, a in zip(outputs, attached)]
        ctx._save(outputs, returned)
        it = iter(returned)
        values = tuple(next(it) if isinstance(v, Tensor) else v for v in values)
        return values[0] if single else values
