"""The fast path of :class:`adam_np.Adam`: validated-once flat views and one kernel call per array.

:class:`InPlaceStep` is built when the optimizer's parameters, state and config are all
kernel-eligible (NumPy arrays that are C-contiguous and of a kernel dtype, or CuPy arrays; a
config for which :func:`adam_np.kernels.supports` holds). Per step it only checks what can
change (the gradients' type, shape, dtype, contiguity, and, unless ``nonfinite="propagate"``, that the
gradients and the new parameters and moments are finite: the kernel's check computes the step without
writing, then the step writes it); anything unusual makes it decline, and the optimizer then takes the
pure :func:`adam_np.update` path, which raises the precise error, skips the step, or computes the same values.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..core._checks import INT64_MAX
from ..core._xp import backend_name
from ..core.adam import AdamState
from . import get_kernel, resolve_backend, supports
from ._common import coefficients, constants, step_scalars

__all__ = ["InPlaceStep"]

_new_state = tuple.__new__  # a NamedTuple built from a full tuple, skipping its __new__'s argument handling


def _flat(x: Any) -> Any:
    return x if x.ndim == 1 else x.reshape(-1)


def _is_view_of(x: Any, buffer: Any) -> bool:
    """Whether ``x`` is a view into the flat ``buffer`` (NumPy/CuPy keep the owner as ``base``)."""
    return x.base is buffer or x is buffer


class InPlaceStep:
    """One Adam step on the optimizer's own arrays through a kernel (no copies, no temporaries of size n).

    Parameters
    ----------
    params : list of array
        The caller's arrays (updated in place).
    state : AdamState
        The optimizer's state; its ``v``, ``s`` arrays are updated in place.
    backend : str
        A concrete backend (``"numpy"``, ``"numba"`` or ``"cupy"``).
    flat : tuple of 4 arrays, optional
        ``(p, g, v, s)`` flat buffers whose views are ``params``, the gradient views, ``state.v``
        and ``state.s``: a step on exactly those gradient views is one kernel call.
    grad_views : list of array, optional
        The views of ``flat[1]`` handed to the user.

    Notes
    -----
    Build it with :meth:`build`, which returns None when the kernels do not cover the arrays
    or the config. The moment arrays are identified by identity (:meth:`matches`); a state that
    this object returned itself is trusted as is, so replace ``opt.state`` as a whole rather than
    the items of its ``v``/``s`` lists.

    Examples
    --------
    >>> import numpy as np
    >>> from adam_np import AdamConfig, init
    >>> x = np.ones(3)
    >>> state = init([x])
    >>> fast = InPlaceStep.build([x], state, AdamConfig(lr=0.5), "numpy")
    >>> fast([np.ones(3)], state, AdamConfig(lr=0.5)).step, x
    (1, array([0.5, 0.5, 0.5]))
    """

    def __init__(self, params: list, state: AdamState, backend: str, flat: tuple | None = None,
                 grad_views: list | None = None, config: Any = None) -> None:
        self.backend = backend
        self.config = config
        self.lr = None if config is None or callable(config.lr) else config.lr  # a schedule: lr_at(t) per step
        self.constants = None if config is None else constants(config)
        self.last_state = None
        self.kernel = get_kernel(backend)
        self.work = None if config is None else self.kernel.prepare(self.constants)
        self.params = list(params)
        self.v = list(state.v)
        self.s = list(state.s)
        self.is_numpy = backend != "cupy"
        self.reshape = backend == "numpy"  # numba takes any C-contiguous shape, cupy any layout
        view = _flat if self.reshape else (lambda x: x)
        self.p_flat = [view(x) for x in self.params]
        self.v_flat = [view(x) for x in self.v]
        self.s_flat = [view(x) for x in self.s]
        self.shapes = [x.shape for x in self.params]
        self.dtypes = [x.dtype for x in self.params]
        self.array_type = type(self.params[0]) if self.params else np.ndarray
        if flat is not None and (grad_views is None or len(flat) != 4 or not all(
                _is_view_of(x, buf) for xs, buf in ((self.params, flat[0]), (self.v, flat[2]), (self.s, flat[3]))
                for x in xs)):
            flat = grad_views = None  # the moments were replaced since: one kernel call per array
        self.flat = flat
        self.flat_lists = None if flat is None else tuple([a] for a in flat)
        self.grad_views = grad_views
        self.grad_items = None if grad_views is None else tuple(grad_views)
        # Identities of every array the step writes (and of their bases): a gradient that is another
        # parameter's or moment's memory would be read after being written, so such steps go the pure way.
        self.written = {}
        for i, x in enumerate([*self.params, *self.v, *self.s]):
            self.written[id(x)] = i % len(self.params) if self.params else 0
            base = getattr(x, "base", None)
            if base is not None:
                self.written[id(base)] = -1  # shared by several arrays: never a safe gradient
        self.check_finite = config is not None and config.nonfinite != "propagate"
        # numba: each array's compiled loop, its type dispatch resolved once (compiled now, not inside the
        # first step); a gradient of another numba type (read-only, unaligned) goes through the dispatcher.
        self.bound = None
        self.grads_exact = False  # set by _check_grads: every gradient has the numba type of its parameter
        if backend == "numba" and config is not None:
            self.kernel.warm_up(self.params, self.work)
            kernel = self.kernel
            self.bound = [(kernel.bind(p, self.work), kernel.select(p), p, v, s) for p, v, s in
                          zip(self.params, self.v, self.s)]
            self.checks = [(kernel.bind(p, self.work, kernel.select_check), kernel.select_check(p))
                           for p in self.params]
            self.work_view = memoryview(self.work)

    @classmethod
    def build(cls, params: list, state: AdamState, config: Any, backend: str, flat: tuple | None = None,
              grad_views: list | None = None) -> InPlaceStep | None:
        """An :class:`InPlaceStep`, or None when a kernel cannot do exactly what :func:`adam_np.update` does.

        Parameters
        ----------
        params : list of array
        state : AdamState
        config : AdamConfig
        backend : {"auto", "numpy", "numba", "cupy"}
        flat, grad_views : optional
            As for the class.

        Returns
        -------
        InPlaceStep or None

        Raises
        ------
        ValueError
            If ``backend`` names a backend that cannot update these arrays.

        Examples
        --------
        >>> import numpy as np
        >>> from adam_np import AdamConfig, init
        >>> x = np.ones((3, 2))[:, 0]          # not contiguous: no kernel
        >>> InPlaceStep.build([x], init([x]), AdamConfig(), "numpy") is None
        True
        """
        library = backend_name(params[0]) if params else "numpy"
        concrete = resolve_backend(backend, library)
        if concrete is None or not supports(config) or not isinstance(state, AdamState):
            return None
        if not isinstance(state.v, list) or not isinstance(state.s, list):
            return None
        if getattr(state, "master", None) is not None or getattr(state, "s_max", None) is not None:
            return None  # mixed precision (master copy) or AMSGrad state: the pure update
        arrays = [*params, *state.v, *state.s]
        if backend == "auto" and concrete == "numba" and any(x.dtype not in get_kernel("numba").DTYPES for x in arrays):
            concrete = "numpy"  # e.g. float16: numba's loop is float32/float64 only, NumPy's ufuncs take it
        kernel = get_kernel(concrete)
        if concrete == "cupy" and any(x.dtype == np.float16 for x in arrays):
            return None  # the CuPy kernel computes float16 in float32: not what update computes, step by step
        if concrete == "cupy":
            import cupy

            array_type = cupy.ndarray
        else:
            array_type = np.ndarray
        for x in arrays:
            if type(x) is not array_type or x.dtype not in kernel.DTYPES:
                return None
            if concrete != "cupy" and not (x.flags.c_contiguous and x.flags.writeable):
                return None
        for x, v, s in zip(params, state.v, state.s):
            if v.shape != x.shape or s.shape != x.shape or v.dtype != x.dtype or s.dtype != x.dtype:
                return None
        return cls(params, state, concrete, flat, grad_views, config)

    def set_config(self, config: Any) -> None:
        """Step with ``config`` from now on: a config that differs from the one built on in ``lr`` only.

        The constants, work array and compiled loops stay (none depends on the learning rate); this
        is how :attr:`adam_np.Adam.lr` is set without rebuilding the step.

        Parameters
        ----------
        config : AdamConfig

        Examples
        --------
        >>> import dataclasses, numpy as np
        >>> from adam_np import AdamConfig, init
        >>> x = np.ones(2); state = init([x]); config = AdamConfig(lr=0.5)
        >>> fast = InPlaceStep.build([x], state, config, "numpy")
        >>> fast.set_config(dataclasses.replace(config, lr=0.25)); fast([np.ones(2)], state, fast.config).step, x
        (1, array([0.75, 0.75]))
        """
        if self.config is not None and constants(config) != self.constants:
            raise ValueError("set_config takes a config that differs in lr only; build a new InPlaceStep")
        self.config = config
        self.lr = None if callable(config.lr) else config.lr

    def matches(self, state: AdamState) -> bool:
        """Whether ``state`` still holds the very moment arrays this step was built on.

        Parameters
        ----------
        state : AdamState

        Returns
        -------
        bool

        Examples
        --------
        >>> import numpy as np
        >>> from adam_np import AdamConfig, init
        >>> x = np.ones(2); state = init([x])
        >>> fast = InPlaceStep.build([x], state, AdamConfig(), "numpy")
        >>> fast.matches(state), fast.matches(init([x]))
        (True, False)
        """
        if state is self.last_state:  # the state this step returned last: nothing to re-check
            return True
        v, s = state.v, state.s
        if type(state.step) is not int or state.step < 0:
            return False
        if type(v) is not list or type(s) is not list or len(v) != len(self.v) or len(s) != len(self.s):
            return False
        for a, b in zip(v, self.v):
            if a is not b:
                return False
        for a, b in zip(s, self.s):
            if a is not b:
                return False
        return True

    def _check_grads(self, grads: Any) -> list | None:
        """``grads`` (as flat views for the NumPy kernel) when they fit the kernel as they are, else None."""
        if type(grads) not in (list, tuple) or len(grads) != len(self.params):
            return None
        array_type, numpy, reshape, written = self.array_type, self.is_numpy, self.reshape, self.written
        if not self._writeable():
            return None
        i = 0
        exact = True
        for g, shape, dtype in zip(grads, self.shapes, self.dtypes):
            if type(g) is not array_type or g.shape != shape or (g.dtype is not dtype and g.dtype != dtype):
                return None
            if numpy:
                flags = g.flags
                if not flags.c_contiguous:
                    return None
                exact = exact and flags.carray  # also aligned and writeable: numba's type of the parameters
            base = g.base
            if (base is not None and id(base) in written) or written.get(id(g), i) != i:
                return None  # aliases another parameter or moment: the pure path reads before writing
            i += 1
        self.grads_exact = exact
        return [_flat(g) for g in grads] if reshape else grads  # numba and CuPy take the arrays as they are

    def _step_general(self, grads: Any, state: AdamState, config: Any, own: bool) -> int | None:
        """:meth:`__call__` for the flat buffers, the NumPy and CuPy kernels or another config (one
        :func:`step_many` call): the new step number, or None having changed nothing."""
        kernel = self.kernel
        if (grads is self.grad_views and self.flat_lists is not None and len(grads) == len(self.grad_items)
                and all(map(operator.is_, grads, self.grad_items)) and self._writeable()):
            ps, gs, vs, ss = self.flat_lists
        else:
            gs = self._check_grads(grads)
            if gs is None:
                return None
            ps, vs, ss = self.p_flat, self.v_flat, self.s_flat
        t = state.step + 1
        c = coefficients(config, config.lr_at(t), t, self.constants) if own else \
            coefficients(config, config.lr_at(t), t)
        work = self.work if own else None
        # The gradients and the state they would make: all finite, or nothing is written (one read, no write).
        if (self.check_finite if own else config.nonfinite != "propagate") and \
                not kernel.finite_step_many(ps, gs, vs, ss, c, work):
            return None
        kernel.step_many(ps, gs, vs, ss, c, work)
        return t

    def _writeable(self) -> bool:
        """False when a parameter was made read-only since (the pure path then raises, nothing written)."""
        if self.is_numpy:
            for p in self.params:
                if not p.flags.writeable:
                    return False
        return True

    def __call__(self, grads: Any, state: AdamState, config: Any) -> AdamState | None:
        """Take the step in place and return the new state, or return None having changed nothing.

        None means: the gradients do not fit the kernel as they are (wrong type, shape, dtype,
        layout: the pure path then names the bad ``grads[i]`` or computes the step), one is
        not finite while ``config.nonfinite`` is not ``"propagate"`` (the pure path then raises
        or skips), or ``state.step`` is already the largest int64 (the pure path refuses the step).

        Parameters
        ----------
        grads : list or tuple of array
        state : AdamState
            The optimizer's state (``matches(state)`` must hold).
        config : AdamConfig
            A kernel-supported config.

        Returns
        -------
        AdamState or None
        """
        if state.step >= INT64_MAX:  # no step past the int64 counter: update raises (its one check), nothing written
            return None
        own = config is self.config
        if own and self.bound is not None and grads is not self.grad_views:
            # The numba loops on the caller's own arrays (the common case, kept short): check, then run.
            if self._check_grads(grads) is None:
                return None
            t = state.step + 1
            work = self.work
            self.kernel.set_step_scalars(self.work_view, step_scalars(
                config, self.lr if self.lr is not None else config.lr_at(t), t, self.constants))
            if self.check_finite:  # the gradients and the new p, v, s all finite, else nothing is written
                exact = self.grads_exact
                for g, (compiled, loop), (_, _, p, v, s) in zip(grads, self.checks, self.bound):
                    if not (compiled if exact else loop)(p, g, v, s, work):
                        return None
            if self.grads_exact:
                for g, (compiled, _, p, v, s) in zip(grads, self.bound):
                    compiled(p, g, v, s, work)
            else:  # a read-only or unaligned gradient: numba's dispatcher picks (or compiles) its loop
                for g, (_, loop, p, v, s) in zip(grads, self.bound):
                    loop(p, g, v, s, work)
        else:
            t = self._step_general(grads, state, config, own)
            if t is None:
                return None
        # AdamState(t, ...) as state._replace(step=t) makes it, without its overhead (master, s_max are None here)
        self.last_state = new = _new_state(AdamState, (t, state.v, state.s, state.skipped, None, None,
                                                       state.mu_product))
        return new
