"""Time expressions in a search question, read against a reference time ``now``.

``parse_time("What did I buy last Saturday?", now)`` gives the window the question points at
(``since``/``until``, UTC, inclusive) and whether it wants the latest or the earliest memory.
Absolute dates are located by a small grammar and read by ``dateutil.parser``; month and year
arithmetic is ``dateutil.relativedelta``; relative expressions are word lists compiled into a few
regexes. Not ``dateparser``: it is slow to import, its ``search_dates`` finds dates in "May I ask"
and in bare numbers, and it cannot tell a window ("what did I do two weeks ago?") from a duration
question whose time phrase is the answer ("how many weeks ago did I ...?").

Rules, in ``now``'s own timezone (naive means UTC), results in UTC:

- a day, week (Monday to Sunday), month or year is its whole calendar span; "earlier this week"
  ends at ``now``; "past week", "past few days", "last 3 months" are rolling spans ending at ``now``;
- "last Saturday"/"on Saturday" is the latest Saturday strictly before today, "this Monday" the
  Monday of this week, "last weekend" the latest Saturday and Sunday wholly before today;
- "N units ago" is centred on ``now - N units``, give or take max(1 day, 25% of N units) (50% for
  vague counts: "a couple of" = 2, "a few" = 3, "several" = 4), clipped at ``now``;
- a date without a year ("May 5", "in May") is the latest one not after ``now``; "early", "mid",
  "late" are days 1-10, 11-20, 21-end of a month or months 1-4, 5-8, 9-12 of a year;
- "before X" ends before X starts, "until X" with X, "after X" starts after X ends, "since X" with
  X; "between X and Y" runs from X's start to Y's end.

No window for a question whose time phrase is the answer ("how many days ago ...", "how long
have I ..."), nor for a month name without a day, a year or a preposition ("May I ask").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Callable, NamedTuple

from dateutil.relativedelta import relativedelta  # dateutil.parser is imported on first use

from .errors import InvalidInputError

__all__ = ["TimeHint", "check_now", "parse_time", "parse_when"]

UTC = timezone.utc
_EPS = timedelta(microseconds=1)
_NOW_EXAMPLE = "now must be a datetime or an ISO 8601 string such as '2023-05-20T14:00'"


@dataclass(frozen=True)
class TimeHint:
    since: datetime | None  # UTC start of the window the question points at (inclusive)
    until: datetime | None  # UTC end (inclusive)
    order: str | None  # "recent", "earliest" or None
    phrase: str | None  # the text that set the window

    @property
    def empty(self) -> bool:
        return self.since is None and self.until is None and self.order is None


# -- word lists ------------------------------------------------------------------------------------

_MONTH_NAMES = [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
                ("july", "jul"), ("august", "aug"), ("september", "sept", "sep"), ("october", "oct"),
                ("november", "nov"), ("december", "dec")]
MONTHS = {name: i for i, names in enumerate(_MONTH_NAMES, 1) for name in names}
WEEKDAYS = {d: i for i, d in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])}
UNITS = {"day": relativedelta(days=1), "week": relativedelta(weeks=1), "month": relativedelta(months=1), "year": relativedelta(years=1)}
COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30}
VAGUE_COUNTS = {"a couple of": 2, "a couple": 2, "couple of": 2, "couple": 2, "a few": 3, "few": 3, "several": 4}
# (days from today, first hour, end hour) of fixed day phrases
DAY_PHRASES = {"today": (0, 0, 24), "yesterday": (-1, 0, 24), "the day before yesterday": (-2, 0, 24),
               "this morning": (0, 0, 12), "this afternoon": (0, 12, 18), "this evening": (0, 18, 24),
               "tonight": (0, 18, 24), "last night": (-1, 18, 30), "yesterday morning": (-1, 0, 12),
               "yesterday afternoon": (-1, 12, 18), "yesterday evening": (-1, 18, 24)}
ORDER_WORDS = {
    "recent": ["most recently", "most recent", "currently", "current", "right now", "now", "nowadays", "latest",
               "these days", "last time", "recently", "lately"],
    "earliest": ["the first time", "first", "initially", "originally", "earliest", "at first"],
}
# a bare month name or year is a date only after one of these words ("in May", not "May I ask")
DATE_PREPOSITIONS = {"in", "during", "since", "before", "after", "until", "till", "from", "between", "and", "to",
                     "through", "throughout", "by", "of", "early", "mid", "late", "year"}
PART_WORDS = {"early": 0, "beginning": 0, "start": 0, "mid": 1, "middle": 1, "late": 2, "end": 2}


def _alt(words: Any) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


_MON, _WD, _UNIT = _alt(MONTHS), _alt(WEEKDAYS), _alt(UNITS)
_QTY = rf"(?:\d{{1,3}}|{_alt([*COUNTS, *VAGUE_COUNTS])})"
_ORD = r"(?:st|nd|rd|th)?"
_DURATION = re.compile(rf"\bhow (?:many|much) (?:more )?(?:{_UNIT}s?|time) (?:ago|since|before|after|between|until|have|has|had)\b"
                       r"|\bhow long (?:ago|since|before|after|have|has|had)\b", re.I)
_ORDER = re.compile("|".join(rf"\b(?P<{k}>{_alt(v)})\b" for k, v in ORDER_WORDS.items()), re.I)


Reading = tuple  # (since, until, unit) or (since, until, unit, instant)


class _Hit(NamedTuple):
    start: int
    end: int
    since: datetime | None
    until: datetime | None
    unit: str | None = None  # calendar span of the hit: "day", "month", "year"
    instant: datetime | None = None  # "N units ago": the exact moment, for parse_when


# -- the grammar: each rule reads a match into (since, until, unit[, instant]) or None -------------

def _day(d: date, tz: tzinfo | None, hours: int = 0) -> datetime:
    return datetime.combine(d, time(), tz) + timedelta(hours=hours)


def _whole(start: datetime, step: relativedelta | timedelta) -> tuple[datetime, datetime]:
    return start, start + step - _EPS


def _count(word: str) -> tuple[int, bool]:  # (N, vague)
    word = word.lower()
    if word.isdigit():
        return int(word), False
    return (VAGUE_COUNTS[word], True) if word in VAGUE_COUNTS else (COUNTS[word], False)


def _latest_before(today: date, weekday: int) -> date:  # strictly before today
    return today - timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)


def _day_phrase(m: re.Match[str], now: datetime) -> Reading:
    days, h0, h1 = DAY_PHRASES[m.group(0).lower()]
    d = now.date() + timedelta(days=days)
    return _day(d, now.tzinfo, h0), _day(d, now.tzinfo, h1) - _EPS, "day"


def _calendar(m: re.Match[str], now: datetime) -> Reading:
    which, unit, d = m.group(1).lower(), m.group(2).lower(), now.date()
    d = {"week": d - timedelta(days=d.weekday()), "month": d.replace(day=1), "year": d.replace(month=1, day=1)}.get(unit, d)
    start = _day(d, now.tzinfo) - (UNITS[unit] if which == "last" else relativedelta())
    return (start, now, None) if which == "earlier this" else (*_whole(start, UNITS[unit]), unit)


def _rolling(m: re.Match[str], now: datetime) -> Reading | None:
    which, qty, unit, plural = m.group(1).lower(), m.group(2), m.group(3).lower(), m.group(4)
    if qty is None and (which == "last" or plural):  # "last week" is calendar; "past days" is vague
        return None
    return now - UNITS[unit] * (_count(qty)[0] if qty else 1), now, None


def _ago(m: re.Match[str], now: datetime) -> Reading:
    n, vague = _count(m.group(1))
    centre = now - UNITS[m.group(2).lower()] * n
    tolerance = max(timedelta(days=1), (now - centre) * (0.5 if vague else 0.25))
    return centre - tolerance, min(centre + tolerance, now), None, centre


def _weekday(m: re.Match[str], now: datetime) -> Reading:
    which, wd, today = m.group(1).lower(), WEEKDAYS[m.group(2).lower()], now.date()
    d = today + timedelta(days=wd - today.weekday()) if which == "this" else _latest_before(today, wd)
    return (*_whole(_day(d, now.tzinfo), timedelta(days=1)), "day")


def _weekend(m: re.Match[str], now: datetime) -> Reading:
    today = now.date()
    if m.group(1).lower() == "this":
        saturday = today + timedelta(days=5 - today.weekday())
    else:  # the Saturday before the latest Sunday strictly before today
        saturday = _latest_before(today, 6) - timedelta(days=1)
    return (*_whole(_day(saturday, now.tzinfo), timedelta(days=2)), None)


def _on_date(m: re.Match[str], now: datetime) -> Reading | None:
    from dateutil.parser import parse

    has_year = m.group("y") is not None
    for back in range(1 if has_year else 8):  # no year: the latest such day not after today (Feb 29 too)
        try:
            d = parse(m.group(0), default=datetime(now.year - back, 1, 1), dayfirst=False).date()
        except (ValueError, OverflowError):
            continue
        if has_year or d <= now.date():
            return (*_whole(_day(d, now.tzinfo), timedelta(days=1)), "day")
    return None


def _month_year(m: re.Match[str], now: datetime) -> Reading:
    from dateutil.parser import parse

    return (*_whole(_day(parse(m.group(0), default=datetime(2000, 1, 1)).date(), now.tzinfo), UNITS["month"]), "month")


def _after_preposition(m: re.Match[str]) -> bool:
    return (re.findall(r"[a-z]+", m.string[: m.start()].lower()) or [""])[-1] in DATE_PREPOSITIONS


def _month(m: re.Match[str], now: datetime) -> Reading | None:
    which, month = (m.group(1) or "").lower(), MONTHS[m.group(2).lower()]
    if not which and not _after_preposition(m):
        return None
    this_year = which == "this" or month < now.month or (month == now.month and which != "last")
    return (*_whole(_day(date(now.year - (not this_year), month, 1), now.tzinfo), UNITS["month"]), "month")


def _year(m: re.Match[str], now: datetime) -> Reading | None:
    if not _after_preposition(m):
        return None
    return (*_whole(_day(date(int(m.group(0)), 1, 1), now.tzinfo), UNITS["year"]), "year")


Rule = Callable[[re.Match[str], datetime], "Reading | None"]
RULES: list[tuple[re.Pattern[str], Rule]] = [(re.compile(p, re.I), read) for p, read in [
    (rf"\b{_alt(DAY_PHRASES)}\b", _day_phrase),
    (rf"\b(last|this|earlier this) ({_UNIT})\b", _calendar),
    (rf"\b(?:the )?(past|last) (?:({_QTY}) )?({_UNIT})(s?)\b", _rolling),
    (rf"\b({_QTY}) ({_UNIT})s? ago\b", _ago),
    (rf"\b(last|on|this|past) ({_WD})\b", _weekday),
    (r"\b(last|this|past) weekend\b", _weekend),
    (r"\b(?P<y>\d{4})-\d{1,2}-\d{1,2}\b", _on_date),
    (r"\b\d{1,2}/\d{1,2}/(?P<y>\d{4}|\d{2})\b", _on_date),
    (rf"\b{_MON}\.? \d{{1,2}}{_ORD}\b(?:,? (?P<y>\d{{4}})\b)?", _on_date),
    (rf"\b\d{{1,2}}{_ORD}(?: of)? {_MON}\b\.?(?:,? (?P<y>\d{{4}})\b)?", _on_date),
    (rf"\b{_MON}\.?,? (?:of )?\d{{4}}\b", _month_year),
    (rf"\b(?:(last|this) )?({_MON})\b", _month),
    (r"\b(?:19|20)\d\d\b", _year),
]]


def _part(hit: _Hit, k: int) -> tuple[datetime, datetime] | None:  # early (0), mid (1), late (2)
    if hit.unit == "month":
        end = hit.since + timedelta(days=10 * (k + 1)) - _EPS if k < 2 else hit.until
        return hit.since + timedelta(days=10 * k), end
    if hit.unit == "year":
        return _whole(hit.since + relativedelta(months=4 * k), relativedelta(months=4))
    return None


def _week_of(hit: _Hit, weekend: bool) -> tuple[datetime, datetime] | None:
    if hit.unit != "day":
        return None
    monday = hit.since - timedelta(days=hit.since.weekday())
    return _whole(monday + timedelta(days=5), timedelta(days=2)) if weekend else _whole(monday, timedelta(days=7))


# text just before a hit that reshapes it: "early May", "the weekend of May 5", "since last week"
_PART_PREFIX = re.compile(rf"\b(?:({_alt(['early', 'mid', 'late'])})|the ({_alt(PART_WORDS)}) of)[\s-]+$", re.I)
_WEEK_PREFIX = re.compile(r"\bthe (week|weekend) of\s+$", re.I)
RANGE_PREFIXES: list[tuple[re.Pattern[str], Callable[[_Hit], tuple[datetime | None, datetime | None]]]] = [
    (re.compile(r"\b(?:before|prior to)\s+$", re.I), lambda h: (None, h.since - _EPS)),
    (re.compile(r"\b(?:until|till|through|by|up to)\s+$", re.I), lambda h: (None, h.until)),
    (re.compile(r"\bafter\s+$", re.I), lambda h: (h.until + _EPS, None)),
    (re.compile(r"\b(?:since|starting)\s+$", re.I), lambda h: (h.since, None)),
]
_BETWEEN_PREFIX = re.compile(r"\b(?:between|from)\s+$", re.I)
_BETWEEN_JOIN = re.compile(r"\s*(?:and|to|until|till|through|-|–)\s*", re.I)


def _safe(read: Callable[..., Any], *args: Any) -> Any:
    try:
        return read(*args)
    except (ValueError, OverflowError, KeyError):  # out-of-range dates, absurd counts
        return None


def _hits(text: str, now: datetime) -> list[_Hit]:
    hits = [_Hit(m.start(), m.end(), *r)
            for pattern, read in RULES for m in pattern.finditer(text) if (r := _safe(read, m, now))]
    for h in list(hits):  # modifiers
        before = text[: h.start]
        if (p := _PART_PREFIX.search(before)) and (span := _safe(_part, h, PART_WORDS[(p.group(1) or p.group(2)).lower()])):
            hits.append(_Hit(p.start(), h.end, *span))
        if (p := _WEEK_PREFIX.search(before)) and (span := _safe(_week_of, h, p.group(1).lower() == "weekend")):
            hits.append(_Hit(p.start(), h.end, *span))
    simple = [h for h in hits if h.since is not None and h.until is not None]
    for h in simple:  # ranges
        before = text[: h.start]
        for prefix, bound in RANGE_PREFIXES:
            if (p := prefix.search(before)) and (span := _safe(bound, h)):
                hits.append(_Hit(p.start(), h.end, *span))
        if p := _BETWEEN_PREFIX.search(before):
            for last in simple:
                if last.start > h.end and _BETWEEN_JOIN.fullmatch(text, h.end, last.start):
                    lo, hi = sorted([(h.since, h.until), (last.since, last.until)])
                    hits.append(_Hit(p.start(), last.end, lo[0], max(lo[1], hi[1])))
    return hits


def _window(text: str, now: datetime) -> _Hit | None:
    hits = _hits(text, now)
    return min(hits, key=lambda h: (h.start, -h.end)) if hits else None  # leftmost, then longest


def _local(now: Any) -> datetime:
    """``now`` for calendar arithmetic: kept in its own timezone; naive means UTC."""
    if isinstance(now, datetime):
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return check_now(now)


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else _local(when).astimezone(UTC)


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


# -- the API ---------------------------------------------------------------------------------------

def parse_time(query: str, now: datetime) -> TimeHint:
    """The window and order a question points at, relative to ``now``; an empty hint when it names
    no time. Never raises on any string."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, not {type(query).__name__}")
    now = _local(now)
    text = " ".join(query.split())
    m = _ORDER.search(text)
    order = m.lastgroup if m else None
    hit = None if _DURATION.search(text) else _window(text, now)
    if hit is None:
        return TimeHint(None, None, order, None)
    since, until = _safe(_utc, hit.since), _safe(_utc, hit.until)  # None where UTC would overflow
    if since is not None and until is not None and since > until:
        since, until = until, since
    return TimeHint(since, until, order, text[hit.start : hit.end])


