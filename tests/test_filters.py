"""Metadata filters: pure logic, so plain unit tests."""

from __future__ import annotations

import pytest

from mindstore import InvalidFilterError
from mindstore.filters import compile_filter

META = {"role": "user", "year": 2023, "score": 0.5, "tags": "x", "flag": True, "place": {"city": "Oslo"}, "none": None}


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"role": "user"}, True),
        ({"role": "assistant"}, False),
        ({"year": {"$gte": 2023, "$lt": 2024}}, True),
        ({"year": {"$gt": 2023}}, False),
        ({"score": {"$lte": 0.5}}, True),
        ({"year": {"$gt": "2020"}}, False),  # a number never compares with a string
        ({"role": {"$in": ["user", "system"]}}, True),
        ({"role": {"$nin": ["user"]}}, False),
        ({"missing": {"$ne": 1}}, True),
        ({"missing": {"$exists": False}}, True),
        ({"none": None}, True),
        ({"flag": 1}, False),  # True is not the number 1
        ({"flag": True}, True),
        ({"place.city": "Oslo"}, True),
        ({"$or": [{"role": "x"}, {"year": 2023}]}, True),
        ({"$and": [{"role": "user"}, {"year": 1999}]}, False),
    ],
)
def test_filter_semantics(spec, expected) -> None:
    assert compile_filter(spec)(META) is expected


@pytest.mark.parametrize("spec", [{"a": {"$regex": "x"}}, {"$not": {}}, {"a": {}}, {"a": {"$in": "abc"}}, {"a": {"$gt": None}}, {"a": {"$exists": 1}}, {"$or": []}, "a=1", {1: 2}, {"a": {"$eq": [1]}}])
def test_bad_filters_are_rejected(spec) -> None:
    with pytest.raises(InvalidFilterError):
        compile_filter(spec)


def test_empty_filter_means_none() -> None:
    assert compile_filter(None) is None and compile_filter({}) is None
