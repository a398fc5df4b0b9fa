"""Hot reads: the reads every update makes (the chat's language, the status cards, /seats), run
straight on the driver's connection.

A ``Hot`` statement is a SELECT built with SQLAlchemy Core and compiled by it once per dialect
(bound parameters, its type processing of values). Through SQLAlchemy's execution machinery (pool
checkout, events, cache key, result metadata) such a read cost many times what SQLite spent on the
statement itself (the figures: BENCHMARKS.md, "2026-12-01, second session: hot reads"). A
``HotReader`` runs them on a connection ``storage.db.Database.hot()`` hands it: on SQLite a plain
``sqlite3`` connection (read-only) in the loop's thread, each read one deferred transaction (one
snapshot); on PostgreSQL an asyncpg connection of its own (autocommit; asyncpg prepares and caches
the statements), sent again once on a new connection when it turns out dead.

The statements that restate a domain rule in SQL live in ``services.reads``, each beside its ORM
reference."""

from __future__ import annotations

import json
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, cast

from sqlalchemy import Select, String, literal_column
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement

# Any SELECT, whatever its columns (SQLAlchemy 2.1 types a Select by the tuple of its columns' types).
AnySelect = Select[*tuple[Any, ...]]


class Record(tuple[Any, ...]):
    """A named tuple whose fields are known only at run time (a statement's column keys, the rule
    profile's columns): ``record_type`` makes such classes. A field is read by name (``row.number``,
    typed ``Any``); a row is built by keyword or from values (``_make``), like any named tuple."""

    __slots__ = ()
    _fields: tuple[str, ...]

    if TYPE_CHECKING:  # (what the named tuple made by ``record_type`` provides at run time)
        def __new__(cls, *values: Any, **fields: Any) -> Self: ...

        def __getattr__(self, name: str) -> Any: ...

        @classmethod
        def _make(cls, values: Iterable[Any]) -> Self: ...

        def _asdict(self) -> dict[str, Any]: ...


def record_type(name: str, fields: Iterable[str], *, rename: bool = False) -> type[Record]:
    """A ``Record`` class of these fields: a ``collections.namedtuple`` (``rename``: a field name
    that is not an identifier becomes ``_<index>``) that is also a ``Record``."""
    return cast(type[Record], type(name, (namedtuple(name, fields, rename=rename), Record), {"__slots__": ()}))


@dataclass(frozen=True)
class _Plan:
    """A ``Hot`` statement compiled for one dialect."""

    sql: str
    # (parameter | None: a constant, value, processor)
    binds: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]
    row: type[Record]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, result processor)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        for name, value, process in self.binds:
            if name is not None:
                value = params[name]
            out.append(process(value) if process is not None else value)
        return out

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        make, processors = self.row._make, self.processors
        if not processors:
            return [make(r) for r in raw]
        out = []
        for r in raw:
            values = list(r)
            for i, process in processors:
                values[i] = process(values[i])
            out.append(make(values))
        return out


class Hot:
    """A Core SELECT for ``storage.db.Database.hot()``: compiled by SQLAlchemy once per dialect (its SQL,
    bound parameters and type processing), executed on the driver. Its rows are named tuples of
    the statement's column keys. Parameters are ``bindparam`` names; the statement's own literal
    values (``status == AppStatus.QUEUED``, ``coalesce(x, 0)``) are written into the SQL as
    literals by their type (``_inline_constants``), so that the server plans the statement once
    with them: PostgreSQL runs hot reads on a generic plan (``storage.db.Database._hot_pg_connect``), and a
    generic plan cannot match a partial index's WHERE to a parameter. IN lists that SQLAlchemy
    expands at execution (``in_()``) are refused when compiled: write ``or_()`` of comparisons
    instead."""

    def __init__(self, statement: AnySelect) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = self._compile(dialect)
        return plan

    def _compile(self, dialect: Dialect) -> _Plan:
        compiled = _inline_constants(self.statement, dialect).compile(dialect=dialect)
        sql = str(compiled)
        if "POSTCOMPILE" in sql or compiled.positiontup is None:
            raise ValueError("a hot statement cannot hold an expanding IN or non-positional parameters")
        binds = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            constant = not bind.required and bind.callable is None
            binds.append((None if constant else name, bind.value if constant else None,
                          bind.type.dialect_impl(dialect).bind_processor(dialect)))
        columns = list(self.statement.selected_columns)
        keys = list(self.statement.selected_columns.keys())
        processors = tuple((i, p) for i, col in enumerate(columns)
                           if (p := col.type.dialect_impl(dialect).result_processor(dialect, None)) is not None)
        return _Plan(sql, tuple(binds), record_type("HotRow", keys, rename=True), processors)