def check_now(now: Any = None, *, keep_zone: bool = False) -> datetime:
    """The reference time as a UTC-aware datetime: ``None`` is the current time, a naive datetime
    is taken as UTC, a string is read as ISO 8601. ``keep_zone``: in ``now``'s own timezone
    instead, the one calendar words ("yesterday", "last week") are read in."""
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, str):
        parsed = _iso(now)
        if parsed is None:
            raise InvalidInputError(f"now {now!r} is not an ISO 8601 date or datetime; {_NOW_EXAMPLE}")
        now = parsed
    if not isinstance(now, datetime):
        raise InvalidInputError(f"{_NOW_EXAMPLE}, not {type(now).__name__}")
    try:
        return _local(now) if keep_zone else _local(now).astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInputError(f"now {now!r} is out of range; {_NOW_EXAMPLE}") from exc


def parse_when(value: Any, now: datetime, what: str = "since") -> datetime:
    """See :func:`_parse_when`; a date out of range is an InvalidInputError too."""
    try:
        return _parse_when(value, now, what)
    except OverflowError as exc:
        raise InvalidInputError(f"{what} {value!r} is out of range; pass a date between years 1 and 9999") from exc


def _parse_when(value: Any, now: datetime, what: str = "since") -> datetime:
    """A ``since=``/``until=`` argument as a UTC-aware datetime: a datetime (naive means UTC), an
    ISO 8601 string (that exact instant), or an expression of ``parse_time``'s grammar standing
    alone: ``"last week"`` is its start, or its end when ``what`` is ``"until"``; ``"3 days ago"``
    is that exact moment."""
    example = "pass a datetime, an ISO 8601 string such as '2023-05-08T14:00', or e.g. 'last week' or '3 days ago'"
    if isinstance(value, datetime):
        return _local(value).astimezone(UTC)
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a datetime or a string; {example}, not {type(value).__name__}")
    if (parsed := _iso(value)) is not None:
        return _local(parsed).astimezone(UTC)
    now = _local(now)
    text = " ".join(value.split())
    if text.lower() == "now":
        return now.astimezone(UTC)
    hit = _window(text, now)
    if hit is not None:
        rest = re.findall(r"\w+", (text[: hit.start] + " " + text[hit.end :]).lower())
        bound = hit.instant or (hit.until if what == "until" else hit.since)
        if bound is not None and all(w in {"in", "on", "at", "during", "the"} for w in rest):
            return bound.astimezone(UTC)
    raise InvalidInputError(f"{what} {value!r} is not a date or time expression I understand; {example}")
