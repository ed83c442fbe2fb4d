"""Avro schema compatibility without a registry: the rule for ``fv-avro`` is BACKWARD_TRANSITIVE.

:func:`check_backward_compatible` answers whether a *new* schema (the reader)
can read every record written with an *old* one (the writer), following Avro
schema resolution, plus two rules of this project:

- a field the new schema adds must have a default;
- a field the new schema drops must have had a default in the old one (so a
  consumer still on the old schema reads new records too);
- a type may change only by an Avro promotion (int -> long, float, double;
  long -> float, double; float -> double; string <-> bytes) or by widening into
  a union that holds the old type; a logical type must not change;
- records, enums and fixed types keep their full names (or list the old one in
  ``aliases``); an enum may only gain symbols (or have a default); a fixed keeps
  its size.

:func:`check_backward_transitive` applies it against every earlier version.
Both return the problems found, each with a path; an empty list means
compatible. Pure: schemas are plain JSON data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import fastavro

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_NO_DEFAULT = object()


def _parsed(schema: Any) -> tuple[Any, dict[str, Any]]:
    named: dict[str, Any] = {}
    return fastavro.parse_schema(schema, named, _write_hint=False), named


class _Checker:
    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self.reader_names = reader_names
        self.writer_names = writer_names

    def resolve(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names[schema]
        return schema

    @staticmethod
    def kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, str):
            return schema
        kind: str = schema["type"]
        return kind

    @staticmethod
    def logical(schema: Any) -> str | None:
        return schema.get("logicalType") if isinstance(schema, dict) else None

    def readable(self, reader: Any, writer: Any) -> bool:
        return not self.compare(reader, writer, "")

    def compare(self, reader: Any, writer: Any, path: str) -> list[str]:
        reader = self.resolve(reader, self.reader_names)
        writer = self.resolve(writer, self.writer_names)
        if isinstance(writer, list):
            problems: list[str] = []
            for index, branch in enumerate(writer):
                problems += self.compare(reader, branch, f"{path}<{index}>")
            return problems
        if isinstance(reader, list):
            if any(self.readable(branch, writer) for branch in reader):
                return []
            logical = self.logical(writer)
            old = self.kind(writer) + (f" ({logical})" if logical else "")
            return [f"{path}: the new union has no branch for the old type {old}"]
        return self._same_kind(reader, writer, path)

    def _same_kind(self, reader: Any, writer: Any, path: str) -> list[str]:
        old, new = self.kind(writer), self.kind(reader)
        if self.logical(reader) != self.logical(writer):
            return [f"{path}: logical type changed"]
        if old != new:
            promoted = new in PROMOTIONS.get(old, frozenset())
            return [] if promoted else [f"{path}: type changed from {old} to {new}"]
        if new == "record":
            return self._record(reader, writer, path)
        if new in ("array", "map"):
            key, mark = ("items", "[]") if new == "array" else ("values", "{}")
            return self.compare(reader[key], writer[key], f"{path}{mark}")
        return self._named(reader, writer, path) if new in ("enum", "fixed") else []

    def _named(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
        kind = reader["type"]
        if not self._same_name(reader, writer):
            return [f"{path}: {kind} renamed without an alias"]
        if kind == "enum":
            missing = set(writer["symbols"]) - set(reader["symbols"])
            if missing and "default" not in reader:
                return [f"{path}: enum symbols removed without a default"]
        elif reader["size"] != writer["size"]:
            return [f"{path}: fixed size changed"]
        return []

    @staticmethod
    def _same_name(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
        return bool(writer["name"] == reader["name"] or writer["name"] in reader.get("aliases", ()))

    def _record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
        where = path or reader["name"]
        if not self._same_name(reader, writer):
            return [f"{where}: record renamed without an alias"]
        old_fields = {f["name"]: f for f in writer["fields"]}
        problems: list[str] = []
        matched: set[str] = set()
        for field in reader["fields"]:
            names = (field["name"], *field.get("aliases", ()))
            old = next((old_fields[n] for n in names if n in old_fields), None)
            if old is None:
                if field.get("default", _NO_DEFAULT) is _NO_DEFAULT:
                    problems.append(f"{where}.{field['name']}: new field without a default")
                continue
            matched.add(old["name"])
            problems += self.compare(field["type"], old["type"], f"{where}.{field['name']}")
        for name, old in old_fields.items():
            if name not in matched and old.get("default", _NO_DEFAULT) is _NO_DEFAULT:
                problems.append(f"{where}.{name}: field removed that had no default")
        return problems


def check_backward_compatible(new: Any, old: Any) -> list[str]:
    """Why the ``new`` schema cannot read records written with ``old``; empty when it can."""
    reader, reader_names = _parsed(new)
    writer, writer_names = _parsed(old)
    return _Checker(reader_names, writer_names).compare(reader, writer, "")


def check_backward_transitive(new: Any, earlier: Iterable[Any]) -> list[str]:
    """:func:`check_backward_compatible` against every earlier version (oldest first)."""
    problems: list[str] = []
    for version, old in enumerate(earlier, start=1):
        problems += [f"v{version}: {p}" for p in check_backward_compatible(new, old)]
    return problems
