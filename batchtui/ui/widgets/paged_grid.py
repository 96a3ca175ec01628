"""A grid that pages from the database and renders only the lines on screen.

Textual's DataTable keeps every row in memory and measures every cell; a
grid over jobs or history (tables that grow without bound) must not. This one
asks its source for the row count and for one page of rows at a time, keyed,
so a live refresh keeps the cursor on the same record and the scroll where
the operator left it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.cells import cell_len, set_cell_size
from rich.errors import StyleSyntaxError
from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.binding import Binding
from textual.color import Color, ColorParseError
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from ..guard import guarded
from ..messages import ReadFailed
from ..outage import is_db_error, reading


@dataclass
class Column:
    key: str
    label: str
    width: int
    flex: bool = False  # follows its content and the room there is (between min and its longest text)
    align: str = "left"
    sortable: bool = True  # where the grid offers sorting at all
    min: int = 0  # a flex column shrinks to this on a narrow terminal (0: 8, or width if smaller)
    essential: bool = False  # kept in view on a narrow terminal (flex columns before it give way)

    @property
    def least(self) -> int:
        """The narrowest this column is drawn."""
        if not self.flex:
            return self.width
        return min(self.width, self.min or 8)


@dataclass
class GridRow:
    key: Any
    cells: Sequence[str]
    styles: dict[int, str] = field(default_factory=dict)  # column index -> rich style


class GridSource(Protocol):
    """What a grid reads. Optional too: ``invalidate()`` (forget what was read: the
    grid reloads), ``index_of(key)`` (where a row stands, to find one far away) and
    ``fresh()`` (a new source over the same rows, sharing nothing with this one, that
    a worker thread may read while the grid keeps drawing from this one)."""

    def count(self) -> int: ...

    def fetch(self, offset: int, limit: int) -> list[GridRow]: ...


class ListSource:
    """A source over rows already in memory (small grids: tasks, conditions)."""

    def __init__(self, rows: list[GridRow] | None = None) -> None:
        self.rows = rows or []

    def count(self) -> int:
        return len(self.rows)

    def fetch(self, offset: int, limit: int) -> list[GridRow]:
        return self.rows[offset: offset + limit]


class CallableSource:
    """A source from a loader returning all rows (small grids reloaded on refresh)."""

    def __init__(self, load: Callable[[], list[GridRow]]) -> None:
        self._load = load
        self._rows: list[GridRow] | None = None

    def _all(self) -> list[GridRow]:
        if self._rows is None:
            self._rows = self._load()
        return self._rows

    def invalidate(self) -> None:
        self._rows = None

    def fresh(self) -> CallableSource:
        return CallableSource(self._load)

    def count(self) -> int:
        return len(self._all())

    def fetch(self, offset: int, limit: int) -> list[GridRow]:
        return self._all()[offset: offset + limit]


PAGE = 100
PAGES_HELD = 9


class PagedGrid(ScrollView, can_focus=True):
    """Header on line 0, then the rows of the source; one highlighted cursor row."""

    DEFAULT_CSS = """
    PagedGrid {
        height: 1fr;
        background: $surface;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    PagedGrid > .paged-grid--header { text-style: bold; background: $panel; color: $foreground; }
    PagedGrid > .paged-grid--cursor {
        background: $block-cursor-blurred-background; color: $block-cursor-blurred-foreground;
    }
    PagedGrid:focus > .paged-grid--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
    }
    PagedGrid > .paged-grid--empty { color: $text-muted; text-style: italic; }
    """

    COMPONENT_CLASSES = {"paged-grid--header", "paged-grid--cursor", "paged-grid--empty"}

    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False, id="grid.up"),
        Binding("down", "cursor_down", "Down", show=False, id="grid.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="grid.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="grid.page_down"),
        Binding("home", "first", "First", show=False, id="grid.first"),
        Binding("end", "last", "Last", show=False, id="grid.last"),
        Binding("left", "scroll_left", "Left", show=False, id="grid.left"),
        Binding("right", "scroll_right", "Right", show=False, id="grid.right"),
    ]

    cursor: reactive[int] = reactive(0, always_update=False, repaint=False)

    class CursorMoved(Message):
        def __init__(self, grid: PagedGrid, index: int, key: Any) -> None:
            super().__init__()
            self.grid = grid
            self.index = index
            self.key = key

        @property
        def control(self) -> PagedGrid:
            return self.grid

    class HeaderSelected(Message):
        """The operator clicked a column's header (to sort by it)."""

        def __init__(self, grid: PagedGrid, column_key: str) -> None:
            super().__init__()
            self.grid = grid
            self.column_key = column_key

        @property
        def control(self) -> PagedGrid:
            return self.grid

    class RowsRead(Message, bubble=False):
        """A worker read the rows (the grid's own message: see ``reload_in_background``)."""

        def __init__(self, source: GridSource, generation: int, count: int,
                     pages: dict[int, list[GridRow]]) -> None:
            super().__init__()
            self.source = source
            self.generation = generation
            self.count = count
            self.pages = pages

    def __init__(self, columns: list[Column], source: GridSource, *, empty_text: str = "No records.",
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = columns
        self.source = source
        self.empty_text = empty_text
        self.row_count = 0
        self._pages: dict[int, list[GridRow]] = {}
        self._widths: list[int] = [c.width for c in columns]
        self._last_key: Any = object()
        self.sort_column: str | None = None  # shown in the header: ▲ ascending, ▼ descending
        self.sort_descending = False
        self._generation = 0  # a read started before the latest reload is dropped
        self._styles: dict[str, Style] = {}  # resolved cell style text -> its Style
        self._measured: dict[int, tuple[list[GridRow], list[int]]] = {}  # page -> (its rows, their widths)
        self._reading_ahead = False  # a read of the next pages is due after the next paint
        self._ahead_failed = -1  # the generation (see reload) whose read ahead met a database error

    # -- data ---------------------------------------------------------------

    @guarded
    def on_mount(self) -> None:
        self.reload(keep_key=False)

    def set_source(self, source: GridSource, keep_key: Any = None) -> None:
        """Read from another source (new filters, new sort): back at the top, or on keep_key's row."""
        self.source = source
        self.reload(keep_key=False, reset=True, key=keep_key)

    def _page(self, page_no: int) -> list[GridRow]:
        rows = self._pages.get(page_no)
        if rows is None:
            rows = self.source.fetch(page_no * PAGE, PAGE)
            # Memory stays flat however far one scrolls: the page furthest from this one goes.
            # (All of them went at once: the page on screen was read again a press later.)
            while len(self._pages) >= PAGES_HELD:
                del self._pages[max(self._pages, key=lambda held: abs(held - page_no))]
            self._pages[page_no] = rows
            if rows and any(c.flex for c in self.columns) and self.is_mounted:
                self.call_later(self._relayout)  # new text may want other widths
        return rows

    def _relayout(self) -> None:
        widths = self._widths
        self._update_virtual_size()
        if self._widths != widths:
            self.refresh()

    def row_at(self, index: int) -> GridRow | None:
        if index < 0 or index >= self.row_count:
            return None
        rows = self._page(index // PAGE)
        off = index % PAGE
        return rows[off] if off < len(rows) else None

    @property
    def cursor_row(self) -> GridRow | None:
        return self.row_at(self.cursor)

    @property
    def cursor_key(self) -> Any:
        row = self.cursor_row
        return row.key if row is not None else None

    def reload(self, keep_key: bool = True, reset: bool = False, key: Any = None) -> None:
        """Re-read the rows; the cursor stays on its record (or its place)."""
        if key is None and keep_key:
            key = self.cursor_key
        self._generation += 1
        invalidate = getattr(self.source, "invalidate", None)
        if invalidate is not None:
            invalidate()
        # Counted before the rows read are dropped: if the database is away, the grid
        # keeps showing what it showed.
        row_count = max(0, self.source.count())
        self._pages.clear()
        self._show(row_count, key, reset)

    def reload_in_background(self) -> None:
        """Re-read the rows in a worker thread (a live refresh of a grid that may be slow to
        read: a job of thousands of tasks, the history); the grid shows them when they are
        read, cursor and scroll kept. A source that cannot be read off the UI thread (no
        ``fresh()``) is read now."""
        fresh = getattr(self.source, "fresh", None)
        if fresh is None:
            self.reload(keep_key=True)
            return
        self._read_rows(fresh(), self._generation, self.cursor)

    @work(thread=True, exclusive=True, group="paged-grid-read")
    def _read_rows(self, source: GridSource, generation: int, around: int) -> None:
        try:
            with reading():
                count = max(0, source.count())
                pages = {p: source.fetch(p * PAGE, PAGE) for p in (around // PAGE - 1, around // PAGE,
                                                                   around // PAGE + 1)
                         if 0 <= p and p * PAGE < count}
        except Exception as exc:
            if not is_db_error(exc):
                raise
            self.app.post_message(ReadFailed(exc))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.RowsRead(source, generation, count, pages))

    @guarded
    def on_paged_grid_rows_read(self, message: RowsRead) -> None:
        if message.generation != self._generation:
            return  # the grid was reloaded (or its source replaced) meanwhile
        key = self.cursor_key
        self.source = message.source
        self._pages = dict(message.pages)
        self._ahead_failed = -1  # read: the database answers again
        self._show(message.count, key, reset=False)

    def _show(self, row_count: int, key: Any, reset: bool) -> None:
        """Show row_count rows (the pages read are in _pages), the cursor on key's row."""
        old_cursor = self.cursor
        self.row_count = row_count
        new_cursor = 0 if reset else min(old_cursor, max(0, self.row_count - 1))
        found = None
        if key is not None and self.row_count:
            found = self._find_near(key, 0 if reset else old_cursor)
            if found is None:
                found = self._index_of(key)
            if found is not None:
                new_cursor = found
        delta = new_cursor - old_cursor
        self._update_virtual_size()
        if reset:
            self.scroll_to(x=0, y=0, animate=False, immediate=True)
        elif delta:
            self.scroll_to(y=max(0, self.scroll_y + delta), animate=False, immediate=True)
        self._set_cursor(new_cursor)
        if reset and found is not None:  # the record sits a third down the view, not on the last line
            self.scroll_to(y=max(0, new_cursor - self._body_height // 3), animate=False, immediate=True)
        self.refresh()

    def _index_of(self, key: Any) -> int | None:
        index_of = getattr(self.source, "index_of", None)
        if index_of is None:
            return None
        found = index_of(key)
        if found is None or found >= self.row_count:
            return None
        row = self.row_at(found)
        return found if row is not None and row.key == key else None

    def _find_near(self, key: Any, around: int) -> int | None:
        page_no = around // PAGE
        for p in (page_no, page_no - 1, page_no + 1):
            if p < 0 or p * PAGE >= self.row_count:
                continue
            for i, row in enumerate(self._page(p)):
                if row.key == key:
                    return p * PAGE + i
        return None

    def move_to_key(self, key: Any) -> bool:
        """Put the cursor on the row with this key, wherever it is (if the source can say where)."""
        found = self._find_near(key, self.cursor)
        if found is None:
            found = self._find_near(key, 0)
        if found is None:
            found = self._index_of(key)
        if found is None:
            return False
        self._set_cursor(found)
        return True

    def set_sort(self, column: str | None, descending: bool) -> None:
        """Show the sort in the header (the source does the sorting)."""
        self.sort_column = column
        self.sort_descending = descending
        self.refresh()

    # -- layout -------------------------------------------------------------

    #: A flex column is never drawn wider than this for its content alone.
    MAX_FLEX = 60

    def _content_widths(self) -> list[int]:
        """Each flex column's longest text (and label) among the rows read, capped.

        Measured once a page (a page read is never changed, only replaced): each page
        read used to measure every page held again, up to 900 rows (2 ms of a
        page-down at 1,000,000 jobs; issue 17)."""
        needs = [cell_len(c.label) + 1 for c in self.columns]
        measured: dict[int, tuple[list[GridRow], list[int]]] = {}
        for page_no, rows in list(self._pages.items()):
            hit = self._measured.get(page_no)
            if hit is None or hit[0] is not rows:
                hit = (rows, self._rows_widths(rows))
            measured[page_no] = hit
            needs = [max(a, b) for a, b in zip(needs, hit[1], strict=True)]
        self._measured = measured  # holds the pages it measured: an id is never another list's
        return needs

    def _rows_widths(self, rows: list[GridRow]) -> list[int]:
        needs = [0] * len(self.columns)
        for row in rows:
            for i, column in enumerate(self.columns):
                if column.flex and i < len(row.cells):
                    text = row.cells[i]
                    if text:
                        needs[i] = max(needs[i], min(self.MAX_FLEX, cell_len(str(text))))
        return needs

    def _layout_widths(self, width: int) -> list[int]:
        """Column widths for ``width`` cells. Fixed columns keep theirs. Flex columns follow their
        content: when there is room each gets what its longest text needs (no text cut while room
        stands empty) and the rest is shared out. When there is less, each gets its nominal width
        and the room left is shared evenly (the short texts made whole, the longest take the
        rest). On a terminal too narrow for the columns up to the last ``essential`` one, the
        flex columns up to it give way (down to their ``least``) so that it stays in view."""
        widths = [c.width for c in self.columns]
        flex = [i for i, c in enumerate(self.columns) if c.flex]
        if not flex:
            return widths
        gaps = max(0, len(widths) - 1)
        room = width - gaps - sum(w for i, w in enumerate(widths) if i not in flex)
        needs = self._content_widths()
        want = {i: max(self.columns[i].least, needs[i]) for i in flex}
        if room >= sum(want.values()):
            for i in flex:
                widths[i] = want[i]
            share, extra = divmod(room - sum(want.values()), len(flex))
            for n, i in enumerate(flex):
                widths[i] += share + (1 if n < extra else 0)
            return widths
        left = room - sum(widths[i] for i in flex)
        if left >= 0:
            # The columns fit: the room left goes to the flex columns, evenly (the short texts
            # are made whole, the longest take the rest).
            self._fill(widths, flex, want, left)
            return widths
        essential = [i for i, c in enumerate(self.columns) if c.essential]
        if essential:
            # Too narrow: the flex columns up to the last essential one give way (down to their
            # least, in proportion) so that it stays in view; the columns after it scroll.
            last = essential[-1]
            excess = sum(widths[: last + 1]) + last - width
            before = [i for i in flex if i <= last]
            if excess > 0 and before:
                give = {i: widths[i] - self.columns[i].least for i in before}
                taken = [0] * len(widths)
                self._share(taken, give, min(excess, sum(give.values())))
                for i in before:
                    widths[i] -= taken[i]
        return widths

    @staticmethod
    def _fill(widths: list[int], columns: list[int], want: dict[int, int], amount: int) -> int:
        """Add up to ``amount`` cells to ``columns``, evenly, none beyond what it wants: the
        short texts are made whole and the longest ones take what is left. Returns what was added."""
        given = 0
        while given < amount:
            short = [i for i in columns if widths[i] < want[i]]
            if not short:
                break
            share = max(1, (amount - given) // len(short))
            for i in short:
                add = min(share, want[i] - widths[i], amount - given)
                widths[i] += add
                given += add
        return given

    @staticmethod
    def _share(widths: list[int], wants: dict[int, int], amount: int) -> None:
        """Add ``amount`` cells to ``widths``, in proportion to ``wants`` (never more than wanted)."""
        total = sum(wants.values())
        if total <= 0 or amount <= 0:
            return
        amount = min(amount, total)
        given = 0
        for i, want in wants.items():
            add = want * amount // total
            widths[i] += add
            given += add
        for i in wants:  # the remainder of the division, one by one
            if given >= amount:
                break
            widths[i] += 1
            given += 1

    def _update_virtual_size(self) -> None:
        width = self.scrollable_content_region.width or self.size.width or 80
        self._widths = self._layout_widths(width)
        total = sum(self._widths) + max(0, len(self._widths) - 1)
        self.virtual_size = Size(total, self.row_count + 1)

    def on_resize(self) -> None:
        self._update_virtual_size()
        self._scroll_cursor_visible()
        self.refresh()

    # -- rendering ----------------------------------------------------------

    def _cells_strip(self, cells: Sequence[str], base: Style, styles: dict[int, str] | None = None) -> Strip:
        segments: list[Segment] = []
        for i, width in enumerate(self._widths):
            text = cells[i] if i < len(cells) else ""
            text = "" if text is None else str(text)
            if cell_len(text) > width:
                text = set_cell_size(text, max(0, width - 1)) + "…" if width > 0 else ""
            else:
                if self.columns[i].align == "right":
                    text = " " * (width - cell_len(text)) + text
                else:
                    text = set_cell_size(text, width)
            style = base
            if styles and i in styles:
                style = base + self._style(styles[i])
            segments.append(Segment(text, style))
            if i < len(self._widths) - 1:
                segments.append(Segment(" ", base))
        return Strip(segments)

    def _style(self, text: str) -> Style:
        """A cell's style: rich style text whose ``$name`` words are the theme's colours."""
        words = []
        for word in text.split():
            if word.startswith("$"):
                value = self.app.theme_variables.get(word[1:], "")
                try:
                    word = Color.parse(value).hex
                except ColorParseError:
                    continue  # a colour this theme lacks: drawn without it
            words.append(word)
        resolved = " ".join(words)
        style = self._styles.get(resolved)  # parsed once per resolved text (the theme may change)
        if style is None:
            try:
                style = Style.parse(resolved)
            except StyleSyntaxError:
                style = Style()
            self._styles[resolved] = style
        return style

    def _header_labels(self) -> list[str]:
        labels = []
        for column, width in zip(self.columns, self._widths, strict=True):
            label = column.label
            if column.key == self.sort_column:
                arrow = "▼" if self.sort_descending else "▲"
                if cell_len(label) + 1 > width:
                    label = set_cell_size(label, max(0, width - 1))
                label = label.rstrip() + arrow
            labels.append(label)
        return labels

    def column_at(self, x: int) -> str | None:
        """The key of the column under screen column x of the grid."""
        x += int(self.scroll_x)
        left = 0
        for column, width in zip(self.columns, self._widths, strict=True):
            if left <= x < left + width + 1:
                return column.key
            left += width + 1
        return None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            style = self.get_component_rich_style("paged-grid--header")
            strip = self._cells_strip(self._header_labels(), style)
            return strip.crop_extend(scroll_x, scroll_x + width, style)
        index = scroll_y + y - 1
        if self.row_count == 0:
            if y == 1:
                style = self.get_component_rich_style("paged-grid--empty")
                return Strip([Segment(self.empty_text, style)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        try:
            row = self.row_at(index)
        except Exception as exc:  # the database went away since the rows were counted
            if not is_db_error(exc):
                raise
            self._pages.setdefault(index // PAGE, [])  # blank until the next reload, asked once
            self.app.post_message(ReadFailed(exc))  # reported after this drawing
            row = None
        if row is None:
            return Strip.blank(width, base)
        if index == self.cursor:
            style = self.get_component_rich_style("paged-grid--cursor")
            strip = self._cells_strip(row.cells, style)
            return strip.crop_extend(scroll_x, scroll_x + width, style)
        strip = self._cells_strip(row.cells, base, row.styles)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _read_ahead(self) -> None:
        """Once the view is painted, read the pages a page-up or page-down would show next:
        the key then waits for no read (at 1,000,000 jobs a page of 100 takes 2-3 ms)."""
        self._reading_ahead = False
        if not self.row_count or not self.is_mounted or self._ahead_failed == self._generation:
            return
        top, height = int(self.scroll_y), self._body_height
        first = max(0, top - height) // PAGE
        last = min(self.row_count - 1, top + 2 * height) // PAGE
        try:
            for page_no in range(first, last + 1):
                self._page(page_no)
        except Exception as exc:
            if not is_db_error(exc):
                raise
            # Left unread, and not read ahead again until the next reload: while the database
            # is away each key would wait for it. Drawing the rows, if they are shown, reports it.
            self._ahead_failed = self._generation

    # -- cursor -------------------------------------------------------------

    @property
    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_visible(self) -> None:
        top = int(self.scroll_y)
        h = self._body_height
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False, immediate=True)

    def _set_cursor(self, index: int, force: bool = False) -> None:
        index = max(0, min(index, self.row_count - 1)) if self.row_count else 0
        self.cursor = index
        self._scroll_cursor_visible()
        self.refresh()
        if not self._reading_ahead:
            self._reading_ahead = True
            self.call_after_refresh(self._read_ahead)
        key = self.cursor_key
        if force or key != self._last_key:
            self._last_key = key
            self.post_message(self.CursorMoved(self, index, key))

    @guarded
    def action_cursor_up(self) -> None:
        self._set_cursor(self.cursor - 1)

    @guarded
    def action_cursor_down(self) -> None:
        self._set_cursor(self.cursor + 1)

    @guarded
    def action_page_up(self) -> None:
        self._set_cursor(self.cursor - self._body_height)

    @guarded
    def action_page_down(self) -> None:
        self._set_cursor(self.cursor + self._body_height)

    @guarded
    def action_first(self) -> None:
        self._set_cursor(0)

    @guarded
    def action_last(self) -> None:
        self._set_cursor(self.row_count - 1)

    def action_scroll_left(self) -> None:
        self.scroll_to(x=max(0, self.scroll_x - 8), animate=False)

    def action_scroll_right(self) -> None:
        self.scroll_to(x=self.scroll_x + 8, animate=False)

    @guarded
    def on_click(self, event: Click) -> None:
        if event.y == 0:
            key = self.column_at(event.x)
            if key is not None:
                self.post_message(self.HeaderSelected(self, key))
        if event.y >= 1:
            self._set_cursor(int(self.scroll_y) + event.y - 1)
            self.focus()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
