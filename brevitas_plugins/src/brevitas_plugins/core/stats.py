"""Statistics over a tensor (registry kind ``stats_op``) and the views taken before them.

A statistics-based scaling block first *views* the tensor, then reduces it:

- views: :class:`OverTensorView` (flatten: one statistic per tensor),
  :class:`OverOutputChannelView` (weights: ``(C, -1)``, channel axis first),
  :class:`OverBatchOverOutputChannelView` (activations ``(N, C, ...)`` ->
  ``(C, N * ...)``);
- statistics: reduce everything when ``stats_reduce_dim`` is ``None`` (a
  scalar), or reduce over ``stats_reduce_dim`` of the ``(C, N)`` view (one value
  per channel, shape ``(C,)``; the scaling block reshapes it to
  ``scaling_shape``).

=========================  ====================================  ==========================================
registry name              class                                 value
=========================  ====================================  ==========================================
``max``                    :class:`AbsMax`                       ``max |x|``
``ave``                    :class:`AbsAve`                       ``mean |x|``
``max_ave``                :class:`AbsMaxAve`                    mean over channels of the per-channel max
``mean_sigma_std``         :class:`MeanSigmaStd`                 ``mean |x| + sigma * std |x|``
``mean_learn_sigma_std``   :class:`MeanLearnedSigmaStd`          same, ``sigma`` learned
``percentile``             :class:`AbsPercentile`                the ``q``-th percentile of ``|x|``
``min_max``                :class:`AbsMinMax`                    width of ``[min(x, 0), max(x, 0)]``
=========================  ====================================  ==========================================

Also here, for affine (shifted) quantizers: :class:`NegativeMinOrZero`,
:class:`NegativePercentileOrZero`, :class:`PercentileInterval`; and the
helpers the scaling and zero-point blocks share: :func:`stats_over_tensors`,
:func:`running_stats_update`, :func:`distributed_statistic` (the statistic of
the global batch across ``torch.distributed`` ranks), :func:`reduce_stats`
and :func:`as_shape`.

Example:
    >>> import torch
    >>> w = torch.tensor([[1.0, -3.0], [0.5, 2.0]])
    >>> AbsMax()(OverTensorView()(w))
    tensor(3.)
    >>> AbsMax(stats_reduce_dim=1)(OverOutputChannelView()(w))
    tensor([3., 2.])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from brevitas import config
from brevitas.core.base import QuantBlock
from brevitas.core.stats import StatsOp
from brevitas.errors import ConfigError
from brevitas.plugins.registry import Registry

__all__ = [
    "DEFAULT_STD_DEV_EPSILON",
    "CollectThenLearnMixin",
    "RunningStatsMixin",
    "TrackedParametersMixin",
    "AbsAve",
    "AbsMax",
    "AbsMaxAve",
    "AbsMinMax",
    "AbsPercentile",
    "MeanLearnedSigmaStd",
    "MeanSigmaStd",
    "NegativeMinOrZero",
    "NegativePercentileOrZero",
    "OverBatchOverOutputChannelView",
    "OverOutputChannelView",
    "OverTensorView",
    "PercentileInterval",
    "as_shape",
    "check_momentum",
    "check_tracked_parameter_list",
    "distributed_statistic",
    "forget_missing_keys",
    "per_channel_output",
    "reduce_stats",
    "register",
    "running_stats_update",
    "stats_output_shape",
    "stats_over_tensors",
]

#: added to the variance before the square root, so the std is never 0
DEFAULT_STD_DEV_EPSILON = 1e-8


# ---------------------------------------------------------------------------
# Helpers shared by the scaling and zero-point blocks
# ---------------------------------------------------------------------------


def as_shape(shape: object, *, name: str = "scaling_shape") -> tuple[int, ...]:
    """Normalize a shape given as a tuple, list, ``torch.Size`` or int to a tuple of ints.

    Raises:
        ConfigError: ``shape`` is ``None`` or not a sequence of non-negative ints.

    Example:
        >>> as_shape(torch.Size([4, 1, 1, 1]))
        (4, 1, 1, 1)
        >>> as_shape(())
        ()
    """
    if shape is None:
        raise ConfigError(
            f"{name} is not set: a per-channel statistic needs the shape of the scale, e.g. (C, 1, 1, 1) for "
            "the weight of a Conv2d with C output channels, or per_channel_broadcastable_shape=(1, C, 1, 1) "
            "for per-channel activations; use per-tensor scaling (scaling_per_output_channel=False) otherwise"
        )
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        out = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a tuple of ints such as (C, 1, 1, 1), got {shape!r}") from None
    if any(s < 0 for s in out):
        raise ConfigError(f"{name} must hold non-negative sizes, got {out}")
    return out


def _as_permute_dims(permute_dims: Sequence[int] | None) -> tuple[int, ...] | None:
    if permute_dims is None:
        return None
    try:
        dims = tuple(int(d) for d in permute_dims)
    except (TypeError, ValueError):
        raise ConfigError(f"permute_dims must be a permutation such as (1, 0, 2, 3), got {permute_dims!r}") from None
    if sorted(dims) != list(range(len(dims))):
        raise ConfigError(
            f"permute_dims must be a permutation of 0..{len(dims) - 1} putting the channel axis first, "
            f"e.g. (1, 0, 2, 3); got {dims}"
        )
    return dims


def check_tracked_parameter_list(tracked_parameter_list: object) -> list[Tensor]:
    """The tensors a statistic covers, as a new list without duplicates (by identity).

    Raises:
        ConfigError: not a non-empty sequence of tensors.

    Example:
        >>> w = torch.zeros(2)
        >>> len(check_tracked_parameter_list([w, w]))
        1
    """
    if isinstance(tracked_parameter_list, Tensor):
        tracked_parameter_list = [tracked_parameter_list]
    try:
        params = list(tracked_parameter_list)  # type: ignore[call-overload]
    except TypeError:
        params = None
    if not params or not all(isinstance(p, Tensor) for p in params):
        raise ConfigError(
            "tracked_parameter_list must be a non-empty list of the tensors the statistics cover, "
            f"e.g. [layer.weight]; got {tracked_parameter_list!r}. It is set by the proxy; a quantizer "
            "used outside a layer must pass it with quant.let(tracked_parameter_list=[weight])"
        )
    unique: list[Tensor] = []
    for p in params:
        if not any(p is q for q in unique):
            unique.append(p)
    return unique


def stats_output_shape(
    stats_impl: nn.Module, view_impl: nn.Module, shape: object, *, name: str = "scaling_shape"
) -> tuple[int, ...]:
    """The shape a statistic is reshaped to: ``shape``, or ``()`` when unset and the statistic is per tensor.

    Raises:
        ConfigError: a per-channel statistic (``stats_reduce_dim`` set) over
            the flattening :class:`OverTensorView`, or without ``shape``.

    Example:
        >>> stats_output_shape(AbsMax(), OverTensorView(), None)
        ()
        >>> stats_output_shape(AbsMax(1), OverOutputChannelView(), [4, 1])
        (4, 1)
    """
    per_channel = per_channel_output(stats_impl)
    if per_channel and isinstance(view_impl, OverTensorView):
        raise ConfigError(
            f"{type(stats_impl).__name__} reduces one axis (stats_reduce_dim="
            f"{getattr(stats_impl, 'stats_reduce_dim', None)}) but the input view {type(view_impl).__name__} "
            "flattens the tensor: use OverOutputChannelView (weights) or OverBatchOverOutputChannelView "
            "(activations) for per-channel statistics, or stats_reduce_dim=None for per-tensor ones"
        )
    if shape is None and not per_channel:
        return ()
    return as_shape(shape, name=name)


def forget_missing_keys(module: nn.Module, prefix: str, missing_keys: list[str]) -> None:
    """With ``BREVITAS_IGNORE_MISSING_KEYS=1``, drop ``module``'s own keys from ``missing_keys``.

    Called from ``_load_from_state_dict``: a float checkpoint has no quantizer
    state, and loading it into a quantized model is then not an error.
    """
    if not config.ignore_missing_keys():
        return
    own = {prefix + name for name in module._parameters} | {prefix + name for name in module._buffers}
    missing_keys[:] = [k for k in missing_keys if k not in own]


def stats_over_tensors(tensors: Sequence[Tensor], view_impl: nn.Module, stats_impl: nn.Module) -> Tensor:
    """The statistic of several tensors taken together.

    Each tensor is viewed with ``view_impl`` and the views are concatenated
    along their last axis (a flat concatenation for per-tensor views, a
    concatenation along ``N`` for ``(C, N)`` views, which therefore need the
    same ``C``), then reduced by ``stats_impl``. Gradients flow to every
    tensor through the statistic.

    Example:
        >>> a, b = torch.tensor([1.0, -2.0]), torch.tensor([[5.0], [-1.0]])
        >>> stats_over_tensors([a, b], OverTensorView(), AbsMax())
        tensor(5.)
    """
    views = [view_impl(t) for t in tensors]
    x = views[0] if len(views) == 1 else torch.cat(views, dim=-1)
    return stats_impl(x)


def running_stats_update(running: Tensor, counter: Tensor, stat: Tensor, momentum: float | None) -> Tensor:
    """The next value of a running statistic, without data-dependent Python branches.

    Args:
        running: the current running value (a buffer).
        counter: how many values were accumulated so far (an int64 buffer);
            at 0 the result is ``stat`` itself.
        stat: the new statistic, shaped like ``running``.
        momentum: exponential moving average weight of the new value, or
            ``None`` for the plain (cumulative) average of every value seen.

    Example:
        >>> r, c = torch.tensor(2.0), torch.tensor(1)
        >>> running_stats_update(r, c, torch.tensor(4.0), None)
        tensor(3.)
        >>> running_stats_update(r, c, torch.tensor(4.0), 0.25)
        tensor(2.5000)
        >>> running_stats_update(r, torch.tensor(0), torch.tensor(4.0), 0.25)
        tensor(4.)
    """
    if momentum is None:
        new = running + (stat - running) / (counter + 1).to(running.dtype)
    else:
        new = running * (1.0 - momentum) + stat * momentum
    return torch.where(counter == 0, stat, new)


def reduce_stats(x: Tensor) -> Tensor:
    """Average a statistic across ``torch.distributed`` ranks (identity on one process).

    A building block for custom reductions; the scaling and zero-point
    blocks use :func:`distributed_statistic`, which is exact for every
    statistic (the mean of per-rank percentiles is not the percentile of the
    global batch). The all-reduce is differentiable.

    Example:
        >>> reduce_stats(torch.tensor(2.0))  # no process group: identity
        tensor(2.)
    """
    if not (dist.is_available() and dist.is_initialized()):
        return x
    world_size = dist.get_world_size()
    if world_size == 1:
        return x
    from torch.distributed import _functional_collectives as collectives

    return collectives.all_reduce(x, "sum", dist.group.WORLD) / world_size


def _world_size() -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def _all_gather(x: Tensor) -> Tensor:
    """Every rank's ``x`` stacked on a new first axis; differentiable (the gradient goes back to its rank)."""
    # the autograd-aware functional collectives torch recommends over torch.distributed.nn.functional
    from torch.distributed import _functional_collectives as collectives

    out = collectives.all_gather_single(x.unsqueeze(0).contiguous(), 0, dist.group.WORLD)
    return out.wait() if hasattr(out, "wait") else out


