"""Incremental parsing of import files: bytes in, numbered rows (as API-shaped dicts) out.

Both parsers are fed decoded text piece by piece and keep only the unfinished record in
memory, so a 50 MiB file is parsed with flat memory. Row numbers are the line in the file
where the record starts (1-based; in CSV the header is line 1).
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.contacts.schemas import ATTRIBUTE_KEY_PATTERN

MAX_RECORD_CHARS = 1_048_576
CSV_FIELDS = ("email", "external_id", "phone", "timezone", "locale")
_ATTRIBUTE_COLUMN = re.compile(
    r"^attributes\.(" + ATTRIBUTE_KEY_PATTERN[1:-1] + r")(?::(string|number|boolean|json))?$"
)
_INTEGER = re.compile(r"^-?[0-9]{1,18}$")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


class ImportFileError(Exception):
    """The file cannot be read at all (encoding, header, runaway record): the import fails."""


@dataclass
class ParsedRow:
    row_number: int
    data: dict[str, Any] | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)


class RowParser(Protocol):
    def feed(self, text: str) -> list[ParsedRow]: ...

    def finish(self) -> list[ParsedRow]: ...


class Decoder:
    """UTF-8 (an initial BOM is dropped) decoded across chunk boundaries.

    On invalid bytes, `decode` returns the text before them and keeps the error;
    `raise_if_failed` then raises it, so the rows before the bad bytes are still parsed."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._offset = 0
        self._failure: ImportFileError | None = None

    def decode(self, data: bytes, final: bool = False) -> str:
        if self._failure is not None:
            return ""
        if self._offset == 0 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
            self._offset = len(codecs.BOM_UTF8)
        pending = bytes(self._decoder.getstate()[0])
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            position = self._offset - len(pending) + exc.start
            self._failure = ImportFileError(f"The file is not valid UTF-8 (near byte {position}).")
            valid = (pending + data)[: exc.start]
            return valid.decode("utf-8", errors="ignore")
        self._offset += len(data)
        return text

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure


_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")


class _Lines:
    """Splits fed text into complete lines, numbering them; keeps the unfinished tail.

    A line ends at CRLF, LF or a lone CR (old Mac exports), mixed freely within one file;
    each line keeps its own ending, so a quoted CSV field keeps the breaks it had. A CR at
    the end of a piece waits for the next one, which may start with its LF."""

    def __init__(self) -> None:
        self._tail = ""
        self.line = 0

    def feed(self, text: str) -> list[tuple[int, str]]:
        text = self._tail + text
        held = ""
        if text.endswith("\r"):
            text, held = text[:-1], "\r"
        parts = _LINE_BREAK.split(text)
        self._tail = parts.pop() + held
        if len(self._tail) > MAX_RECORD_CHARS:
            raise ImportFileError(
                f"Line {self.line + len(parts) // 2 + 1} is longer than {MAX_RECORD_CHARS} "
                "characters."
            )
        numbered = []
        for content, ending in zip(parts[::2], parts[1::2], strict=True):
            self.line += 1
            numbered.append((self.line, content + ending))
        return numbered

    def finish(self) -> list[tuple[int, str]]:
        tail, self._tail = self._tail, ""  # no break inside: at most a held final CR
        if not tail:
            return []
        self.line += 1
        return [(self.line, tail)]


class NdjsonParser:
    """One JSON object per line, in the shape of `POST /v1/contacts/upsert`."""

    def __init__(self) -> None:
        self._lines = _Lines()

    def feed(self, text: str) -> list[ParsedRow]:
        return [self._parse(n, line) for n, line in self._lines.feed(text) if line.strip()]

    def finish(self) -> list[ParsedRow]:
        return [self._parse(n, line) for n, line in self._lines.finish() if line.strip()]

    @staticmethod
    def _parse(number: int, line: str) -> ParsedRow:
        try:
            value = json.loads(line)
        except ValueError as exc:
            return ParsedRow(number, errors=[("row", f"not valid JSON: {exc}")])
        if not isinstance(value, dict):
            return ParsedRow(number, errors=[("row", "each line must be a JSON object")])
        return ParsedRow(number, data=value)


@dataclass(frozen=True)
class _Column:
    target: str  # a contact field, or an attribute key
    kind: str | None  # None for contact fields; string/number/boolean/json for attributes


