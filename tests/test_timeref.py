"""Time expressions in questions (mindstore.timeref): windows against a fixed ``now``, questions that
must get no window, order words, the argument checks, and a property test over arbitrary text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindstore.errors import InvalidInputError
from mindstore.timeref import TimeHint, check_now, parse_time, parse_when

UTC = timezone.utc
NOW = datetime(2023, 5, 20, 2, 21, tzinfo=UTC)  # a Saturday, early in the morning
NEW_YEAR = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)  # a Wednesday, just after a year boundary
EPS = timedelta(microseconds=1)


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def days(first: tuple[int, int, int], last: tuple[int, int, int] | None = None) -> tuple[datetime, datetime]:
    """Whole days from ``first`` to ``last`` (inclusive)."""
    return at(*first), at(*(last or first)) + timedelta(days=1) - EPS


def window(query: str, now: datetime = NOW) -> tuple[datetime | None, datetime | None]:
    hint = parse_time(query, now)
    return hint.since, hint.until


WINDOWS = [
    # days
    ("What did I eat today?", NOW, days((2023, 5, 20))),
    ("Who did I call yesterday?", NOW, days((2023, 5, 19))),
    ("What did I cook the day before yesterday?", NOW, days((2023, 5, 18))),
    ("What movie did I watch last night?", NOW, (at(2023, 5, 19, 18), at(2023, 5, 20, 6) - EPS)),
    ("What did I have for breakfast this morning?", NOW, (at(2023, 5, 20), at(2023, 5, 20, 12) - EPS)),
    # weekdays and weekends
    ("What did I buy last Saturday?", NOW, days((2023, 5, 13))),
    ("Where did I go on Saturday?", NOW, days((2023, 5, 13))),
    ("What did I do last Friday?", NOW, days((2023, 5, 19))),
    ("What happened this Monday?", NOW, days((2023, 5, 15))),
    ("Where did I hike last weekend?", NOW, days((2023, 5, 13), (2023, 5, 14))),
    ("What are my plans this weekend?", NOW, days((2023, 5, 20), (2023, 5, 21))),
    ("What did I do on Tuesday?", NEW_YEAR, days((2024, 1, 2))),
    ("What did I do last Wednesday?", NEW_YEAR, days((2023, 12, 27))),
    # calendar periods
    ("What did I read last week?", NOW, days((2023, 5, 8), (2023, 5, 14))),
    ("What did I read this week?", NOW, days((2023, 5, 15), (2023, 5, 21))),
    ("What did I spend last month?", NOW, days((2023, 4, 1), (2023, 4, 30))),
    ("What did I spend last month?", NEW_YEAR, days((2023, 12, 1), (2023, 12, 31))),
    ("What did I buy this month?", NOW, days((2023, 5, 1), (2023, 5, 31))),
    ("Where did I travel last year?", NOW, days((2022, 1, 1), (2022, 12, 31))),
    ("Which books did I finish this year?", NOW, days((2023, 1, 1), (2023, 12, 31))),
    ("Who did I meet earlier this week?", NOW, (at(2023, 5, 15), NOW)),
    ("What did I order earlier this month?", NOW, (at(2023, 5, 1), NOW)),
    ("What did I learn earlier this year?", NOW, (at(2023, 1, 1), NOW)),
    ("What did I read last week?", NEW_YEAR, days((2023, 12, 25), (2023, 12, 31))),
    # rolling spans ending now
    ("What did I eat in the past week?", NOW, (NOW - timedelta(days=7), NOW)),
    ("What did I buy in the past month?", NOW, (at(2023, 4, 20, 2, 21), NOW)),
    ("How have I slept over the past few days?", NOW, (NOW - timedelta(days=3), NOW)),
    ("What did I watch in the last 3 days?", NOW, (NOW - timedelta(days=3), NOW)),
    # N units ago: centre now - N units, give or take max(1 day, 25%), or 50% when vague
    ("What did I do two days ago?", NOW, (NOW - timedelta(days=3), NOW - timedelta(days=1))),
    ("What did I do 10 days ago?", NOW, (NOW - timedelta(days=12.5), NOW - timedelta(days=7.5))),
    ("Which museum did I visit two weeks ago?", NOW, (NOW - timedelta(days=17.5), NOW - timedelta(days=10.5))),
    ("What did I buy a week ago?", NOW, (NOW - timedelta(days=8.75), NOW - timedelta(days=5.25))),
    ("What did I do a couple of weeks ago?", NOW, (NOW - timedelta(days=21), NOW - timedelta(days=7))),
    ("Where did I go a few days ago?", NOW, (NOW - timedelta(days=4.5), NOW - timedelta(days=1.5))),
    ("What did I start several months ago?", NOW, (at(2023, 1, 20, 2, 21) - timedelta(days=60), at(2023, 1, 20, 2, 21) + timedelta(days=60))),
    ("What did I do a day ago?", NOW, (NOW - timedelta(days=2), NOW)),  # clipped at now
    # absolute dates
    ("What did I do in May 2023?", NOW, days((2023, 5, 1), (2023, 5, 31))),
    ("What did I do in May?", NOW, days((2023, 5, 1), (2023, 5, 31))),
    ("What did I do in June?", NOW, days((2022, 6, 1), (2022, 6, 30))),  # the latest June not after now
    ("What did I do in May?", NEW_YEAR, days((2023, 5, 1), (2023, 5, 31))),
    ("What did I do last May?", NOW, days((2022, 5, 1), (2022, 5, 31))),
    ("What did I do on May 5?", NOW, days((2023, 5, 5))),
    ("What did I do on December 5?", NOW, days((2022, 12, 5))),  # no year: not after now
    ("What did I buy on May 5th, 2023?", NOW, days((2023, 5, 5))),
    ("Where was I on 5 May 2023?", NOW, days((2023, 5, 5))),
    ("What did I eat on the 5th of May?", NOW, days((2023, 5, 5))),
    ("What happened on Sept. 9, 2021?", NOW, days((2021, 9, 9))),
    ("What did I eat on Feb 29?", NOW, days((2020, 2, 29))),  # the latest Feb 29
    ("Where did I live in 2022?", NOW, days((2022, 1, 1), (2022, 12, 31))),
    ("What happened on 2023-05-08?", NOW, days((2023, 5, 8))),
    ("What happened on 05/08/2023?", NOW, days((2023, 5, 8))),  # US order: month first
    ("What did I plant in early May?", NOW, days((2023, 5, 1), (2023, 5, 10))),
    ("What did I plant in mid-May?", NOW, days((2023, 5, 11), (2023, 5, 20))),
    ("What did I plant in late April?", NOW, days((2023, 4, 21), (2023, 4, 30))),
    ("What happened at the end of 2022?", NOW, days((2022, 9, 1), (2022, 12, 31))),
    ("Where did I go the weekend of May 6?", NOW, days((2023, 5, 6), (2023, 5, 7))),
    ("Who visited me between May 1 and May 5?", NOW, days((2023, 5, 1), (2023, 5, 5))),
    ("Where did I work between 2019 and 2021?", NOW, days((2019, 1, 1), (2021, 12, 31))),
    ("What did I do from early April to late May?", NOW, days((2023, 4, 1), (2023, 5, 31))),
    # open ranges
    ("What did I buy before May 2023?", NOW, (None, at(2023, 5, 1) - EPS)),
    ("What did I buy until May 5?", NOW, (None, at(2023, 5, 6) - EPS)),
    ("What did I read after May 5?", NOW, (at(2023, 5, 6), None)),
    ("What have I learned since 2021?", NOW, (at(2021, 1, 1), None)),
    ("What have I cooked since last week?", NOW, (at(2023, 5, 8), None)),
]


@pytest.mark.parametrize(("query", "now", "expected"), WINDOWS, ids=[q for q, _, _ in WINDOWS])
def test_a_time_expression_sets_the_window_it_names(query: str, now: datetime, expected: tuple) -> None:
    assert window(query, now) == expected


NO_WINDOW = [
    "How many days ago did I attend the charity gala?",
    "How many days ago did I go rafting?",
    "How long ago did I adopt my dog?",
    "How many months have passed since I started my job in May 2023?",
    "How many weeks have I been training for the marathon?",
    "How long have I been living in Vienna?",
    "How much time has passed since I moved last year?",
    "Have I ever been to Japan in the past?",
    "Was that ago?",
    "May I ask what my favourite colour is?",
    "March on, what comes next?",
    "Should I get a second opinion?",
    "I may go to the gym, what should I pack?",
    "What is the capital of France?",
    "",
    "Which 2 books did I lend to Sam?",
    "I bought 3/4 of a pizza",
    "What did I do on Saturdays?",  # habitual, not a day
]


@pytest.mark.parametrize("query", NO_WINDOW)
def test_duration_questions_and_lookalike_words_set_no_window(query: str) -> None:
    assert window(query) == (None, None)


ORDERS = [
    ("Which did I do first, the yoga class or the pottery workshop?", "earliest"),
    ("What is my current job title?", "recent"),
    ("Where did I most recently travel?", "recent"),
    ("Where do I live now?", "recent"),
    ("What is the latest book I read?", "recent"),
    ("What hobby am I into these days?", "recent"),
    ("When was the last time I went skiing?", "recent"),
    ("What am I currently reading?", "recent"),
    ("Where did we meet for the first time?", "earliest"),
    ("What did I initially plan to study?", "earliest"),
    ("Where was I originally from?", "earliest"),
    ("What was my earliest memory of the beach?", "earliest"),
    ("What did I buy last Saturday?", None),
]


@pytest.mark.parametrize(("query", "order"), ORDERS)
def test_order_words_ask_for_the_latest_or_the_earliest(query: str, order: str | None) -> None:
    assert parse_time(query, NOW).order == order


def test_a_window_and_an_order_can_come_together() -> None:
    hint = parse_time("What was the first thing I did this morning?", NOW)
    assert hint.order == "earliest" and hint.since == at(2023, 5, 20) and hint.phrase == "this morning"
    assert not hint.empty


def test_unknown_text_gives_an_empty_hint() -> None:
    hint = parse_time("What breed is Biscuit?", NOW)
    assert hint == TimeHint(None, None, None, None) and hint.empty


def test_the_phrase_is_the_text_that_set_the_window() -> None:
    assert parse_time("what did I   buy LAST saturday?", NOW).phrase == "LAST saturday"
    assert parse_time("Who visited me between May 1 and May 5?", NOW).phrase == "between May 1 and May 5"


def test_the_leftmost_expression_wins() -> None:
    assert window("What did I do yesterday and last week?") == days((2023, 5, 19))


def test_calendar_words_use_nows_timezone_and_come_back_in_utc() -> None:
    vienna_summer = timezone(timedelta(hours=2))
    hint = parse_time("What did I eat today?", datetime(2023, 5, 20, 1, 0, tzinfo=vienna_summer))
    assert (hint.since, hint.until) == (at(2023, 5, 19, 22), at(2023, 5, 20, 22) - EPS)
    assert hint.since.tzinfo is UTC


def test_a_naive_now_is_taken_as_utc() -> None:
    assert window("What did I buy last Saturday?", NOW.replace(tzinfo=None)) == days((2023, 5, 13))


def test_parse_time_rejects_a_query_that_is_not_a_string() -> None:
    with pytest.raises(InvalidInputError, match="query must be a string"):
        parse_time(42, NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (NOW, NOW),
        (datetime(2023, 5, 20, 2, 21), NOW),
        (datetime(2023, 5, 20, 4, 21, tzinfo=timezone(timedelta(hours=2))), NOW),
        ("2023-05-20T02:21", NOW),
        ("2023-05-20T04:21+02:00", NOW),
        ("2023-05-20T02:21Z", NOW),
        ("2023-05-20", at(2023, 5, 20)),
    ],
)
def test_check_now_gives_a_utc_aware_datetime(value: object, expected: datetime | None) -> None:
    got = check_now(value)
    assert got.tzinfo is UTC
    if expected is None:
        assert abs(got - datetime.now(UTC)) < timedelta(seconds=5)
    else:
        assert got == expected


@pytest.mark.parametrize("value", ["yesterday", "not a date", "", 1684549260, 3.5, datetime(2023, 5, 20).date()])
def test_check_now_rejects_anything_but_a_datetime_or_an_iso_string(value: object) -> None:
    with pytest.raises(InvalidInputError, match="now must be a datetime or an ISO 8601 string such as"):
        check_now(value)


@pytest.mark.parametrize(
    ("value", "what", "expected"),
    [
        ("last week", "since", at(2023, 5, 8)),
        ("last week", "until", at(2023, 5, 15) - EPS),
        ("in May 2023", "since", at(2023, 5, 1)),
        ("yesterday", "until", at(2023, 5, 20) - EPS),
        ("3 days ago", "since", NOW - timedelta(days=3)),  # the exact moment, no tolerance
        ("since last week", "since", at(2023, 5, 8)),
        ("now", "until", NOW),
        ("2023-05-08T13:56", "since", at(2023, 5, 8, 13, 56)),
        (datetime(2023, 5, 8, 13, 56), "until", at(2023, 5, 8, 13, 56)),
    ],
)
def test_parse_when_reads_datetimes_iso_strings_and_expressions(value: object, what: str, expected: datetime) -> None:
    got = parse_when(value, NOW, what)
    assert got == expected and got.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("someday", "since 'someday' is not a date or time expression"),
        ("last week and then some", "is not a date or time expression"),
        ("before May", "is not a date or time expression"),  # no start to give
        (12, "since must be a datetime or a string"),
        (None, "since must be a datetime or a string"),
    ],
)
def test_parse_when_names_the_argument_and_gives_an_example(value: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match) as info:
        parse_when(value, NOW, "since")
    assert "'last week'" in str(info.value)


GRAMMAR = ["last", "this", "past", "on", "in", "since", "before", "after", "between", "and", "early", "mid-", "late",
           "the weekend of", "May", "Saturday", "week", "weekend", "month", "year", "days", "ago", "a few", "two", "9999",
           "0001-01-01", "9999-12-31", "2023", "5th", "31", "/", "02/30/2023", "how many", "how long", "first", "now"]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.one_of(st.sampled_from(GRAMMAR), st.text(max_size=8)), max_size=12),
    now=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
)
def test_parse_time_never_raises_and_its_window_is_ordered(words: list[str], now: datetime) -> None:
    hint = parse_time(" ".join(words), now)
    for bound in (hint.since, hint.until):
        assert bound is None or bound.tzinfo is UTC
    if hint.since is not None and hint.until is not None:
        assert hint.since <= hint.until
    assert hint.order in (None, "recent", "earliest")
