"""One checker for every config dataclass (the model's and the run's sections).

A value read from a file, a ``--set`` override or a checkpoint's metadata is checked against
its field's annotation and converted: ``bool``, ``int`` (an integral float such as ``1e4`` is
accepted), ``float``, ``str``, ``Literal[...]`` (the choices), ``Optional[X]``,
``tuple[X, ...]``, and ``Annotated[X, Range(lo, hi)]`` for a bounded number. Errors are
:class:`~stae.errors.StaeError` naming the dotted key, e.g.
``config key 'train.lr': expected a number, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, Optional, Union

from stae.errors import StaeError


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric field (None = unbounded), for ``Annotated[int, Range(1)]``: inclusive,
    or exclusive with ``lo_open``/``hi_open`` (``Range(0, lo_open=True)`` is "> 0")."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = "" if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return " and ".join(x for x in (lo, hi) if x)

    def check(self, key: str, value: Any) -> None:
        for v in value if isinstance(value, tuple) else (value,):
            low = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
            high = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
            if low or high:
                raise StaeError(f"config key {key!r}: must be {self.describe()}, got {v}")


def choices(tp: Any) -> Optional[tuple]:
    """The allowed values of a ``Literal[...]`` annotation (None for other types)."""
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def check_value(key: str, value: Any, tp: Any) -> Any:
    """``value`` converted to the annotated type ``tp``, or a StaeError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *marks = typing.get_args(tp)
        value = check_value(key, value, inner)
        for mark in marks:
            if isinstance(mark, Range) and value is not None:
                mark.check(key, value)
        return value
    if origin is Union:  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else check_value(key, value, args[0])
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) and all(isinstance(a, str) for a in allowed):
            _check_scalar(key, value, str)  # the YAML yes/no/on/off hint
        if isinstance(value, bool) or value not in allowed:
            raise StaeError(f"config key {key!r}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise StaeError(f"config key {key!r}: expected a list, got {value!r}")
        inner = typing.get_args(tp)[0]
        return tuple(check_value(key, v, inner) for v in value)
    return _check_scalar(key, value, tp)


def _check_scalar(key: str, value: Any, tp: Any) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise StaeError(f"config key {key!r}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise StaeError(f"config key {key!r}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StaeError(f"config key {key!r}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise StaeError(f"config key {key!r}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool):
            raise StaeError(f"config key {key!r}: expected a string, got {value!r} (YAML reads "
                            f"yes/no/on/off as true/false: quote the value)")
        if not isinstance(value, str):
            raise StaeError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")


def field_types(cls: type) -> dict[str, Any]:
    """The dataclass's fields and their annotations (with ``Annotated`` marks kept)."""
    return typing.get_type_hints(cls, include_extras=True)


def check_fields(cls: type, section: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against dataclass ``cls``'s fields; unknown keys are errors naming
    ``section.key`` and the known keys."""
    hints = field_types(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise StaeError(f"unknown config key {section}.{unknown[0]}; known keys of '{section}': {', '.join(hints)}")
    return {k: check_value(f"{section}.{k}", v, hints[k]) for k, v in values.items()}