def _gather_last_dim(view: Tensor) -> Tensor:
    """Every rank's ``view`` concatenated along the last axis (differentiable; sizes may differ)."""
    size = torch.tensor([view.shape[-1]], dtype=torch.long, device=view.device)
    sizes = [torch.empty_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    lengths = [int(n) for n in sizes]
    parts = _all_gather(nn.functional.pad(view, (0, max(lengths) - view.shape[-1])))
    return torch.cat([part[..., :n] for part, n in zip(parts.unbind(0), lengths)], dim=-1)


def distributed_statistic(x: Tensor, view_impl: nn.Module, stats_impl: nn.Module, like: Tensor) -> Tensor:
    """The statistic of ``x`` over the global batch of every ``torch.distributed`` rank, shaped like ``like``.

    What runtime statistics (scaling and zero-point blocks in training) call
    on each batch. On one process it is ``stats_impl(view_impl(x))``. Across
    ranks every rank gets the statistic one process would compute on the
    concatenation of all the ranks' batches, how depending on the statistic's
    ``distributed_reduction`` attribute:

    - ``"max"`` (``AbsMax``, ``NegativeMinOrZero``) / ``"min"``: each rank's
      statistic, then the max (min) across ranks;
    - ``"mean"`` (``AbsAve``): each rank's mean, weighted by its element count;
    - ``"gather"`` (the default, so any third-party statistic is exact too:
      percentiles, mean + sigma * std, min-max width, ...): the viewed inputs
      of every rank are gathered and the statistic is taken over all of them.

    Collectives are the differentiable functional ones of
    ``torch.distributed``: with DistributedDataParallel
    averaging the gradients, training matches one process on the global
    batch (gradients included; with exact ties of a ``max`` across ranks the
    gradient is split per rank first). An empty batch gives NaN (on one
    process) or contributes nothing (across ranks); the callers skip a
    non-finite statistic.

    Example:
        >>> distributed_statistic(torch.tensor([1.0, -3.0]), OverTensorView(), AbsMax(), torch.zeros(()))
        tensor(3.)
        >>> distributed_statistic(torch.zeros(0), OverTensorView(), AbsMax(), torch.zeros(()))
        tensor(nan)
    """
    view = view_impl(x)
    if _world_size() == 1:
        if view.numel() == 0:
            return like.new_full(like.shape, float("nan"))
        return stats_impl(view).reshape(like.shape)
    how = getattr(stats_impl, "distributed_reduction", "gather")
    empty = view.numel() == 0
    if how in ("max", "min"):
        fill = float("-inf") if how == "max" else float("inf")
        local = like.new_full(like.shape, fill) if empty else stats_impl(view).reshape(like.shape)
        stacked = _all_gather(local)
        return torch.amax(stacked, dim=0) if how == "max" else torch.amin(stacked, dim=0)
    if how == "mean":
        reduce_dim = getattr(stats_impl, "stats_reduce_dim", None)
        count = view.numel() if reduce_dim is None else view.shape[reduce_dim]
        n = like.new_full((), float(count))
        local = like.new_zeros(like.shape) if empty else stats_impl(view).reshape(like.shape) * n
        return _all_gather(local).sum(dim=0) / _all_gather(n).sum(dim=0)
    gathered = _gather_last_dim(view)
    if gathered.numel() == 0:
        return like.new_full(like.shape, float("nan"))
    return stats_impl(gathered).reshape(like.shape)


def check_momentum(momentum: object, *, name: str = "scaling_stats_momentum") -> float | None:
    """Validate a running-statistics momentum: ``None`` (plain average) or a number in ``(0, 1]``.

    Raises:
        ConfigError: naming the value and what is accepted.

    Example:
        >>> check_momentum(0.1), check_momentum(None)
        (0.1, None)
    """
    if momentum is None:
        return None
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 < momentum <= 1.0:
        raise ConfigError(
            f"{name} must be a number in (0, 1] (weight of each new batch, e.g. 0.1) or None for the plain "
            f"average of every batch; got {momentum!r}"
        )
    return float(momentum)


class RunningStatsMixin:
    """Running statistic of a module's input, kept in buffers (for ``nn.Module`` subclasses).

    The host module has ``stats_impl`` and ``stats_input_view_shape_impl``
    children and calls :meth:`_init_running_stats` in its constructor, which
    registers the buffers ``running_stats`` (shaped like the output, starting
    at ``init``) and ``counter`` (int64, batches seen in training). In training,
    :meth:`running_statistic` returns the statistic of the current batch,
    taken over every rank's batch by :func:`distributed_statistic`, with its
    gradient to the input; it folds the *detached* value into
    ``running_stats`` (exponential moving average with ``momentum``, or the
    plain average when ``None``). A batch whose statistic is not finite (NaN
    or Inf in the input, an empty batch) is not folded in and does not
    count; it is quantized with ``running_stats``. In eval it returns
    ``running_stats``.
    """

    running_stats: Tensor
    counter: Tensor
    training: bool

    def _init_running_stats(self, shape: tuple[int, ...], momentum: float | None, init: float = 1.0) -> None:
        self.register_buffer("running_stats", torch.full(shape, float(init)))  # type: ignore[attr-defined]
        self.register_buffer("counter", torch.zeros((), dtype=torch.long))  # type: ignore[attr-defined]
        self.momentum = momentum

    def batch_statistic(self, x: Tensor) -> Tensor:
        """The statistic of ``x`` over every rank's batch, shaped like ``running_stats``."""
        return distributed_statistic(
            x,
            self.stats_input_view_shape_impl,
            self.stats_impl,
            self.running_stats,  # type: ignore[attr-defined]
        )

    def calibrate(self, mode: bool = True) -> None:
        """Calibration protocol (:mod:`brevitas.graph.calibrate`); outside ``forward``.

        ``True``: restart ``counter`` and average every training batch with
        equal weight (momentum ``None``). ``False``: restore the momentum;
        ``running_stats`` keeps the average (eval uses it). With no batch in
        between, the buffers return to what they held before.
        """
        saved = getattr(self, "_calibration_saved", None)
        if mode:
            if saved is None:
                self._calibration_saved = (self.momentum, self.running_stats.clone(), self.counter.clone())
                self.momentum = None
                with torch.no_grad():
                    self.counter.zero_()
            return
        if saved is None:
            return
        self._calibration_saved = None
        momentum, running_stats, counter = saved
        self.momentum = momentum
        if not bool(self.counter > 0):
            with torch.no_grad():
                self.running_stats.copy_(running_stats)
                self.counter.copy_(counter)

    def running_statistic(self, x: Tensor) -> Tensor:
        """The current batch's statistic in training (updating the buffers), ``running_stats`` in eval."""
        if not self.training:
            return self.running_stats
        stat = self.batch_statistic(x)
        finite = torch.isfinite(stat).all()  # NaN / Inf input or empty batch: skipped, not folded in
        with torch.no_grad():
            updated = running_stats_update(self.running_stats, self.counter, stat.detach(), self.momentum)
            self.running_stats.copy_(torch.where(finite, updated, self.running_stats))
            self.counter.add_(finite.to(self.counter.dtype))
        return torch.where(finite, stat, self.running_stats)


class TrackedParametersMixin:
    """Statistics over ``tracked_parameter_list``, for ``nn.Module`` subclasses.

    The host has ``stats_impl`` and ``stats_input_view_shape_impl`` children
    and calls :meth:`_init_tracked` in its constructor. The tensors are held
    in a plain list (they belong to their layers, not to this block's
    ``state_dict``); :meth:`add_tracked_parameter` adds one more (a quantizer
    shared by another layer) and calls :meth:`reinit`.
    """

    stats_impl: nn.Module
    stats_input_view_shape_impl: nn.Module
    tracked_parameter_list: list[Tensor]

    def _init_tracked(
        self, tracked_parameter_list: object, shape: tuple[int, ...], *, shape_name: str = "scaling_shape"
    ) -> None:
        self.tracked_parameter_list = check_tracked_parameter_list(tracked_parameter_list)
        self._tracked_shape = shape
        self._tracked_shape_name = shape_name
        self._check_stats_fit()

    def _check_stats_fit(self) -> None:
        with torch.no_grad():
            try:
                stat = stats_over_tensors(
                    self.tracked_parameter_list, self.stats_input_view_shape_impl, self.stats_impl
                )
            except RuntimeError as err:
                shapes = [tuple(p.shape) for p in self.tracked_parameter_list]
                raise ConfigError(
                    f"cannot take {type(self.stats_impl).__name__} over the tracked tensors of shapes {shapes} "
                    f"viewed by {type(self.stats_input_view_shape_impl).__name__} ({err}); tensors sharing a "
                    "per-channel quantizer must have the same number of output channels"
                ) from None
        if stat.numel() != math.prod(self._tracked_shape):
            name = self._tracked_shape_name
            raise ConfigError(
                f"{type(self.stats_impl).__name__} gives {stat.numel()} value(s) but {name} is "
                f"{self._tracked_shape}: per-channel statistics need {name} with one entry per output channel "
                "(e.g. (C, 1, 1, 1)), per-tensor ones need ()"
            )

    def parameter_list_stats(self) -> Tensor:
        """The statistic of the tracked tensors taken together, in the shape given to ``_init_tracked``."""
        stat = stats_over_tensors(self.tracked_parameter_list, self.stats_input_view_shape_impl, self.stats_impl)
        return stat.reshape(self._tracked_shape)

    def add_tracked_parameter(self, parameter: Tensor) -> None:
        """Also cover ``parameter`` (a quantizer shared by one more layer), then re-initialize.

        Raises:
            ConfigError: the statistic no longer fits the output shape (e.g. a
                per-channel quantizer shared by layers with different channel
                counts); the tensor is not added then.
        """
        if any(parameter is p for p in self.tracked_parameter_list):
            return
        self.tracked_parameter_list.append(parameter)
        try:
            self._check_stats_fit()
        except ConfigError:
            self.tracked_parameter_list.pop()
            raise
        self.reinit()

    def reinit(self) -> None:
        """Re-derive what depends on the tracked tensors (nothing to do for pure statistics)."""


#: collection length while calibrating: larger than any number of calibration batches
_CALIBRATION_STEPS = 2**62


class CollectThenLearnMixin:
    """Statistics for ``collect_stats_steps`` training steps, then a learned parameter.

    For ``nn.Module`` subclasses that also have ``stats_impl`` and
    ``stats_input_view_shape_impl`` children and define three conversions:
    ``_to_stored(stat)`` (user domain -> the parameter's domain),
    ``_from_stat(stat)`` and ``_from_stored(value)`` (both -> user domain).

    :meth:`_init_collect` registers the buffers ``buffer`` (the accumulated
    statistic) and ``counter`` (int64 steps collected) and the parameter
    ``value``. In training, while ``counter < collect_stats_steps``, the output
    is the current batch's statistic (gradient to the input) and its detached
    value is accumulated; the step that reaches ``collect_stats_steps`` copies
    the accumulated statistic into ``value`` (under ``no_grad``); from then on
    the output is ``_from_stored(value)``.

    Compiled, the choice is a ``torch.where`` on the counter, so ``forward``
    has no data-dependent Python branch. Eager, Python knows it without
    reading the counter at every batch: :meth:`_collect_steps_left` counts the
    batches down and reads the counter only when the count is unknown (after
    ``train()``, a load, or when it runs out). So an eager batch that collects
    computes only the statistic (``value`` stays out of the graph, as in the
    original Brevitas, and the output's gradient reaches ``x`` alone: a
    quantizer of the network's input adds no backward pass through the first
    layer), and once collection is over no statistic is computed. The flag
    ``_collection_done`` (refreshed by ``train()`` and ``load_state_dict``)
    lets compiled code skip the statistic too, from the next ``train()``. In
    eval the output is the accumulated statistic until collection ends,
    ``value`` afterwards.
    """

    buffer: Tensor
    counter: Tensor
    value: nn.Parameter
    training: bool
    # provided by the host class (not defined here, so they do not shadow the host's in the MRO):
    # _to_stored(stat), _from_stat(stat), _from_stored(value)

    def _init_collect(
        self,
        shape: tuple[int, ...],
        collect_stats_steps: object,
        momentum: float | None,
        init_value: Tensor,
        buffer_init: float = 1.0,
    ) -> None:
        if isinstance(collect_stats_steps, bool) or not isinstance(collect_stats_steps, int) or collect_stats_steps < 1:
            raise ConfigError(
                f"collect_stats_steps must be an int >= 1 (training steps of statistics before the learned "
                f"parameter takes over, e.g. 30), got {collect_stats_steps!r}"
            )
        self.collect_stats_steps = collect_stats_steps
        self.momentum = momentum
        self.register_buffer("buffer", torch.full(shape, float(buffer_init)))  # type: ignore[attr-defined]
        self.register_buffer("counter", torch.zeros((), dtype=torch.long))  # type: ignore[attr-defined]
        self.value = nn.Parameter(init_value.detach().clone().reshape(shape))
        self._collection_done = False

    @property
    def collection_done(self) -> bool:
        """Whether the learned parameter has taken over (reads the counter: not for ``forward``)."""
        return bool(self.counter >= self.collect_stats_steps)

    def _sync_collection_flag(self) -> None:
        self._steps_left = None
        if self.counter.device.type != "meta":
            self._collection_done = self.collection_done

    def _collect_steps_left(self) -> int:
        """Eager training only: a lower bound on the training batches still to collect (0: done).

        The counter grows by at most one per batch, so the bound is counted
        down in Python (``_steps_left``) and the counter is read (a device
        sync) only when the bound is unknown: when counting starts, after
        ``train()`` or a load, and when the bound runs out. Reaching 0 sets
        ``_collection_done``.
        """
        left = getattr(self, "_steps_left", None)
        if left is None:
            left = max(self.collect_stats_steps - int(self.counter), 0)
            self._steps_left = left
            self._collection_done = left == 0
        return left

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        out = super().train(mode)  # type: ignore[misc]
        self._sync_collection_flag()
        return out

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[misc]
        self._sync_collection_flag()

    def calibrate(self, mode: bool = True) -> None:
        """Calibration protocol (:mod:`brevitas.graph.calibrate`); outside ``forward``.

        ``True``: restart ``counter`` and collect the plain average of every
        training batch, for as many batches as come (``value`` does not take
        over meanwhile). ``False``: copy that average into ``value`` and mark
        the collection complete (``counter = collect_stats_steps``), so eval
        and further training use ``value``. With no batch in between, the
        state returns to what it was before.
        """
        saved = getattr(self, "_calibration_saved", None)
        if mode:
            if saved is None:
                self._calibration_saved = (
                    self.collect_stats_steps, self.momentum, self.buffer.clone(), self.counter.clone(),
                )  # fmt: skip
                self.collect_stats_steps = _CALIBRATION_STEPS
                self.momentum = None
                with torch.no_grad():
                    self.counter.zero_()
                self._collection_done = False
            return
        if saved is None:
            return
        self._calibration_saved = None
        steps, momentum, buffer, counter = saved
        self.collect_stats_steps, self.momentum = steps, momentum
        with torch.no_grad():
            if bool(self.counter > 0):
                stored = self._to_stored(self.buffer).to(self.value.dtype)  # type: ignore[attr-defined]
                self.value.copy_(stored)
                self.counter.fill_(steps)
            else:
                self.buffer.copy_(buffer)
                self.counter.copy_(counter)
        self._sync_collection_flag()

    def collected_statistic(self, x: Tensor) -> Tensor:
        """The output in the user domain (see the class docstring)."""
        steps = self.collect_stats_steps
        if self._collection_done:
            return self._from_stored(self.value)  # type: ignore[attr-defined]
        if not self.training:
            from_buffer = self._from_stat(self.buffer)  # type: ignore[attr-defined]
            return torch.where(self.counter < steps, from_buffer, self._from_stored(self.value))  # type: ignore[attr-defined]
        # eager: the Python count-down says whether this batch still collects (then `value` is not in the
        # graph, as in the original Brevitas, and the output's gradient reaches only x); compiled: torch.where
        left = None if torch.compiler.is_compiling() else self._collect_steps_left()
        if left == 0:
            return self._from_stored(self.value)  # type: ignore[attr-defined]
        stat = distributed_statistic(
            x,
            self.stats_input_view_shape_impl,
            self.stats_impl,
            self.buffer,  # type: ignore[attr-defined]
        )
        collecting = self.counter < steps if left is None else None
        finite = torch.isfinite(stat).all()  # NaN / Inf input or empty batch: skipped, not folded in
        with torch.no_grad():
            updating = finite if collecting is None else torch.logical_and(collecting, finite)
            updated = running_stats_update(self.buffer, self.counter, stat.detach(), self.momentum)
            self.buffer.copy_(torch.where(updating, updated, self.buffer))
            self.counter.add_(updating.to(self.counter.dtype))
            if left is None or left == 1:  # this batch may complete the collection
                just_done = torch.logical_and(updating, self.counter == steps)
                stored = self._to_stored(self.buffer).to(self.value.dtype)  # type: ignore[attr-defined]
                # through .data: an earlier call in this step (a quantizer shared by two inputs, or by two
                # layers) may hold `value` in its graph; its gradient there is zero while collecting
                self.value.data.copy_(torch.where(just_done, stored, self.value.data))
        from_stat = self._from_stat(torch.where(finite, stat, self.buffer))  # type: ignore[attr-defined]
        if left is not None:
            self._steps_left = left - 1 if left > 1 else None
            if _world_size() > 1:  # DistributedDataParallel wants every parameter in the graph: `value` joins
                return torch.where(finite.new_ones(()), from_stat, self._from_stored(self.value))  # with grad 0
            return from_stat
        return torch.where(collecting, from_stat, self._from_stored(self.value))  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------


class OverTensorView(QuantBlock):
    """Flatten the tensor: one statistic for the whole tensor.

    Example:
        >>> OverTensorView()(torch.zeros(2, 3, 4)).shape
        torch.Size([24])
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(-1)


class OverOutputChannelView(QuantBlock):
    """``(C, -1)`` with the output-channel axis first: one statistic per channel of a weight.

    Args:
        permute_dims: permutation putting the channel axis first, e.g.
            ``(1, 0, 2, 3)`` for the weight of a transposed convolution;
            ``None`` when the channel axis is already the first one. Applied
            with ``permute`` when its length matches the tensor's rank, else
            only its first entry (the channel axis) is moved first.

    Raises:
        ConfigError: ``permute_dims`` is not a permutation.

    Example:
        >>> OverOutputChannelView()(torch.zeros(8, 3, 3, 3)).shape
        torch.Size([8, 27])
        >>> OverOutputChannelView(permute_dims=(1, 0, 2, 3))(torch.zeros(3, 8, 2, 2)).shape
        torch.Size([8, 12])
    """

    #: the channel axis when ``permute_dims`` is ``None``
    channel_dim: int = 0

    def __init__(self, permute_dims: Sequence[int] | None = None) -> None:
        super().__init__()
        self.permute_dims = _as_permute_dims(permute_dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0:
            return x.reshape(1, 1)
        if self.permute_dims is not None:
            if len(self.permute_dims) == x.dim():
                x = x.permute(self.permute_dims)
            else:
                x = x.movedim(self.permute_dims[0], 0)
        elif self.channel_dim and x.dim() > self.channel_dim:
            x = x.movedim(self.channel_dim, 0)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: a zero-size batch keeps its C

    def extra_repr(self) -> str:
        return f"permute_dims={self.permute_dims}"


class OverBatchOverOutputChannelView(OverOutputChannelView):
    """Activations ``(N, C, ...)`` -> ``(C, N * ...)``: one statistic per channel over the batch.

    Args:
        permute_dims: permutation putting the channel axis first (e.g.
            ``(1, 0, 2, 3)``, the ``scaling_stats_permute_dims`` attribute);
            ``None`` means the channel axis is axis 1. Applied like
            :class:`OverOutputChannelView` does.

    Raises:
        ConfigError: ``permute_dims`` is not a permutation.

    Example:
        >>> OverBatchOverOutputChannelView()(torch.zeros(5, 4, 6, 6)).shape
        torch.Size([4, 180])
        >>> OverBatchOverOutputChannelView(permute_dims=(2, 0, 1))(torch.zeros(5, 7, 3)).shape
        torch.Size([3, 35])
    """

    channel_dim = 1


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def _check_reduce_dim(stats_reduce_dim: object) -> int | None:
    if stats_reduce_dim is None:
        return None
    if isinstance(stats_reduce_dim, bool) or not isinstance(stats_reduce_dim, int):
        raise ConfigError(
            f"stats_reduce_dim must be None (one statistic per tensor) or an int axis of the viewed tensor "
            f"(1 for per-channel statistics), got {stats_reduce_dim!r}"
        )
    return stats_reduce_dim


class _ReducingStatsOp(StatsOp):
    """A statistic reducing everything (``stats_reduce_dim=None``) or one axis."""

    def __init__(self, stats_reduce_dim: int | None = None) -> None:
        super().__init__()
        self.stats_reduce_dim = _check_reduce_dim(stats_reduce_dim)

    @property
    def per_channel_output(self) -> bool:
        """Whether the statistic has one value per channel (else a scalar)."""
        return self.stats_reduce_dim is not None

    def extra_repr(self) -> str:
        return f"stats_reduce_dim={self.stats_reduce_dim}"


class AbsMax(_ReducingStatsOp):
    """``max |x|`` (registry name ``max``; across ranks, the max of each rank's).

    Args:
        stats_reduce_dim: ``None`` for a scalar, or the axis reduced (``1`` on
            a ``(C, N)`` view gives ``(C,)``).

    Example:
        >>> AbsMax()(torch.tensor([1.0, -4.0, 2.0]))
        tensor(4.)
    """

    distributed_reduction = "max"

    def forward(self, x: Tensor) -> Tensor:
        if self.stats_reduce_dim is None:
            return torch.amax(torch.abs(x))
        return torch.amax(torch.abs(x), dim=self.stats_reduce_dim)


class AbsAve(_ReducingStatsOp):
    """``mean |x|`` (registry name ``ave``).

    Example:
        >>> AbsAve()(torch.tensor([1.0, -3.0]))
        tensor(2.)
    """

    distributed_reduction = "mean"

    def forward(self, x: Tensor) -> Tensor:
        if self.stats_reduce_dim is None:
            return torch.mean(torch.abs(x))
        return torch.mean(torch.abs(x), dim=self.stats_reduce_dim)


class AbsMaxAve(_ReducingStatsOp):
    """Per-channel ``max |x|``, then averaged over the channels (registry name ``max_ave``).

    One scalar per tensor, smoother than the overall max: it expects the
    ``(C, N)`` view of :class:`OverOutputChannelView` and takes the max over
    ``stats_reduce_dim`` (default ``1``, i.e. within each channel), then the
    mean of those ``C`` maxima. On a 1-D (flattened) input it is ``max |x|``.
    So for ``max_ave`` a solver pairs :class:`OverOutputChannelView` with
    ``scaling_shape=()``.

    Example:
        >>> AbsMaxAve()(torch.tensor([[1.0, -4.0], [2.0, 0.0]]))
        tensor(3.)
    """

    def __init__(self, stats_reduce_dim: int | None = 1) -> None:
        super().__init__(stats_reduce_dim)

    @property
    def per_channel_output(self) -> bool:
        return False

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            return torch.amax(torch.abs(x))
        dim = 1 if self.stats_reduce_dim is None else self.stats_reduce_dim
        return torch.mean(torch.amax(torch.abs(x), dim=dim))


def _mean_sigma_std(x: Tensor, sigma: Tensor | float, stats_reduce_dim: int | None, epsilon: float) -> Tensor:
    abs_x = torch.abs(x)
    if stats_reduce_dim is None:
        mean = torch.mean(abs_x)
        var = torch.var(abs_x, correction=0)
    else:
        mean = torch.mean(abs_x, dim=stats_reduce_dim)
        var = torch.var(abs_x, dim=stats_reduce_dim, correction=0)
    if isinstance(sigma, Tensor) and sigma.dim() != 0:
        sigma = sigma.reshape(mean.shape)
    return mean + sigma * torch.sqrt(var + epsilon)


def _check_sigma(sigma: object) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma):
        raise ConfigError(f"scaling_stats_sigma must be a finite number such as 2.0, got {sigma!r}")
    return float(sigma)


class MeanSigmaStd(_ReducingStatsOp):
    """``mean |x| + sigma * std |x|`` (registry name ``mean_sigma_std``).

    The standard deviation is the population one (``correction=0``, so a
    single element gives ``sqrt(epsilon)``, never NaN) of ``|x|``, with
    ``std_dev_epsilon`` added to the variance.

    Args:
        scaling_stats_sigma: how many standard deviations above the mean.
        stats_reduce_dim: ``None`` or the reduced axis.
        std_dev_epsilon: added to the variance before the square root.

    Raises:
        ConfigError: ``scaling_stats_sigma`` is not a finite number.

    Example:
        >>> MeanSigmaStd(scaling_stats_sigma=1.0, std_dev_epsilon=0.0)(torch.tensor([1.0, -3.0]))
        tensor(3.)
    """

    def __init__(
        self,
        scaling_stats_sigma: float = 2.0,
        stats_reduce_dim: int | None = None,
        std_dev_epsilon: float = DEFAULT_STD_DEV_EPSILON,
    ) -> None:
        super().__init__(stats_reduce_dim)
        self.sigma = _check_sigma(scaling_stats_sigma)
        self.std_dev_epsilon = float(std_dev_epsilon)

    def forward(self, x: Tensor) -> Tensor:
        return _mean_sigma_std(x, self.sigma, self.stats_reduce_dim, self.std_dev_epsilon)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, stats_reduce_dim={self.stats_reduce_dim}"


class MeanLearnedSigmaStd(_ReducingStatsOp):
    """:class:`MeanSigmaStd` with ``sigma`` a learned parameter (registry name ``mean_learn_sigma_std``).

    Args:
        scaling_stats_sigma: initial sigma.
        stats_output_shape: shape of ``sigma``: ``()`` for one sigma, or as
            many values as the statistic has (``(C,)``; a shape such as
            ``(C, 1, 1, 1)`` with ``C`` values works too). When ``None`` it
            is ``()`` for a per-tensor statistic and ``(numel(scaling_shape),)``
            for a per-channel one.
        stats_reduce_dim: ``None`` or the reduced axis.
        scaling_shape: the scale's shape, used only when
            ``stats_output_shape`` is ``None`` and the statistic is per channel.
        std_dev_epsilon: added to the variance before the square root.

    Raises:
        ConfigError: sigma is not a finite number, or the statistic is per
            channel and neither ``stats_output_shape`` nor ``scaling_shape``
            says how many channels there are.

    Example:
        >>> op = MeanLearnedSigmaStd(scaling_stats_sigma=1.0, std_dev_epsilon=0.0)
        >>> op(torch.tensor([1.0, -3.0])).backward()
        >>> op.sigma.grad
        tensor(1.)
    """

    def __init__(
        self,
        scaling_stats_sigma: float = 2.0,
        stats_output_shape: Sequence[int] | None = None,
        stats_reduce_dim: int | None = None,
        scaling_shape: Sequence[int] | None = None,
        std_dev_epsilon: float = DEFAULT_STD_DEV_EPSILON,
    ) -> None:
        super().__init__(stats_reduce_dim)
        sigma = _check_sigma(scaling_stats_sigma)
        if stats_output_shape is not None:
            shape = as_shape(stats_output_shape, name="stats_output_shape")
        elif self.stats_reduce_dim is None:
            shape = ()
        else:
            shape = (math.prod(as_shape(scaling_shape)),)
        self.sigma = nn.Parameter(torch.full(shape, sigma))
        self.std_dev_epsilon = float(std_dev_epsilon)

    def forward(self, x: Tensor) -> Tensor:
        return _mean_sigma_std(x, self.sigma, self.stats_reduce_dim, self.std_dev_epsilon)


def _check_percentile(q: object, name: str, *, low: bool) -> float:
    ok = not isinstance(q, bool) and isinstance(q, (int, float)) and math.isfinite(q)
    if ok:
        ok = (0.0 <= q < 100.0) if low else (0.0 < q <= 100.0)
    if not ok:
        accepted = "in [0, 100)" if low else "in (0, 100]"
        example = "0.001" if low else "99.999"
        raise ConfigError(f"{name} must be a percentage {accepted}, e.g. {example}; got {q!r}")
    return float(q)


#: block length of the two-level search for the extreme order statistics (see :func:`_order_statistic`)
_BLOCK = 128
#: the two-level search is used for ranks from the end up to this (99.999th percentiles of any tensor
#: up to ~6M elements; the 99.99th up to ~600k)
_MAX_EDGE_RANK = 64


def _edge_index(rows: Tensor, m: int, how: str) -> Tensor:
    """Position along the last axis of the ``m``-th largest key of each row of ``rows`` (2-D, no grad).

    The key of a value ``v`` is ``|v|`` (``how="abs"``), ``v`` (``"max"``) or
    ``-v`` (``"min"``, for the ``m``-th smallest value). Exact, in about one
    pass and without a full-size temporary: split each row into blocks of
    ``_BLOCK``, keep the ``m`` blocks with the largest key maxima plus the
    ragged tail, and take the ``m``-th largest key among those candidates.
    Every key at or above the true ``m``-th largest either lies in a kept
    block or in a block whose maximum is no larger than each kept block's,
    so the ``m`` kept maxima already reach it: the candidates hold the answer.
    """
    n_rows, n = rows.shape
    blocks = n // _BLOCK
    main = rows[:, : blocks * _BLOCK].reshape(n_rows, blocks, _BLOCK)
    if how == "abs":  # (amax and amin: two fast reductions; aminmax is much slower on CPU)
        block_keys = torch.maximum(torch.amax(main, dim=2), torch.amin(main, dim=2).neg_())
    elif how == "max":
        block_keys = torch.amax(main, dim=2)
    else:
        block_keys = torch.amin(main, dim=2).neg_()
    top_blocks = torch.topk(block_keys, m, dim=1).indices  # (rows, m)
    picked = torch.gather(main, 1, top_blocks.unsqueeze(2).expand(n_rows, m, _BLOCK)).reshape(n_rows, m * _BLOCK)
    candidates = torch.cat([picked, rows[:, blocks * _BLOCK :]], dim=1)
    if how == "abs":
        candidates = candidates.abs_()
    elif how == "min":
        candidates = candidates.neg_()
    pos = torch.topk(candidates, m, dim=1).indices[:, m - 1 :]  # (rows, 1)
    in_block = pos < m * _BLOCK
    block = torch.gather(top_blocks, 1, torch.where(in_block, pos // _BLOCK, 0))
    return torch.where(in_block, block * _BLOCK + pos % _BLOCK, pos + (blocks - m) * _BLOCK)


def _order_statistic(x: Tensor, k: int, dim: int | None, *, absolute: bool = False) -> Tensor:
    """The ``k``-th smallest (1-indexed) of ``x`` (of ``|x|`` when ``absolute``), over ``dim`` or everything.

    The value is gathered from ``x`` at the position found, so the gradient
    goes to that one element (times its sign when ``absolute``), as with
    ``torch.kthvalue``. Percentiles near the ends (``k`` or ``n - k`` small,
    as with 99.999 or 0.001) use the two-level search of :func:`_edge_index`
    (about one pass over ``x``); other ranks use ``torch.kthvalue``, which has
    no input-size limit (``torch.quantile`` refuses over 16M elements).
    """
    if dim is not None:
        dim = dim % x.dim()
    rows = x.reshape(1, -1) if dim is None else x.movedim(dim, -1).reshape(-1, x.shape[dim])
    n = rows.shape[1]
    with torch.no_grad():
        v = rows.detach()
        from_top = n - k + 1
        if min(k, from_top) <= _MAX_EDGE_RANK and n >= 4 * _MAX_EDGE_RANK * _BLOCK:
            if from_top <= k:
                index = _edge_index(v, from_top, "abs" if absolute else "max")
            elif not absolute:
                index = _edge_index(v, k, "min")
            else:  # the k-th smallest |x|, k small: no shortcut for the smallest magnitudes
                index = torch.kthvalue(torch.abs(v), k, dim=1, keepdim=True).indices
        else:
            index = torch.kthvalue(torch.abs(v) if absolute else v, k, dim=1, keepdim=True).indices
    value = torch.gather(rows, 1, index)
    if absolute:
        value = torch.abs(value)
    return value.reshape(()) if dim is None else value.reshape(x.shape[:dim] + x.shape[dim + 1 :])


def _count(x: Tensor, dim: int | None) -> int:
    return x.numel() if dim is None else x.shape[dim]


def _high_k(q: float, n: int) -> int:
    # 1-indexed rank of the q-th percentile, rounded half up, kept in [1, n]
    return min(max(int(math.floor(0.01 * q * n + 0.5)), 1), n)


def _low_k(q: float, n: int) -> int:
    return min(max(int(math.ceil(0.01 * q * n)), 1), n)


class AbsPercentile(_ReducingStatsOp):
    """The ``high_percentile_q``-th percentile of ``|x|`` (registry name ``percentile``).

    The ``k``-th smallest ``|x|`` with ``k = floor(q/100 * n + 0.5)`` (at least
    1), on tensors of any size. High percentiles such as the default 99.999
    cost about one pass over ``x`` (see :func:`_order_statistic`); the gradient
    goes to the selected element, times its sign.

    Args:
        high_percentile_q: the percentile, in ``(0, 100]`` (``100`` is the max).
        stats_reduce_dim: ``None`` or the reduced axis.

    Raises:
        ConfigError: ``high_percentile_q`` is outside ``(0, 100]``.

    Example:
        >>> AbsPercentile(high_percentile_q=50.0)(torch.tensor([-4.0, 1.0, 3.0, -2.0]))
        tensor(2.)
    """

    def __init__(self, high_percentile_q: float = 99.999, stats_reduce_dim: int | None = None) -> None:
        super().__init__(stats_reduce_dim)
        self.q = _check_percentile(high_percentile_q, "high_percentile_q", low=False)

    def forward(self, x: Tensor) -> Tensor:
        k = _high_k(self.q, _count(x, self.stats_reduce_dim))
        return _order_statistic(x, k, self.stats_reduce_dim, absolute=True)

    def extra_repr(self) -> str:
        return f"q={self.q}, stats_reduce_dim={self.stats_reduce_dim}"


class NegativePercentileOrZero(_ReducingStatsOp):
    """``max(-p, 0)`` with ``p`` the ``low_percentile_q``-th percentile of ``x``.

    The robust counterpart of :class:`NegativeMinOrZero` for zero points.

    Args:
        low_percentile_q: the percentile, in ``[0, 100)`` (``0`` is the min).
        stats_reduce_dim: ``None`` or the reduced axis.

    Raises:
        ConfigError: ``low_percentile_q`` is outside ``[0, 100)``.

    Example:
        >>> NegativePercentileOrZero(low_percentile_q=25.0)(torch.tensor([-4.0, -1.0, 3.0, 2.0]))
        tensor(4.)
    """

    def __init__(self, low_percentile_q: float = 0.001, stats_reduce_dim: int | None = None) -> None:
        super().__init__(stats_reduce_dim)
        self.q = _check_percentile(low_percentile_q, "low_percentile_q", low=True)

    def forward(self, x: Tensor) -> Tensor:
        k = _low_k(self.q, _count(x, self.stats_reduce_dim))
        return torch.clamp_min(-_order_statistic(x, k, self.stats_reduce_dim), 0.0)


class PercentileInterval(_ReducingStatsOp):
    """Width of ``[min(p_low, 0), p_high]``: the robust counterpart of :class:`AbsMinMax`.

    Args:
        low_percentile_q: lower percentile, in ``[0, 100)``.
        high_percentile_q: upper percentile, in ``(0, 100]``.
        stats_reduce_dim: ``None`` or the reduced axis.

    Raises:
        ConfigError: a percentile is out of range, or ``low >= high``.

    Example:
        >>> PercentileInterval(0.0, 100.0)(torch.tensor([-1.0, 0.5, 3.0]))
        tensor(4.)
    """

    def __init__(
        self, low_percentile_q: float = 0.001, high_percentile_q: float = 99.999, stats_reduce_dim: int | None = None
    ) -> None:
        super().__init__(stats_reduce_dim)
        self.low_q = _check_percentile(low_percentile_q, "low_percentile_q", low=True)
        self.high_q = _check_percentile(high_percentile_q, "high_percentile_q", low=False)
        if self.low_q >= self.high_q:
            raise ConfigError(
                f"low_percentile_q ({self.low_q}) must be below high_percentile_q ({self.high_q}), "
                "e.g. 0.001 and 99.999"
            )

    def forward(self, x: Tensor) -> Tensor:
        n = _count(x, self.stats_reduce_dim)
        low = _order_statistic(x, _low_k(self.low_q, n), self.stats_reduce_dim)
        high = _order_statistic(x, _high_k(self.high_q, n), self.stats_reduce_dim)
        return torch.abs(high - torch.clamp_max(low, 0.0))


class AbsMinMax(_ReducingStatsOp):
    """Width of the range ``[min(x, 0), max(x, 0)]`` (registry name ``min_max``).

    Used by affine (shifted) quantizers: with unsigned integers, the scale is
    this width over ``2**b - 1`` and the zero point is ``round(-min/scale)``
    (:class:`NegativeMinOrZero`). The range is extended to include 0 so that
    0 is exactly representable and the grid starting at the zero point covers
    every value (for all-positive data the zero point is 0 and the width is
    ``max``), as PyTorch's observers and the current Brevitas do.

    Example:
        >>> AbsMinMax()(torch.tensor([-1.0, 2.5]))
        tensor(3.5000)
        >>> AbsMinMax()(torch.tensor([1.0, 2.5]))
        tensor(2.5000)
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.stats_reduce_dim is None:
            max_val, min_val = torch.amax(x), torch.amin(x)
        else:
            max_val = torch.amax(x, dim=self.stats_reduce_dim)
            min_val = torch.amin(x, dim=self.stats_reduce_dim)
        return torch.clamp_min(max_val, 0.0) - torch.clamp_max(min_val, 0.0)


class NegativeMinOrZero(_ReducingStatsOp):
    """``-min(x)`` where the min is negative, else 0: the offset a zero point encodes.

    Non-negative, in the units of ``x`` (the zero-point blocks divide it by the
    scale). Note the sign: the original Brevitas returns the clamped min
    itself (``<= 0``); this returns its negation (``>= 0``).

    Example:
        >>> NegativeMinOrZero()(torch.tensor([-1.5, 2.0]))
        tensor(1.5000)
        >>> NegativeMinOrZero(stats_reduce_dim=1)(torch.tensor([[-1.0, 2.0], [0.5, 3.0]]))
        tensor([1., 0.])
    """

    distributed_reduction = "max"

    def forward(self, x: Tensor) -> Tensor:
        if self.stats_reduce_dim is None:
            min_val = torch.amin(x)
        else:
            min_val = torch.amin(x, dim=self.stats_reduce_dim)
        return torch.clamp_min(-min_val, 0.0)


def per_channel_output(stats_impl: nn.Module) -> bool | None:
    """Whether ``stats_impl`` gives one value per channel; ``None`` when it does not say."""
    value = getattr(stats_impl, "per_channel_output", None)
    return value if isinstance(value, bool) else None


#: the standard ``(name, class, description)`` triples of kind ``stats_op``
_STATS_OPS: tuple[tuple[str, type[StatsOp], str], ...] = (
    ("max", AbsMax, "max |x|"),
    ("ave", AbsAve, "mean |x|"),
    ("max_ave", AbsMaxAve, "mean over channels of the per-channel max |x|"),
    ("mean_sigma_std", MeanSigmaStd, "mean |x| + sigma * std |x|"),
    ("mean_learn_sigma_std", MeanLearnedSigmaStd, "mean |x| + sigma * std |x|, sigma learned"),
    ("percentile", AbsPercentile, "percentile of |x| (high_percentile_q)"),
    ("min_max", AbsMinMax, "width of [min(x, 0), max(x, 0)] (affine quantizers)"),
)


def register(registry: Registry) -> None:
    """Add the ``stats_op`` names of ``brevitas.inject.enum.StatsOp``."""
    for name, impl, description in _STATS_OPS:
        registry.add("stats_op", name, impl, description=description)
