"""Reading an uploaded CSV file: its encoding, its delimiter, its header row and first rows.

No database here: `campaigns/contacts_import.py` stores uploads and imports them with these.

- `UploadCheck` takes the file block by block as it is uploaded: the size limit, and the
  encoding (a byte order mark decides between UTF-8 and UTF-16 LE/BE; without one UTF-16 is
  recognised by its zero bytes, and text is UTF-8 until a byte proves it is not, then it is
  read as Windows-1252, which decodes every byte).
- `detect_delimiter` picks comma, semicolon or tab by parsing the first rows with each.
- `read_sample` finds the header row and the first rows for the mapping step.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from core.errors import TooLarge, ValidationError
from core.i18n import _, lazy_gettext

MAX_IMPORT_BYTES = 50 * 1024 * 1024
PREVIEW_ROWS = 5
PREVIEW_CELL = 200  # characters of a cell kept for the preview
SNIFF_CHARS = 64 * 1024
MAX_COLUMNS = 200
MAX_HEADER_NAME = 300

DELIMITERS = {",": lazy_gettext("comma"), ";": lazy_gettext("semicolon"),
              "\t": lazy_gettext("tab")}
DELIMITER_WORDS = {"comma": ",", "semicolon": ";", "tab": "\t", ",": ",", ";": ";", "\t": "\t"}

# label -> (Python codec, words). Labels are what jobs store and the API reports.
ENCODINGS = {
    "utf-8": ("utf-8", lazy_gettext("UTF-8")),
    "utf-8-sig": ("utf-8-sig", lazy_gettext("UTF-8 with a byte order mark")),
    "utf-16-le": ("utf-16-le", lazy_gettext("UTF-16 (Excel “Unicode text”)")),
    "utf-16-be": ("utf-16-be", lazy_gettext("UTF-16 big-endian (“Unicode text”)")),
    "windows-1252": ("cp1252", lazy_gettext("Windows-1252 (Western European)")),
}


def _c1_controls(exc: UnicodeError) -> tuple[str, int]:
    """Decode the five bytes Windows-1252 leaves undefined as C1 controls, as browsers do."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("lastmile-c1", _c1_controls)


def codec_for(label: str) -> tuple[str, str]:
    """Return (codec, errors handler) for an encoding label."""
    return ENCODINGS[label][0], "lastmile-c1" if label == "windows-1252" else "strict"


def not_csv(kind: str) -> ValidationError:
    return ValidationError(
        _("This is %(kind)s, not a CSV file. In your spreadsheet program choose "
          "File → Save as → “CSV UTF-8” (or CSV), then upload that file; nothing was imported.",
          kind=kind),
        fields={"file": _("is not a CSV text file")}, code="not_csv")


