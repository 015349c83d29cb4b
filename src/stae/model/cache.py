"""The model's caches, explicit and bounded, behind one guard.

Two kinds of values are worth keeping between calls:

* constants of a shape (the DFT matrices of an FFT plan, the warp's base grid):
  :func:`shape_cache` wraps their builder in a bounded ``functools.lru_cache``;
* kernel spectra of a module's current weights while streaming frames without autograd:
  a :class:`WeightCache` that a module creates in its constructor, keyed on the weights'
  identity and version counter, so that an optimiser step or ``load_state_dict`` (both bump
  the version) invalidates it.

Neither fills while a graph is being traced or compiled (TorchScript, ONNX, ``torch.compile``):
a cached tensor would be a traced or fake one and poison later eager calls. What keeping the
spectra saves while streaming is measured by ``benchmarks/bench_caches.py``
(benchmarks/results/caches.json).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Hashable, Iterable, TypeVar

import torch

T = TypeVar("T")


def tracing() -> bool:
    """True while TorchScript traces or ``torch.compile``/``torch.export`` compiles."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def shape_cache(maxsize: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: memoise a builder of shape constants (hashable arguments only) in a bounded
    LRU cache, calling the builder directly while tracing."""
    def wrap(build: Callable[..., T]) -> Callable[..., T]:
        cached = functools.lru_cache(maxsize=maxsize)(build)

        @functools.wraps(build)
        def get(*args: Hashable) -> T:
            return build(*args) if tracing() else cached(*args)

        get.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        get.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return get
    return wrap


def weights_key(weights: Iterable[torch.Tensor]) -> tuple:
    """Identity of the weights' current values: storage, version counter, dtype and device."""
    return tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in weights)


class WeightCache:
    """One value derived from a module's weights (e.g. their spectra), reused while neither the
    weights nor ``extra`` change. Only used without autograd and outside tracing; otherwise the
    value is built on every call (its gradient must flow)."""

    def __init__(self) -> None:
        self._key: Any = None
        self._value: Any = None

    def get(self, weights: Iterable[torch.Tensor], extra: Hashable, build: Callable[[], T]) -> T:
        if torch.is_grad_enabled() or tracing():
            return build()
        key = (weights_key(weights), extra)
        if self._key != key:
            self._key, self._value = key, build()
        return self._value

    def clear(self) -> None:
        self._key = self._value = None
