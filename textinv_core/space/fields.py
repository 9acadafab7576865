"""What a visitor typed, checked before anything runs: one rule for every field of the app.

Every number, choice and text box of the web app is declared here once, as a `NumberField`,
`ChoiceField` or `TextField` with its label and what it allows. `parse()` turns whatever arrived
(a number from the page, a string or `None` from the API, text of any length) into the value the
library wants, or raises `FieldError` with one sentence that names the field, says what is wrong
and what is allowed: "Learning rate: “abc” is not a number; use a number from 0.00001 to 0.5
(default 0.005)." The app builds its widgets from the same declarations, so the page and the
checks can never disagree about a range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MAX_KEYWORD_CHARS = 40  # a keyword is one word: `<red-rocket>`; CLIP reads 77 tokens in all


class FieldError(ValueError):
    """A value a visitor typed that the app can't use; the message names the field."""


def format_number(value: float) -> str:
    """`5000`, `0.005`, `0.00001`: plain decimals, never `1e-05`, for messages and labels."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.10f}".rstrip("0").rstrip(".")


def _shown(raw: Any) -> str:
    """What the visitor sent, quoted and cut short, for a message."""
    text = str(raw)
    return f"“{text[:30]}…”" if len(text) > 30 else f"“{text}”"


def _is_empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip()) or (isinstance(raw, float) and math.isnan(raw))


@dataclass(frozen=True)
class NumberField:
    """A number between `minimum` and `maximum`; whole if `integer`, a multiple of `multiple_of`
    if given. `empty` is the value an empty box means; None makes the field required."""

    label: str
    minimum: float
    maximum: float
    default: float | None = None
    integer: bool = False
    multiple_of: int | None = None
    empty: float | None = None

    @property
    def allowed(self) -> str:
        kind = f"a multiple of {self.multiple_of}" if self.multiple_of else "a whole number" if self.integer else "a number"
        text = f"{kind} from {format_number(self.minimum)} to {format_number(self.maximum)}"
        return text if self.default is None else f"{text} (default {format_number(self.default)})"

    def parse(self, raw: Any) -> int | float:
        if _is_empty(raw):
            if self.empty is not None:
                return int(self.empty) if self.integer else float(self.empty)
            raise FieldError(f"{self.label}: empty; use {self.allowed}")
        value = self._number(raw)
        if not math.isfinite(value):
            raise FieldError(f"{self.label}: {_shown(raw)} is not a finite number; use {self.allowed}")
        if self.integer and not value.is_integer():
            raise FieldError(f"{self.label}: {_shown(raw)} is not a whole number; use {self.allowed}")
        if not self.minimum <= value <= self.maximum:
            side = "too small" if value < self.minimum else "too large"
            raise FieldError(f"{self.label}: {format_number(value)} is {side}; use {self.allowed}")
        if self.multiple_of and value % self.multiple_of:
            raise FieldError(f"{self.label}: {format_number(value)} is not a multiple of {self.multiple_of}; use {self.allowed}")
        return int(value) if self.integer else value

    def _number(self, raw: Any) -> float:
        """A float from a number or a numeric string; booleans and everything else are refused."""
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise FieldError(f"{self.label}: {_shown(raw)} is not a number; use {self.allowed}")
        try:
            return float(raw.strip()) if isinstance(raw, str) else float(raw)
        except (ValueError, OverflowError):
            raise FieldError(f"{self.label}: {_shown(raw)} is not a number; use {self.allowed}") from None


@dataclass(frozen=True)
class ChoiceField:
    """One of a fixed list of options (numbers may arrive as strings from the API: `"64"`)."""

    label: str
    options: tuple

    def parse(self, raw: Any) -> Any:
        for option in self.options:
            if raw == option or (isinstance(raw, str) and raw.strip() == str(option)):
                return option
        listed = ", ".join(str(option) for option in self.options)
        if _is_empty(raw):
            raise FieldError(f"{self.label}: empty; choose one of {listed}")
        raise FieldError(f"{self.label}: {_shown(raw)} is not one of the choices; choose one of {listed}")


@dataclass(frozen=True)
class TextField:
    """Text of at most `max_chars` characters, returned stripped; `required` refuses empty text."""

    label: str
    max_chars: int
    required: bool = False
    why: str = ""  # what to type, said when a required field is empty

    def parse(self, raw: Any) -> str:
        if raw is not None and not isinstance(raw, str):
            raise FieldError(f"{self.label}: expected text, not {_shown(raw)}")
        text = (raw or "").strip()
        if len(text) > self.max_chars:
            raise FieldError(f"{self.label}: {len(text):,} characters is too long; the limit is {self.max_chars:,}")
        if self.required and not text:
            raise FieldError(f"{self.label}: empty; {self.why or 'type something first'}")
        return text


@dataclass(frozen=True)
class FlagField:
    """A yes/no box (the API may send `true`/`false` as text, or 0/1)."""

    label: str

    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        if raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise FieldError(f"{self.label}: {_shown(raw)} is not true or false")


_KEYWORD = re.compile(r"^<?[\w.\-]+>?$")


def parse_keyword(raw: Any, label: str = "Keyword", required: bool = True) -> str:
    """A concept keyword: one word of letters, digits, `-`, `_` or `.`, optionally in `<...>`,
    with at least one letter or digit and at most MAX_KEYWORD_CHARS characters. Longer or odd
    keywords (`<>`, `<a b>`, an 80-character word) would read as several words in a prompt."""
    text = TextField(label, max_chars=10_000, required=required, why="type a keyword like <my-cat>").parse(raw)
    if not text:
        return text
    example = "like <red-rocket>"
    if len(text) > MAX_KEYWORD_CHARS:
        raise FieldError(f"{label}: {len(text)} characters is too long; use one word of at most {MAX_KEYWORD_CHARS}, {example}")
    if re.search(r"\s", text):
        raise FieldError(f"{label}: {_shown(text)} holds a space; use one word, {example}")
    if not _KEYWORD.match(text) or not re.search(r"[^\W_]", text):
        raise FieldError(
            f"{label}: {_shown(text)} is not a usable keyword; use letters, digits, '-', '_' or '.', "
            f"optionally inside < >, {example}"
        )
    return text

