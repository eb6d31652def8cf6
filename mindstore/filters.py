"""Structured metadata filters, validated before they touch anything.

A filter is a dict. ``{"role": "user"}`` is equality; ``{"year": {"$gte": 2020, "$lt": 2025}}``
a range; ``{"topic": {"$in": ["work", "travel"]}}`` membership. Operators: ``$eq $ne $gt $gte
$lt $lte $in $nin $exists``; ``$and`` / ``$or`` take lists of filters. Keys are metadata keys;
dotted keys reach into nested objects (``"place.city"``). No raw SQL is ever accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidFilterError, InvalidInputError
from .validate import MAX_DEPTH, check_chars

__all__ = ["compile_filter", "Predicate"]

Predicate = Callable[[Mapping[str, Any]], bool]

_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _comparable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def _lookup(meta: Mapping[str, Any], key: str) -> Any:
    value: Any = meta
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _eq(a: Any, b: Any) -> bool:
    # True == 1 in Python; a filter for True must not match the number 1.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _text(value: Any, what: str) -> Any:
    """A string in a filter passes the checks a stored one does (no NUL, no lone surrogate): one
    that fails them could never match, so it is a mistake to report."""
    if isinstance(value, str):
        try:
            check_chars(value, what)
        except InvalidInputError as exc:
            raise InvalidFilterError(str(exc)) from None
    return value


def _compile_op(key: str, op: str, arg: Any) -> Predicate:
    for a in arg if isinstance(arg, (list, tuple, set, frozenset)) else (op, arg):
        _text(a, f"filter {key!r:.40}")
    if op in ("$eq", "$ne"):
        if not isinstance(arg, _SCALARS):
            raise InvalidFilterError(f"{key}: {op} takes a string, number, boolean or null, not {type(arg).__name__}")
        if op == "$eq":
            return lambda m: (v := _lookup(m, key)) is not _MISSING and _eq(v, arg)
        return lambda m: (v := _lookup(m, key)) is _MISSING or not _eq(v, arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not (_is_number(arg) or isinstance(arg, str)):
            raise InvalidFilterError(f"{key}: {op} takes a number or a string (e.g. an ISO date), not {type(arg).__name__}")
        cmp = {
            "$gt": lambda a, b: a > b,
            "$gte": lambda a, b: a >= b,
            "$lt": lambda a, b: a < b,
            "$lte": lambda a, b: a <= b,
        }[op]
        return lambda m: _comparable(v := _lookup(m, key), arg) and cmp(v, arg)
    if op in ("$in", "$nin"):
        if not isinstance(arg, (list, tuple, set, frozenset)) or not all(isinstance(a, _SCALARS) for a in arg):
            raise InvalidFilterError(f"{key}: {op} takes a list of strings, numbers, booleans or nulls")
        values = list(arg)
        hit = lambda m: (v := _lookup(m, key)) is not _MISSING and any(_eq(v, a) for a in values)  # noqa: E731
        return hit if op == "$in" else (lambda m: not hit(m))
    if op == "$exists":
        if not isinstance(arg, bool):
            raise InvalidFilterError(f"{key}: $exists takes true or false")
        return lambda m: (_lookup(m, key) is not _MISSING) is arg
    raise InvalidFilterError(
        f"{key}: unknown operator {op!r}; use one of $eq $ne $gt $gte $lt $lte $in $nin $exists"
    )


def _compile(spec: Any, where: str, depth: int = 1) -> Predicate:
    if not isinstance(spec, Mapping):
        raise InvalidFilterError(f"{where} must be a dict like {{'role': 'user'}}, not {type(spec).__name__}")
    if depth > MAX_DEPTH:
        raise InvalidFilterError(f"filters nest $and / $or more than {MAX_DEPTH} deep; flatten them")
    parts: list[Predicate] = []
    for key, cond in spec.items():
        if not isinstance(key, str) or not key:
            raise InvalidFilterError(f"filter keys must be non-empty strings, not {key!r:.40}")
        _text(key, "a filter key")
        if key in ("$and", "$or"):
            if not isinstance(cond, (list, tuple)) or not cond:
                raise InvalidFilterError(f"{key} takes a non-empty list of filters")
            subs = [_compile(c, f"{key}[{i}]", depth + 1) for i, c in enumerate(cond)]
            parts.append((lambda m, s=subs: all(p(m) for p in s)) if key == "$and" else (lambda m, s=subs: any(p(m) for p in s)))
        elif key.startswith("$"):
            raise InvalidFilterError(f"unknown top-level operator {key!r}; only $and and $or combine filters")
        elif isinstance(cond, Mapping):
            if not cond:
                raise InvalidFilterError(f"{key}: empty condition; write {{'{key}': value}} or {{'{key}': {{'$gte': 1}}}}")
            for op, arg in cond.items():
                parts.append(_compile_op(key, op, arg))
        else:
            parts.append(_compile_op(key, "$eq", cond))
    return lambda m: all(p(m) for p in parts)


def compile_filter(spec: Mapping[str, Any] | None) -> Predicate | None:
    """Validate ``spec`` and turn it into a predicate over a slot's metadata (None: no filter)."""
    if spec is None:
        return None
    if isinstance(spec, Mapping) and not spec:
        return None
    return _compile(spec, "filters")
