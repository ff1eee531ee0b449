"""Stateful Adam that updates the caller's arrays in place, as ``torch.optim.Adam`` does.

>>> import numpy as np
>>> from adam_np import Adam
>>> w, b = np.ones((5, 1)), np.zeros(1)
>>> opt = Adam([w, b], lr=0.1)
>>> opt.step([np.ones((5, 1)), -np.ones(1)])
>>> w.T, b                 # the caller's own arrays hold the new values
(array([[0.9, 0.9, 0.9, 0.9, 0.9]]), array([0.1]))
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import operator
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import checkpoint
from ._dask import cut_history
from .core import adam as _adam
from .core._checks import INT64_MAX
from .core._xp import array_namespace, backend_name, is_lazy, not_writeable_reason, persist_groups
from .kernels import get_kernel, resolve_backend

__all__ = ["Adam"]

STATE_DICT_VERSION = 1

LINEAGE_STEPS = 20
"""Dask on a distributed client: every this many steps the task history behind the state is cut (see
:func:`adam_np._dask.cut_history`), so the scheduler holds at most this many steps of it. A worker lost
within them is recomputed from it; a chunk lost from before the last cut fails the step with a clear error."""


class Adam:
    r"""Adam over a list of writeable arrays, updated in place by :meth:`step`.

    Parameters
    ----------
    params : sequence of array
        Writeable arrays of one library (NumPy, CuPy, or torch tensors without autograd),
        real floating dtype. They are updated in place; no copy is kept. Rejected with the
        reason (:func:`adam_np.core._xp.not_writeable_reason`): read-only arrays, arrays whose elements
        overlap in memory (``expand``/``broadcast_to`` views), torch inference tensors outside
        inference mode, and torch leaf tensors that require grad such as ``nn.Parameter``
        (``torch.optim`` updates those under ``no_grad``; here pass ``p.detach()`` or ``p.data``,
        which share the memory, and the gradients ``p.grad``). Each array once: two that share
        memory (the same array twice, or overlapping views of one buffer) are refused, naming both.
    lr, beta1, beta2, eps : float, optional
        As in :class:`adam_np.AdamConfig` (defaults 1e-3, 0.9, 0.999, 1e-8). ``lr`` may be a
        schedule ``lr(t)``; it is read and set as :attr:`lr`.
    betas : tuple of 2 floats, optional
        ``(beta1, beta2)`` as ``torch.optim.Adam`` spells them; instead of ``beta1``/``beta2``.
    config : AdamConfig, optional
        All hyper-parameters at once; then pass no other hyper-parameter.
    moment_dtype, master : optional
        Mixed precision, as in :func:`adam_np.init` (float16 parameters get float32 moments
        and a float32 master copy by default).
    backend : {"auto", "numpy", "numba", "cupy"}, default "auto"
        The in-place kernel (:mod:`adam_np.kernels`) for NumPy/CuPy arrays: ``"auto"`` takes
        cupy for CuPy arrays, numba when installed, else numpy. Whatever the kernels do not cover
        (other array libraries, non-contiguous arrays, mixed precision, configs that are not
        :attr:`adam_np.AdamConfig.is_plain_adam`) goes through :func:`adam_np.update`.
    fold_bias_correction : bool, default False
        A speed switch: fold the bias corrections into the step size and ε (see
        :func:`adam_np.core.adam.coefficients`; the same update up to rounding).
    **options
        Further :class:`adam_np.AdamConfig` fields: ``eps_mode``, ``weight_decay``,
        ``maximize``, ``nonfinite``...

    Attributes
    ----------
    params : list of array
        The caller's arrays (for Dask arrays: the current ones, replaced at each step).
    config : AdamConfig
    state : AdamState
        Step counter and moments (lists aligned with ``params``).
    grads : list of array or None
        For :meth:`from_shapes` optimizers, the gradient views into one flat buffer; else None.
    backend : str or None
        The kernel backend in use, None when steps go through :func:`adam_np.update`.
    lr : float or callable
        The learning rate (or schedule) of :attr:`config`; settable, checked as ``AdamConfig`` checks it.

    Notes
    -----
    Dask arrays (``dask.array``) are the exception to "in place": they cannot be written, so the
    optimizer owns them. Each :meth:`step` builds the new parameters and moments from the old ones and
    persists them in one pass (on the active ``dask.distributed`` client: the chunks stay on the workers,
    the graph stays one task per chunk however many steps are taken, and every :data:`LINEAGE_STEPS`
    steps the scheduler's task history is cut, so memory and time per step stay flat; a worker lost
    since the last cut is recomputed from that history); :attr:`params` and :attr:`state`
    are then the new arrays, and the arrays passed in are not changed. Read the current parameters from
    ``opt.params``, not from the arrays you passed in. Checkpoints of Dask-held state:
    :func:`adam_np.cluster.save_zarr`.

    :meth:`step` checks the gradients (and their finiteness unless ``nonfinite="propagate"``)
    before it writes anything, so a failing step changes nothing. With a kernel it then
    updates ``params`` and the moments in place, bit-for-bit as :func:`adam_np.update`;
    otherwise it computes :math:`x_t` with :func:`adam_np.update` and copies it in.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0])
    >>> opt = Adam([x], lr=0.5)
    >>> for _ in range(3):
    ...     opt.step([2 * x])            # gradient of x**2
    >>> x, opt.state.step
    (array([1.5]), 3)

    torch's spelling, and the learning rate changed between steps:

    >>> opt = Adam([x], lr=0.5, betas=(0.9, 0.999))
    >>> opt.lr = 0.1
    >>> opt                                           # doctest: +ELLIPSIS
    Adam(1 param, 1 element, float64, lr=0.1, betas=(0.9, 0.999), eps=1e-08, step=0, backend=...)
    """

    def __init__(self, params: Sequence[Any], lr: Any = None, beta1: Any = None, beta2: Any = None,
                 eps: Any = None, *, betas: Any = None, config: _adam.AdamConfig | None = None,
                 moment_dtype: Any = None, master: bool | None = None, backend: str = "auto",
                 fold_bias_correction: bool = False, **options: Any) -> None:
        given = {k: v for k, v in dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, **options).items() if v is not None}
        if betas is not None:
            given.update(_check_betas(betas, beta1, beta2))
        if config is not None:
            if given:
                raise TypeError(f"pass either config or hyper-parameters, not both (got config and {sorted(given)})")
            if not isinstance(config, _adam.AdamConfig):
                raise TypeError(f"config must be an AdamConfig, got {type(config).__name__}")
        else:
            try:
                config = _adam.AdamConfig(**given)
            except (TypeError, ValueError) as exc:
                if betas is not None and str(exc).startswith(("beta1", "beta2")):
                    raise type(exc)(f"betas={betas!r}: {exc}") from None
                raise
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"params must be a list or tuple of arrays, got {type(params).__name__}")
        params = list(params)
        state = _adam.init(params, config, moment_dtype=moment_dtype, master=master)
        self._lazy = bool(params) and is_lazy(params[0])
        for i, x in enumerate([] if self._lazy else params):
            reason = not_writeable_reason(x)
            if reason is not None:
                raise ValueError(f"params[{i}] is not writeable in place ({type(x).__name__}: {reason}); "
                                 "use adam_np.update for immutable arrays")
        if not self._lazy:
            _check_disjoint(params)
        self._xp = array_namespace(*params, name="params")
        chunks_of = (lambda x: getattr(x, "_meta", x)) if self._lazy else (lambda x: x)  # Dask: its chunks' library
        resolve_backend(backend, backend_name(chunks_of(params[0])) if params else "numpy")  # bad: fail here
        if not isinstance(fold_bias_correction, bool):
            raise TypeError(f"fold_bias_correction must be a bool, got {fold_bias_correction!r}")
        _adam.check_fold(config, fold_bias_correction)
        self.params, self.grads, self.fold_bias_correction = params, None, fold_bias_correction
        self._backend, self._flat, self._config, self._state = backend, None, config, state
        self.state = state  # chooses the kernel

    @property
    def lr(self) -> Any:
        """The learning rate :math:`\\eta` (a float, or a schedule ``lr(t)``); a new value acts from the next step.

        The new value is checked as :class:`adam_np.AdamConfig` checks ``lr`` (a finite number > 0, or a
        callable) and replaces :attr:`config` with a copy holding it; nothing changes on error.

        Examples
        --------
        >>> import numpy as np
        >>> opt = Adam([np.zeros(2)], lr=0.1)
        >>> opt.lr = 0.01; opt.lr, opt.config.lr
        (0.01, 0.01)
        >>> opt.lr = lambda t: 0.1 / t           # a schedule: lr(t) at step t
        >>> opt.config.lr_at(4)
        0.025
        """
        return self.config.lr

    @lr.setter
    def lr(self, value: Any) -> None:
        self.config = dataclasses.replace(self.config, lr=value)  # checked like AdamConfig(lr=value)

    @property
    def config(self) -> _adam.AdamConfig:
        """The hyper-parameters; a new config takes effect (and the step's path is chosen again) at once."""
        return self._config

    @config.setter
    def config(self, config: _adam.AdamConfig) -> None:
        _adam.check_fold(config, self.fold_bias_correction)
        self._config = config
        self._kernel = self._choose_kernel()

    @property
    def state(self) -> _adam.AdamState:
        """Step counter and moments; a new state takes effect (and the step's path is chosen again) at once."""
        return self._state

    @state.setter
    def state(self, state: _adam.AdamState) -> None:
        self._state = state
        self._kernel = self._choose_kernel()

    def __repr__(self) -> str:
        params, config = self.params, self.config
        n = len(params)
        size = sum(math.prod(x.shape) for x in params)
        dtypes = "/".join(dict.fromkeys(str(x.dtype).removeprefix("torch.") for x in params)) or "no dtype"
        lr = config.lr if not callable(config.lr) else getattr(config.lr, "__name__", "schedule")
        parts = [f"{n} param{'s' * (n != 1)}", f"{size} element{'s' * (size != 1)}", dtypes, f"lr={lr}",
                 f"betas=({config.beta1}, {config.beta2})", f"eps={config.eps}"]
        defaults = _adam.AdamConfig()
        for f in dataclasses.fields(config):  # the other fields, where they differ from the defaults
            value = getattr(config, f.name)
            if f.name not in ("lr", "beta1", "beta2", "eps") and value != getattr(defaults, f.name):
                parts.append(f"{f.name}={value!r}")
        parts += [f"step={self.state.step}", f"backend={self.backend!r}"]
        return f"Adam({', '.join(parts)})"

    @property
    def backend(self) -> str | None:
        """The kernel backend that the next step uses, None for the pure path.

        Examples
        --------
        >>> import numpy as np
        >>> Adam([np.zeros(3)], backend="numpy").backend, Adam([np.zeros((3, 2))[:, 0]]).backend
        ('numpy', None)
        """
        if self._lazy:
            return self._dask_backend()
        return None if self._kernel is None else self._kernel.__name__.rsplit(".", 1)[1].removesuffix("_kernel")

    def _dask_backend(self) -> str | None:
        """The kernel each chunk's task runs (:mod:`adam_np.kernels.dask_chunks`), None for ``update``."""
        backend = resolve_backend(self._backend, backend_name(self.params[0]._meta))
        state = self.state
        if backend not in ("numba", "numpy") or not self.config.is_plain_adam or state.master is not None:
            return None
        for x, v, s in zip(self.params, state.v, state.s):
            if not isinstance(x._meta, np.ndarray) or x.ndim == 0 or x.dtype not in (np.float32, np.float64):
                return None
            if not (x.dtype == v.dtype == s.dtype and x.chunks == v.chunks == s.chunks):
                return None
        return backend

    def _choose_kernel(self) -> Any:
        """The path decision, made when params, state or config change: the kernel module that computes
        exactly what :func:`adam_np.update` computes for them, or None for the pure path."""
        state, params = self._state, self.params
        if self._lazy or not params or type(self._config) is not _adam.AdamConfig or not self._config.is_plain_adam \
                or state.master is not None \
                or state.s_max is not None or type(state.v) is not list or type(state.s) is not list:
            return None
        backend = resolve_backend(self._backend, backend_name(params[0]))
        arrays = [*params, *state.v, *state.s]
        if backend == "numba" and self._backend == "auto" and any(x.dtype.itemsize < 4 for x in arrays):
            backend = "numpy"  # float16: numba's loop is float32/float64 only, NumPy's ufuncs take it
        if backend is None or (backend == "cupy" and any(x.dtype.itemsize < 4 for x in arrays)):
            return None  # torch...; CuPy computes float16 in float32, not what update computes
        kernel, array_type = get_kernel(backend), type(params[0])
        for x in arrays:
            if type(x) is not array_type or x.dtype not in kernel.DTYPES or (
                    backend != "cupy" and not x.flags.c_contiguous):
                return None
        if any(x.shape != v.shape or x.shape != s.shape or not x.dtype == v.dtype == s.dtype
               for x, v, s in zip(params, state.v, state.s)):
            return None
        # A gradient in the memory of an array the step writes would be read after that write: pure path.
        self._written = {id(x if x.base is None else x.base) for x in arrays}
        flat = self._flat
        self._flat_ok = flat is not None and all(x.base is buf for xs, buf in (
            (params, flat[0]), (state.v, flat[2]), (state.s, flat[3])) for x in xs)
        # The kernel's arguments, made once: 1-D views of the arrays it writes (of the flat buffers: one array each).
        self._kernel_arrays = tuple(tuple(x.reshape(-1) for x in xs) for xs in (params, state.v, state.s))
        self._flat_arrays = tuple((buf,) for buf in flat) if self._flat_ok else None
        if backend == "numba":
            kernel.warm_up(params)  # compile now, not inside the first step
        return kernel

    @classmethod
    def from_shapes(cls, shapes: Sequence[Any], dtype: Any = np.float64, *, xp: Any = np, **kwargs: Any) -> Adam:
        """An optimizer over new zero parameters that are views into one flat buffer.

        The parameters, the gradients (:attr:`grads`) and both moments each live in one
        contiguous buffer, so ``opt.step(opt.grads)`` is a single kernel call for the whole
        model. Write initial values into ``opt.params[i][...]`` and gradients into
        ``opt.grads[i][...]``; ``opt.step(other_grads)`` works too (one call per array).

        Parameters
        ----------
        shapes : sequence of tuple of int
            The parameter shapes.
        dtype : dtype, default float64
            A real floating NumPy dtype.
        xp : module, default numpy
            Allocates the buffers: ``numpy``, or ``cupy`` (then a step is one kernel launch on the GPU).
        **kwargs
            As for :class:`Adam` (``lr``, ``config``, ``backend``, ...).

        Returns
        -------
        Adam

        Raises
        ------
        TypeError, ValueError
            On a bad shape or dtype, naming ``shapes[i]`` or ``dtype``.

        Examples
        --------
        >>> import numpy as np
        >>> opt = Adam.from_shapes([(5, 1), (1,)], lr=0.1)
        >>> w, b = opt.params
        >>> w[...] = 1.0
        >>> opt.grads[0][...] = 2.0; opt.grads[1][...] = -1.0
        >>> opt.step(opt.grads)
        >>> float(w[0, 0]), float(b[0])
        (0.9, 0.1)
        """
        if not isinstance(shapes, (list, tuple)):
            raise TypeError(f"shapes must be a list or tuple of shapes, got {type(shapes).__name__}")
        shapes = [_check_shape(i, shape) for i, shape in enumerate(shapes)]
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a NumPy dtype, got {dtype!r}") from None
        if dtype.kind != "f":
            raise TypeError(f"dtype must be a real floating dtype, got {dtype}")
        sizes = [math.prod(shape) for shape in shapes]
        offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        flat = tuple(xp.zeros(offsets[-1], dtype) for _ in range(4))

        def views(buffer: Any) -> list:
            return [buffer[a:b].reshape(shape) for a, b, shape in zip(offsets, offsets[1:], shapes)]

        opt = cls(views(flat[0]), **kwargs)
        state = opt.state
        if state.master is None and state.s_max is None and all(v.dtype == dtype for v in [*state.v, *state.s]):
            v, s = views(flat[2]), views(flat[3])  # the moments into flat buffers too, values as init made them
            for dst, src in zip([*v, *s], [*state.v, *state.s]):
                dst[...] = src
            opt.state = state._replace(v=v, s=s)
        opt.grads = views(flat[1])
        opt._flat, opt._grad_views = flat, tuple(opt.grads)
        opt.state = opt.state  # the kernel now steps the flat buffers
        return opt

    def step(self, grads: Sequence[Any]) -> None:
        """Take one Adam step, writing the new values into ``params`` in place.

        Parameters
        ----------
        grads : sequence of array
            One gradient per parameter, same shape, dtype and library (for a
            :meth:`from_shapes` optimizer, ``opt.grads`` itself makes one kernel call).

        Raises
        ------
        TypeError, ValueError
            On a mismatched gradient (naming ``grads[i]``); nothing is changed.
        FloatingPointError
            With ``nonfinite="raise"``, on a non-finite gradient or a step that would make the parameters
            or moments NaN or ±inf (an overflow); nothing is changed.
        """
        if self._lazy:
            self._step_dask(grads)
            return
        kernel, state = self._kernel, self._state
        if kernel is not None and type(state.step) is int and state.step < INT64_MAX:
            t = state.step + 1
            if self._flat_ok and grads is self.grads and all(map(operator.is_, grads, self._grad_views)):
                ps, gs, vs, ss = self._flat_arrays  # the whole model as one array each
                gs = gs if all(p.flags.writeable for p in self.params if type(p) is np.ndarray) else None
            else:
                (ps, vs, ss), gs = self._kernel_arrays, self._kernel_grads(grads)
            if gs is not None:
                c = _adam.coefficients(self._config, t, fold_bias_correction=self.fold_bias_correction)
                if kernel.step(ps, gs, vs, ss, c, check=self._config.nonfinite != "propagate"):
                    self._state = _adam.AdamState(t, state.v, state.s, state.skipped, None, None, state.mu_product)
                    return
        # The pure path: precise errors, skipped steps, and whatever the kernels do not cover.
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads must be a list or tuple of arrays, got {type(grads).__name__}")
        new_params, new_state = _adam.update(list(grads), self.state, self.params, self.config,
                                             fold_bias_correction=self.fold_bias_correction)
        self._check_writeable()  # all of them before writing any: no partial step
        if new_state.step != self.state.step:
            for x, x_new in zip(self.params, new_params):
                x[...] = x_new
            if self._kernel is not None:  # keep the kernel's moment arrays (and flat buffers): copy into them
                for old, new in zip([*self.state.v, *self.state.s], [*new_state.v, *new_state.s]):
                    old[...] = new
                new_state = new_state._replace(v=self.state.v, s=self.state.s)
        self._state = new_state  # the same arrays (or a path not taken by a kernel): nothing to choose again

    def _kernel_grads(self, grads: Any) -> tuple | None:
        """``grads`` as the kernel takes them (1-D, C-contiguous), or None where they do not fit it (type, shape, dtype,
        memory the step writes) or a parameter was made read-only: then the pure path says why."""
        if type(grads) not in (list, tuple) or len(grads) != len(self.params):
            return None
        written, flat = self._written, []
        for p, g in zip(self.params, grads):
            if type(g) is not type(p) or g.shape != p.shape or g.dtype != p.dtype or id(
                    g if g.base is None else g.base) in written or (type(p) is np.ndarray and not p.flags.writeable):
                return None
            flat.append(g.ravel())  # a view; a copy of a strided gradient
        return tuple(flat)

    def _step_dask(self, grads: Sequence[Any]) -> None:
        """Dask arrays cannot be written in place: the step's new arrays, persisted, replace the old ones."""
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads must be a list or tuple of arrays, got {type(grads).__name__}")
        leaves = _adam._validate(list(grads), self.state, self.params, self.config)  # bad input: its own error
        backend = self._dask_backend()
        try:
            if backend is not None:
                new_params, new_state = self._step_dask_chunks(leaves.grads, backend)
            else:
                new_params, new_state = _adam.update(list(grads), self.state, self.params, self.config,
                                                     fold_bias_correction=self.fold_bias_correction)
            cut = new_state.step % LINEAGE_STEPS == 0 and new_state.step != self.state.step
            if (self.config.nonfinite == "propagate" and backend is None) or cut:  # else persisted already
                groups = persist_groups([new_params, new_state.v, new_state.s, new_state.master, new_state.s_max])
                new_params, v, s, master, s_max = cut_history(groups) if cut else groups
                new_state = new_state._replace(v=v, s=s, master=master, s_max=s_max)
        except FloatingPointError:
            raise
        except (Exception, asyncio.CancelledError) as exc:  # the cluster's: a lost worker, a cancelled task...
            t = self.state.step + 1
            raise RuntimeError(
                f"step {t} failed on the cluster ({type(exc).__name__}: {exc}); opt.params and opt.state are "
                f"still those of step {t - 1}. If their chunks were lost with a worker, restore the last "
                "checkpoint (adam_np.cluster.load_zarr)") from exc
        self.params = list(new_params)
        self.state = new_state

    def _step_dask_chunks(self, grads: list, backend: str) -> tuple[list, _adam.AdamState]:
        """:func:`adam_np.update`'s step, one kernel task per chunk; the finiteness check in the same persist.

        The new chunks' keys carry this optimizer's token: another optimizer stepping equal arrays gets other keys.
        """
        import uuid

        from .kernels import dask_chunks

        state, config = self.state, self.config
        t = state.step + 1
        c = _adam.coefficients(config, t, fold_bias_correction=self.fold_bias_correction)
        owner = self.__dict__.setdefault("_dask_owner", uuid.uuid4().hex)
        new_p, new_v, new_s = dask_chunks.step(self.params, grads, state.v, state.s, c, backend, owner=owner)
        check = config.nonfinite != "propagate"
        finite = None
        if check:  # the gradients, then every new array (an overflow such as g*g): one flag each, one compute
            xp = self._xp
            flags = [_adam.all_finite(grads, xp=xp, lazy=True)]
            flags += [_adam.all_finite([a], xp=xp, lazy=True) for a in (*new_p, *new_v, *new_s)]
            finite = [xp.stack([xp.reshape(f, ()) for f in flags])]
        new_p, new_v, new_s, finite = persist_groups([new_p, new_v, new_s, finite])
        if check:
            flags = np.asarray(finite[0].compute())
            if not flags[0]:
                return _adam._nonfinite(self.params, state, config, t)
            if not flags.all():
                n = len(new_p)
                names = [f"params[{i}]" for i in range(n)] + [f"state.{m}[{i}]" for m in "vs" for i in range(n)]
                bad = int(np.argmin(flags[1:]))
                dtype = (*new_p, *new_v, *new_s)[bad].dtype
                return _adam._nonfinite(self.params, state, config, t, overflow=(names[bad], str(dtype)))
        return new_p, state._replace(step=t, v=new_v, s=new_s)

    def state_dict(self) -> dict:
        """A copy of the optimizer state: step, skipped steps, moments and hyper-parameters.

        Returns
        -------
        dict
            ``{"version", "step", "skipped", "v", "s", "master", "s_max", "mu_product", "config"}``;
            ``v`` and ``s`` are lists of copies of the moment arrays, ``master`` a list of copies of
            the master parameters (mixed precision) or None, ``s_max`` AMSGrad's running maximum or
            None, ``mu_product`` NAdam's running product (a float), ``config`` the
            :class:`AdamConfig` fields.

        Examples
        --------
        >>> import numpy as np
        >>> opt = Adam([np.zeros(2)])
        >>> sorted(opt.state_dict())
        ['config', 'master', 'mu_product', 's', 's_max', 'skipped', 'step', 'v', 'version']
        """
        copy = self._copy
        return {
            "version": STATE_DICT_VERSION,
            "step": int(self.state.step),
            "skipped": int(self.state.skipped),
            "v": copy(self.state.v),
            "s": copy(self.state.s),
            "master": copy(self.state.master),
            "s_max": copy(self.state.s_max),
            "mu_product": float(self.state.mu_product),
            "config": self.config.to_dict(),
        }

    def _copy(self, arrays: Any) -> list | None:
        """Copies of a list of state arrays (None stays None)."""
        return None if arrays is None else [self._xp.asarray(a, copy=True) for a in arrays]

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state from :meth:`state_dict`, after checking all of it.

        Parameters
        ----------
        state_dict : dict
            As returned by :meth:`state_dict` (arrays copied in, so later changes to the
            dict do not reach the optimizer).

        Raises
        ------
        TypeError, ValueError
            On a missing key, wrong version, bad step, or moments that do not match
            ``params`` in count, shape, dtype or library; nothing is loaded.

        Examples
        --------
        >>> import numpy as np
        >>> a, b = Adam([np.ones(2)]), Adam([np.ones(2)])
        >>> a.step([np.ones(2)])
        >>> b.load_state_dict(a.state_dict()); b.state.step
        1
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        missing = {"version", "step", "v", "s", "config"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing keys {sorted(missing)}")
        version = state_dict["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version != STATE_DICT_VERSION:
            raise ValueError(f"state_dict['version'] is {version!r:.80}, expected {STATE_DICT_VERSION}")
        cfg = state_dict["config"]
        if not isinstance(cfg, dict):
            raise TypeError(f"state_dict['config'] must be a dict, got {type(cfg).__name__}")
        unknown = set(cfg) - set(_adam.AdamConfig.__dataclass_fields__) - {"fold_bias_correction"}
        if unknown:
            raise ValueError(f"state_dict['config'] has unknown fields {sorted(map(str, unknown))}")
        config = _adam.AdamConfig.from_dict(cfg)
        step = _adam._check_step(state_dict["step"], "state_dict['step']")  # INT64_MAX loads; stepping on is refused
        skipped = _adam._check_step(state_dict.get("skipped", 0), "state_dict['skipped']")
        lists = {}
        for key in ("v", "s", "master", "s_max"):
            value = state_dict.get(key)
            if key in ("master", "s_max") and value is None:
                lists[key] = None
            elif not isinstance(value, (list, tuple)):
                raise TypeError(f"state_dict[{key!r}] must be a list of arrays, got {type(value).__name__}")
            else:
                lists[key] = list(value)
        if lists["s_max"] is not None and config.variant_name != "amsgrad":
            raise ValueError(f"state_dict['s_max'] is only for variant='amsgrad', got variant={config.variant_name!r}")
        mu_product = _adam._real("state_dict['mu_product']", state_dict.get("mu_product", 1.0))
        state = _adam.AdamState(step, lists["v"], lists["s"], skipped, master=lists["master"],
                                s_max=lists["s_max"], mu_product=mu_product)
        # Validate with the same checks as an update (structure, shapes, dtypes, library); the counters were checked
        # above: a state may hold step INT64_MAX (only the step after it is refused).
        _adam._validate(list(self.params), state._replace(step=0, skipped=0), self.params, config)
        copy = self._copy
        old_v, old_s = self.state.v, self.state.s
        if self._kernel is not None and state.master is None and all(
                new.dtype == old.dtype for new, old in zip([*state.v, *state.s], [*old_v, *old_s])):
            for old, new in zip([*old_v, *old_s], [*state.v, *state.s]):  # into the kernel's arrays (flat buffers)
                old[...] = new
            v, s = old_v, old_s
        else:
            v, s = copy(state.v), copy(state.s)
        self.config = config
        self.state = _adam.AdamState(step, v, s, skipped, master=copy(state.master),
                                     s_max=copy(state.s_max), mu_product=mu_product)

    def _check_writeable(self) -> None:
        for i, x in enumerate(self.params):
            reason = not_writeable_reason(x)
            if reason is not None:
                raise ValueError(f"params[{i}] is not writeable in place ({type(x).__name__}: {reason}); "
                                 "nothing was updated")

    def save(self, path: Any, **kwargs: Any) -> None:
        """Write a checkpoint of this optimizer (and, optionally, more) atomically to ``path``.

        Delegates to :func:`adam_np.checkpoint.save`, which documents ``rng`` and ``extra``.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.npz`` file to write (replaced atomically).
        **kwargs
            Passed on: ``rng``, ``extra``.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> x = np.ones(2); opt = Adam([x]); opt.step([np.ones(2)])
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> opt.save(path)
        >>> other = Adam([np.ones(2)]); _ = other.load(path); other.state.step
        1
        """
        checkpoint.save(path, self, **kwargs)

    def load(self, path: Any, **kwargs: Any) -> Any:
        """Restore this optimizer from a checkpoint written by :meth:`save`; nothing changes on error.

        Delegates to :func:`adam_np.checkpoint.load`.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file.
        **kwargs
            Passed on: ``rng``.

        Returns
        -------
        adam_np.checkpoint.Checkpoint
            What was read (step, rng state, extra metadata).
        """
        return checkpoint.load(path, self, **kwargs)


def _check_betas(betas: Any, beta1: Any, beta2: Any) -> dict:
    """``betas`` as ``{"beta1": ..., "beta2": ...}`` (their range is AdamConfig's to check)."""
    if beta1 is not None or beta2 is not None:
        both = ", ".join(f"{k}={v!r}" for k, v in (("beta1", beta1), ("beta2", beta2)) if v is not None)
        raise TypeError(f"pass either betas or beta1/beta2, not both (got betas={betas!r} and {both})")
    if not isinstance(betas, (tuple, list)):
        raise TypeError(f"betas must be a tuple (beta1, beta2), got {type(betas).__name__}: {betas!r:.80}")
    if len(betas) != 2:
        raise ValueError(f"betas must hold 2 values (beta1, beta2), got {len(betas)}: {betas!r:.80}")
    return {"beta1": betas[0], "beta2": betas[1]}


def _extent(x: Any) -> tuple[int, int] | None:
    """The byte range ``[lo, hi)`` that array ``x`` spans in memory (NumPy, CuPy, torch), None if empty."""
    shape = tuple(x.shape)
    if math.prod(shape) == 0:
        return None
    if isinstance(x, np.ndarray):
        start, strides, itemsize = x.__array_interface__["data"][0], x.strides, x.itemsize
    elif hasattr(x, "data_ptr"):  # torch
        start, itemsize = x.data_ptr(), x.element_size()
        strides = [st * itemsize for st in x.stride()]
    else:  # CuPy
        start, strides, itemsize = x.data.ptr, x.strides, x.itemsize
    lo = start + sum(min(0, (n - 1) * st) for n, st in zip(shape, strides))
    hi = start + sum(max(0, (n - 1) * st) for n, st in zip(shape, strides)) + itemsize
    return lo, hi


def _shares_memory(a: Any, b: Any) -> bool:
    """Whether two arrays whose byte ranges overlap have an element in common (exact for NumPy and CuPy;
    torch: the ranges overlap)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(np.shares_memory(a, b))
    if hasattr(a, "data_ptr"):  # torch: no exact test; overlapping ranges of one device count
        return a.device == b.device
    cupy = sys.modules["cupy"]  # imported already: a is a CuPy array (the kernels layer owns the import)
    return a.device == b.device and bool(cupy.shares_memory(a, b))


def _check_disjoint(params: list) -> None:
    """Refuse two parameters that share memory: a step would update those elements twice."""
    spans = sorted((span, i) for i, span in ((i, _extent(x)) for i, x in enumerate(params)) if span is not None)
    for k, ((_, hi), i) in enumerate(spans):
        for (lo2, _), j in spans[k + 1:]:
            if lo2 >= hi:
                break
            if _shares_memory(params[i], params[j]):
                i, j = min(i, j), max(i, j)
                what = "are the same array" if params[i] is params[j] else \
                    "share memory (overlapping views of one buffer)"
                raise ValueError(f"params[{i}] and params[{j}] {what}: a step would update the shared elements "
                                 "twice; pass each array once")


def _check_shape(i: int, shape: Any) -> tuple:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"shapes[{i}] must be a tuple of ints >= 0, got {shape!r}")
    return tuple(int(d) for d in shape)
