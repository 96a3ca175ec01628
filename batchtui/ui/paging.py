"""Pages of a sorted query, read by keyset where it can and by OFFSET only for a jump.

A grid over 100,000 jobs asks for one page of rows at a time. ``OFFSET n``
makes the database walk n rows first, so the deeper the page the slower it
gets. A grid mostly moves to the page next to one it has already read: then
"the rows after the last one shown" (a keyset: ``(sort column, id) > (v, i)``)
is one index seek. Home reads the first page, End the last one (the order
reversed), and only a jump into the middle (a click on the scroll bar) falls
back to OFFSET, from whichever end is nearer.

The order is always total: the sort column, then the primary key in the same
direction, so equal values never make a row appear twice or not at all.

No Textual here: any grid source can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peewee import Field, Tuple, fn


class KeysetPager:
    """Rows ``[offset, offset + limit)`` of ``query`` ordered by ``sort`` then ``key`` (both one way)."""

    def __init__(self, query_fn: Callable[[], Any], sort: Field, key: Field, descending: bool,
                 count_fn: Callable[[], int]) -> None:
        self._query_fn = query_fn  # a fresh select with the filters and the columns; the last column is `sort`
        self.sort = sort
        self.key = key
        self.descending = descending
        self._count_fn = count_fn
        self._count: int | None = None
        # offset of a page -> (mark of its first row, mark of its last row); a mark = (sort value, key)
        self._bounds: dict[int, tuple[tuple, tuple]] = {}

    def invalidate(self) -> None:
        self._bounds.clear()
        self._count = None

    def count(self) -> int:
        self._count = self._count_fn()
        return self._count

    # -- the order ----------------------------------------------------------------

    def _order(self, reverse: bool = False) -> list:
        desc = self.descending != reverse
        fields = [self.key] if self.sort is self.key else [self.sort, self.key]
        return [f.desc() if desc else f.asc() for f in fields]

    def after(self, mark: tuple, reverse: bool = False):
        """The rows that come after `mark` in the order (before it, if reverse)."""
        desc = self.descending != reverse
        if self.sort is self.key:
            return self.key < mark[1] if desc else self.key > mark[1]
        lhs, rhs = Tuple(self.sort, self.key), Tuple(*mark)
        return lhs < rhs if desc else lhs > rhs

    # -- reading ------------------------------------------------------------------

    def fetch(self, offset: int, limit: int) -> list[tuple]:
        """Rows as tuples (the query's columns, the sort value last)."""
        query = self._query_fn()
        before = self._bounds.get(offset - limit)
        following = self._bounds.get(offset + limit)
        if offset == 0:
            rows = list(query.order_by(*self._order()).limit(limit).tuples())
        elif before is not None:
            rows = list(query.where(self.after(before[1])).order_by(*self._order()).limit(limit).tuples())
        elif following is not None:
            rows = list(query.where(self.after(following[0], reverse=True))
                        .order_by(*self._order(reverse=True)).limit(limit).tuples())
            rows.reverse()
        else:
            total = self._count if self._count is not None else self.count()
            tail = total - offset - limit  # rows after this page
            if tail < offset:
                n = limit if tail >= 0 else max(0, total - offset)
                rows = list(query.order_by(*self._order(reverse=True)).offset(max(0, tail)).limit(n).tuples())
                rows.reverse()
            else:
                rows = list(query.order_by(*self._order()).offset(offset).limit(limit).tuples())
        if rows:
            self._bounds[offset] = ((rows[0][-1], rows[0][0]), (rows[-1][-1], rows[-1][0]))
            if len(self._bounds) > 64:
                self._bounds.pop(next(iter(self._bounds)))
        return rows

    def index_of(self, key_value) -> int | None:
        """Where the row with this key stands in the order (None if the filters hide it)."""
        query = self._query_fn()
        row = query.where(self.key == key_value).tuples().first()
        if row is None:
            return None
        mark = (row[-1], row[0])
        return (self._query_fn().select(fn.COUNT(self.key)).where(self.after(mark, reverse=True))
                .order_by().scalar() or 0)