class UploadCheck:
    """Checks an upload block by block (size) and detects its encoding as it streams.

    A byte order mark decides (UTF-8, UTF-16 LE/BE); without one, UTF-16 is recognised by
    its zero bytes, and text is UTF-8 until a byte proves otherwise, then Windows-1252
    (which decodes every byte). A file that says it is UTF-8 or UTF-16 but is damaged is
    refused, with the line where it breaks.
    """

    def __init__(self) -> None:
        self.size = 0
        self.line = 1
        self.head = bytearray()
        self.label: str | None = None
        self.decoder: codecs.IncrementalDecoder | None = None

    def feed(self, block: bytes) -> None:
        self.size += len(block)
        if self.size > MAX_IMPORT_BYTES:
            raise TooLarge(_("The file is larger than %(mb)s MB; split it into smaller files.",
                             mb=MAX_IMPORT_BYTES // (1024 * 1024)))
        if self.label is None:
            self.head += block
            if len(self.head) < 4096:
                return
            block, self.head = bytes(self.head), bytearray()
            self._decide(block)
        self._decode(block)

    def _decide(self, head: bytes) -> None:
        if head.startswith(b"PK\x03\x04"):
            raise not_csv(_("a spreadsheet workbook (.xlsx) or a zip file"))
        if head.startswith(b"\xd0\xcf\x11\xe0"):
            raise not_csv(_("an Excel 97–2003 workbook (.xls)"))
        if head.startswith(b"\xef\xbb\xbf"):
            self.label = "utf-8-sig"
        elif head.startswith(b"\xff\xfe"):
            self.label = "utf-16-le"
        elif head.startswith(b"\xfe\xff"):
            self.label = "utf-16-be"
        else:
            sample = head[:4096]
            pairs = max(1, len(sample) // 2)
            even, odd = sample[0::2].count(0), sample[1::2].count(0)
            if odd > pairs * 0.3 and even < pairs * 0.05:
                self.label = "utf-16-le"
            elif even > pairs * 0.3 and odd < pairs * 0.05:
                self.label = "utf-16-be"
            else:
                self.label = "utf-8"
        self.decoder = codecs.getincrementaldecoder(ENCODINGS[self.label][0])("strict")

    def _decode(self, block: bytes, final: bool = False) -> None:
        if self.decoder is None:  # Windows-1252: every byte decodes
            return
        try:
            self.decoder.decode(block, final=final)
        except UnicodeDecodeError as exc:
            if self.label == "utf-8":
                self.label, self.decoder = "windows-1252", None
                return
            bad_line = self.line + self._newlines(block[: exc.start])
            raise ValidationError(
                _("The file says it is %(encoding)s text but is damaged near line %(line)s. "
                  "Export it again as “CSV UTF-8” and upload it; nothing was imported.",
                  encoding=ENCODINGS[self.label][1], line=bad_line),
                fields={"file": _("is damaged text")}, code="bad_encoding") from exc
        self.line += self._newlines(block)

    def _newlines(self, data: bytes) -> int:
        if self.label == "utf-16-le":
            return data.count(b"\n\x00")
        if self.label == "utf-16-be":
            return data.count(b"\x00\n")
        return data.count(b"\n")

    def finish(self) -> str:
        """Return the detected encoding label once the whole file has been fed."""
        if self.size == 0:
            raise ValidationError(_("The file is empty."), fields={"file": _("is empty")})
        if self.label is None:
            head, self.head = bytes(self.head), bytearray()
            self._decide(head)
            self._decode(head)
        self._decode(b"", final=True)
        assert self.label is not None
        return self.label


def check_import_file(stream: IO[bytes]) -> str:
    """Stream through an uploaded file once (size, encoding), rewind it; return the encoding.

    Runs before anything is written, so a too-large or damaged file changes nothing.
    """
    check = UploadCheck()
    while block := stream.read(64 * 1024):
        check.feed(block)
    label = check.finish()
    stream.seek(0)
    return label


def detect_delimiter(sample: str, complete: bool = True) -> str:
    """Pick the delimiter (comma, semicolon or tab) that splits the first rows consistently.

    Each candidate parses the sample with the csv module (so quoted fields holding the
    others do not mislead it); the winner gives the header at least two columns, then the
    same number of fields on most rows (80%), then on more rows, then more columns.
    """
    if not complete:
        cut = sample.rfind("\n")
        sample = sample[: cut + 1] if cut > 0 else sample
    best, best_score = ",", (False, False, 0.0, 0)
    for delimiter in DELIMITERS:
        counts: list[int] = []
        try:
            for record in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
                if "".join(record).strip():
                    counts.append(len(record))
                if len(counts) > 50:
                    break
        except csv.Error:
            continue
        if not counts:
            continue
        header, rest = counts[0], counts[1:]
        consistent = sum(1 for n in rest if n == header) / len(rest) if rest else 1.0
        score = (header >= 2, header >= 2 and consistent >= 0.8, consistent, header)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str] | None, str]]:
    """Yield (row number as a spreadsheet shows it, fields or None, csv error) per record."""
    row = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row += 1
            yield row, None, str(exc)
            continue
        row += 1
        yield row, fields, ""


def without_bom(lines: Iterable[str]) -> Iterator[str]:
    """The lines, the first without a byte order mark (UTF-16 decodes it as U+FEFF)."""
    iterator = iter(lines)
    first = next(iterator, None)
    return iter(()) if first is None else itertools.chain((first.lstrip("\ufeff"),), iterator)


@dataclass
class Sample:
    delimiter: str
    columns: list[str]
    rows: list[dict]  # [{"row": n, "cells": [...]}]


def read_sample(first: bytes, label: str, complete: bool, delimiter: str | None = None
                ) -> Sample:
    """Find the header row and the first rows in the file's first chunk."""
    codec, errors = codec_for(label)
    decoder = codecs.getincrementaldecoder(codec)(errors if errors != "strict" else "replace")
    text = decoder.decode(first, final=complete).lstrip("\ufeff")
    if delimiter is None:
        delimiter = detect_delimiter(text[:SNIFF_CHARS], complete and len(text) <= SNIFF_CHARS)
    if not complete:  # the last record may be cut by the chunk's end
        cut = text.rfind("\n")
        text = text[: cut + 1] if cut > 0 else ""
    header: list[str] | None = None
    rows: list[dict] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row, fields, _error in records(reader):
        if fields is None or not "".join(fields).strip():
            continue
        if header is None:
            header = [f.strip() for f in fields]
            continue
        rows.append({"row": row, "cells": [f[:PREVIEW_CELL] for f in fields]})
        if len(rows) >= PREVIEW_ROWS:
            break
    if header is None:
        raise ValidationError(_("The file has no header row."),
                              fields={"file": _("has no header row")}, code="bad_header")
    problems: dict[str, str] = {}
    if len(header) > MAX_COLUMNS:
        problems["file"] = _("has %(n)s columns; at most %(max)s can be imported",
                             n=len(header), max=MAX_COLUMNS)
    if any(len(h) > MAX_HEADER_NAME for h in header):
        problems["file"] = _("has a column name longer than %(max)s characters",
                             max=MAX_HEADER_NAME)
    if any("\x00" in h for h in header):
        problems["file"] = _("has a NUL character in its header row")
    if problems:
        raise ValidationError(_("The CSV header row is not usable; nothing was imported."),
                              fields=problems, code="bad_header")
    return Sample(delimiter, header, rows)