class CsvParser:
    """RFC 4180 CSV with a header row: contact fields plus `attributes.<key>[:type]`."""

    def __init__(self) -> None:
        self._lines = _Lines()
        self._record = ""
        self._start = 0
        self._quotes = 0
        self._columns: list[_Column] | None = None
        self._header: list[str] = []

    def feed(self, text: str) -> list[ParsedRow]:
        return self._records(self._lines.feed(text))

    def finish(self) -> list[ParsedRow]:
        rows = self._records(self._lines.finish())
        if self._record:  # an unterminated quoted field runs to the end of the file
            record, self._record = self._record, ""
            if self._columns is None:
                self._read_header(record)
            else:
                rows.append(self._parse(self._start, record))
        if self._columns is None:
            raise ImportFileError("The file is empty: a CSV import needs a header row.")
        return rows

    def _records(self, lines: list[tuple[int, str]]) -> list[ParsedRow]:
        rows: list[ParsedRow] = []
        for number, line in lines:
            if not self._record:
                self._start = number
            self._record += line
            self._quotes += line.count('"')
            if len(self._record) > MAX_RECORD_CHARS:
                raise ImportFileError(
                    f"The record starting at line {self._start} is longer than "
                    f"{MAX_RECORD_CHARS} characters (an unterminated quote?)."
                )
            if self._quotes % 2:
                continue  # inside a quoted field: the record goes on
            record, self._record, self._quotes = self._record, "", 0
            if not record.strip():
                continue
            if self._columns is None:
                self._read_header(record)
            else:
                rows.append(self._parse(self._start, record))
        return rows

    def _read_header(self, record: str) -> None:
        try:
            names = [name.strip() for name in _cells(record)]
        except csv.Error as exc:
            raise ImportFileError(f"Bad CSV header: {exc}.") from exc
        columns: list[_Column] = []
        problems: list[str] = []
        for name in names:
            match = _ATTRIBUTE_COLUMN.match(name)
            if name in CSV_FIELDS:
                columns.append(_Column(name, None))
            elif match:
                columns.append(_Column(match.group(1), match.group(2) or "string"))
            else:
                problems.append(f"unknown column {name!r}")
        targets = [(c.kind is None, c.target) for c in columns]
        if len(set(targets)) != len(targets):
            problems.append("a column appears twice")
        if not {"email", "external_id"} & set(names):
            problems.append("an `email` or `external_id` column is required")
        if problems:
            raise ImportFileError(
                "Bad CSV header: "
                + "; ".join(problems)
                + f". Columns are {', '.join(CSV_FIELDS)} and attributes.<key>[:type] "
                "(type: string, number, boolean, json)."
            )
        self._header = names
        self._columns = columns

    def _parse(self, number: int, record: str) -> ParsedRow:
        assert self._columns is not None
        try:
            cells = _cells(record)
        except csv.Error as exc:
            return ParsedRow(number, errors=[("row", f"malformed CSV: {exc}")])
        if len(cells) > len(self._columns):
            return ParsedRow(
                number,
                errors=[("row", f"{len(cells)} cells for {len(self._columns)} columns")],
            )
        data: dict[str, Any] = {}
        attributes: dict[str, Any] = {}
        errors: list[tuple[str, str]] = []
        for column, name, cell in zip(self._columns, self._header, cells, strict=False):
            if cell == "":
                continue  # an empty cell keeps the stored value
            if column.kind is None:
                data[column.target] = cell
                continue
            try:
                attributes[column.target] = _typed(cell, column.kind)
            except ValueError as exc:
                errors.append((f"attributes.{column.target}", f"{name}: {exc}"))
        if attributes:
            data["attributes"] = attributes
        return ParsedRow(number, data=None if errors else data, errors=errors)


def _cells(record: str) -> list[str]:
    return next(csv.reader([record], strict=True), [])


def _typed(cell: str, kind: str) -> Any:
    if kind == "string":
        return cell
    if kind == "number":
        text = cell.strip()
        if _INTEGER.match(text):
            return int(text)
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{cell!r} is not a number") from None
    if kind == "boolean":
        try:
            return _BOOLEANS[cell.strip().lower()]
        except KeyError:
            raise ValueError(f"{cell!r} is not a boolean (true/false, yes/no, 1/0)") from None
    try:
        return json.loads(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not valid JSON") from None


def parser_for(file_format: str) -> RowParser:
    return CsvParser() if file_format == "csv" else NdjsonParser()
