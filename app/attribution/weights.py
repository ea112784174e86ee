"""The attribution models as SQL: the share of a conversion one touch gets.

A conversion's touches are numbered 1..n in time order (`position`, `count`); each model
gives touch `position` the weight below, as an exact fraction (the repository truncates
weight and revenue x weight to `CREDIT_PLACES` / `REVENUE_PLACES` and gives the remainder to
the last touch, so every conversion's credit sums to exactly 1 and its revenue to exactly the
event's):

| model | n = 1 | n = 2 | n >= 3 |
| --- | --- | --- | --- |
| `first_touch` | 1 | 1, 0 | 1, 0, ..., 0 |
| `last_touch` | 1 | 0, 1 | 0, ..., 0, 1 |
| `linear` | 1 | 1/2, 1/2 | 1/n each |
| `position_based` | 1 | 1/2, 1/2 | 0.4 first, 0.4 last, 0.2/(n-2) each middle one |

A conversion without touches (n = 0) has one row without a message and weight 0.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import ColumnElement, Numeric, and_, case, cast, literal

from app.attribution.schemas import AttributionModel

_NUMERIC = Numeric()


def _number(value: str) -> ColumnElement[Decimal]:
    return literal(Decimal(value), _NUMERIC)


def weight(
    model: AttributionModel, position: ColumnElement[int], count: ColumnElement[int]
) -> tuple[ColumnElement[Decimal], ColumnElement[Decimal]]:
    """The exact share of the touch at `position` among `count` touches, as (numerator,
    denominator): multiply before dividing (`revenue * numerator / denominator`), so a
    share like 90 x 1/3 comes out as 30 and not 29.9999..."""
    one, zero = _number("1"), _number("0")
    numerator: ColumnElement[Decimal] = one
    denominator: ColumnElement[Decimal] = one
    if model == "first_touch":
        numerator = case((position == 1, one), else_=zero)
    elif model == "last_touch":
        numerator = case((position == count, one), else_=zero)
    elif model == "linear":
        denominator = cast(count, _NUMERIC)
    else:
        middle = and_(count > 2, position > 1, position < count)
        numerator = case(
            (count == 1, one),
            (count == 2, _number("0.5")),
            (middle, _number("0.2")),
            else_=_number("0.4"),
        )
        denominator = case((middle, cast(count - 2, _NUMERIC)), else_=one)
    # No touches (one row without a message): nothing to share, and no division by zero.
    return case((count == 0, zero), else_=numerator), case((count == 0, one), else_=denominator)


__all__ = ["weight"]
