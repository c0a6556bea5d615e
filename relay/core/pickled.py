"""Pickling a frozen dataclass as its constructor and its field values.

Every message's judgement crosses a process boundary (the verification
workers) and is pickled on one side, unpickled on the event loop's. Python
pickles a slotted dataclass through a __getstate__ and a __setstate__ that
walk its fields in Python; a __reduce__ that hands pickle the class and a
tuple of the values takes half the time both ways.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def by_fields(cls: type[T]) -> type[T]:
    """Class decorator, outside @dataclass: instances pickle as cls(*values)."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not all(f.init for f in fields):
        raise TypeError(f"{cls.__name__}: every field must be a constructor argument")
    values: Callable[[Any], Any] = operator.attrgetter(*(f.name for f in fields))
    if len(fields) == 1:  # attrgetter of one name gives the value, not a tuple
        single = values
        values = lambda obj: (single(obj),)  # noqa: E731

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return type(self), values(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign,assignment]
    return cls