def _inline_constants(statement: AnySelect, dialect: Dialect) -> AnySelect:
    """``statement`` with each bound constant (a value written in the statement, not a
    ``bindparam`` name a caller fills) as a SQL literal rendered by its type for ``dialect``
    (escaped by SQLAlchemy's literal processors; they are the code's own constants, never a
    caller's value). A constant whose type renders no literal stays a bound value."""
    def literal(element: Any, **_kw: Any) -> Any:
        if isinstance(element, BindParameter) and not element.required and element.callable is None \
                and element.value is not None and not element.expanding:
            process = element.type.literal_processor(dialect)
            if process is not None:
                return literal_column(process(element.value), type_=element.type)
        return None

    # (replacement_traverse gives back an element of the type it was given: a copy of the SELECT)
    return cast(AnySelect, visitors.replacement_traverse(statement, {}, literal))


class json_rows(FunctionElement[str]):
    """SQL aggregate: the group's rows as one JSON text, an array of arrays of the given
    expressions (``json_group_array(json_array(...))`` on SQLite, ``json_agg(json_build_array(...))``
    on PostgreSQL). The order of the rows is not defined: carry a column to sort them by. An empty
    group gives ``[]`` on SQLite and NULL on PostgreSQL; ``json_rows_of`` reads either. It lets a
    correlated subquery bring a card's few child rows along in its one round trip."""

    type = String()
    name = "json_rows"
    inherit_cache = True


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: Any, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows, "postgresql")
def _json_rows_pg(element: json_rows, compiler: Any, **kw: Any) -> str:
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


def json_rows_of(value: str | None) -> list[list[Any]]:
    """The rows of a ``json_rows`` value."""
    return json.loads(value) if value else []


def _pg_connection_lost() -> tuple[type[BaseException], ...]:
    import asyncpg

    # (InternalClientError: a statement sent while the connection was taking in the server's
    # FATAL goodbye)
    return (asyncpg.exceptions.InterfaceError, asyncpg.exceptions.PostgresConnectionError,
            asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.InternalClientError, ConnectionError)


class HotReader:
    """One hot read: ``all``/``first`` run ``Hot`` statements in it (one snapshot on SQLite; on
    PostgreSQL each statement reads a committed snapshot of its own)."""

    def __init__(self, dialect: Dialect, sqlite: sqlite3.Connection | None = None, pg: Any = None,
                 reconnect: Callable[[], Any] | None = None) -> None:
        self.dialect, self._sqlite, self._pg, self._reconnect = dialect, sqlite, pg, reconnect

    async def all(self, hot: Hot, params: Mapping[str, Any] | None = None) -> list[Any]:
        plan = hot.plan(self.dialect)
        args = plan.args(params or {})
        if self._sqlite is not None:
            return plan.rows(self._sqlite.execute(plan.sql, args).fetchall())
        try:
            return plan.rows(await self._pg.fetch(plan.sql, *args))
        except _pg_connection_lost():
            if self._reconnect is None:
                raise
            # A kept connection the server dropped (a restart, an idle timeout): a read can be
            # sent again, once, on a new one.
            self._pg.terminate()
            self._pg = await self._reconnect()
            return plan.rows(await self._pg.fetch(plan.sql, *args))

    async def first(self, hot: Hot, params: Mapping[str, Any] | None = None) -> Any:
        rows = await self.all(hot, params)
        return rows[0] if rows else None


async def fetch_all(db: Any, hot: Hot, params: Mapping[str, Any]) -> list[Any]:
    """Rows of ``hot`` through a ``HotReader``, or through a SQLAlchemy session or connection
    (the same statement, SQLAlchemy's own execution)."""
    if isinstance(db, HotReader):
        return await db.all(hot, params)
    return list((await db.execute(hot.statement, params)).all())
