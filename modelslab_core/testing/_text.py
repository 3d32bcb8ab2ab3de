"""Text helpers of the local server's deterministic model.

Pure functions: no I/O, no state. They read message contents, cut text at stop sequences or
word limits, split text into stream pieces, and pick values (numbers, quoted strings, names)
out of a user's words so that tool arguments and structured answers can be filled in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TextValues",
    "apply_stop",
    "attachment_kinds",
    "count_words",
    "extract_values",
    "first_words",
    "message_text",
    "split_pieces",
    "truncate_words",
]

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
_ATTACHMENT_KINDS = {
    "image_url": "image",
    "image": "image",
    "input_image": "image",
    "input_audio": "audio",
    "audio": "audio",
    "file": "file",
    "document": "file",
    "input_file": "file",
    "video": "video",
}

_WORD_RE = re.compile(r"\S+")
_PIECE_RE = re.compile(r"\s*\S+")
_LETTER_WORD_RE = re.compile(r"[^\W\d_](?:[\w\-]|['\u2019](?=\w))*")
_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?!\w)")
_QUOTED_RE = re.compile(
    r"(?<!\w)'([^'\n]+?)'(?!\w)|\"([^\"\n]+?)\""
    r"|\u201c([^\u201d\n]+?)\u201d|\u2018([^\u2019\n]+?)\u2019(?!\w)"
)
_ASSIGNMENT_RE = re.compile(
    r"(?<![\w.])([A-Za-z_][\w]*)\s*[=:]\s*(\"[^\"\n]*\"|'[^'\n]*'|[^\s,;)}\]]+)"
)
_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
_NUMBER_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_PRONOUNS = frozenset({"I", "I'm", "I'd", "I'll", "I've", "I\u2019m"})
_WEAK_LAST_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "it",
        "me",
        "you",
        "us",
        "them",
        "this",
        "that",
        "please",
        "now",
        "tool",
        "tools",
        "function",
        "functions",
        "json",
        "again",
        "than",
        "other",
        "nothing",
        "with",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "about",
        "is",
        "are",
        "be",
        "as",
        "what",
        "how",
        "use",
    }
)
_OPENER_WORDS = """
    what who whom whose where when why how which is are was were am do does did can could
    would will should shall may might must please tell give use using call get find show
    create make write list return let look search check compute calculate add generate
    explain describe summarize summarise translate say the a an this that these those it its
    my our your their his her we you they he she hello hi hey thanks thank now then and but
    so if in on at for from to with send set book fetch run answer provide extract convert
    multiply divide subtract sum count pick choose select help yes no ok okay also next first
    after before there here well hmm what's who's how's where's it's that's there's i'm
    respond reply apply compare draft plan schedule remind lookup query read open save update
    delete remove store buy order recommend suggest predict forecast estimate determine
"""
_OPENERS = frozenset(_OPENER_WORDS.split())
_SENTENCE_RE = re.compile(r"[^.!?\n]+")


def message_text(content: Any) -> str:
    """Return the text of a message ``content``: a string, or the joined text parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return message_text([content])
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                text = part.get("text")
                if (kind in _TEXT_PART_TYPES or kind is None) and isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)
    return str(content)


def attachment_kinds(content: Any) -> list[str]:
    """Return the kinds ("image", "audio", "file", "video") of a content list's non-text parts."""
    if not isinstance(content, list):
        return []
    kinds: list[str] = []
    for part in content:
        if isinstance(part, dict):
            kind = _ATTACHMENT_KINDS.get(str(part.get("type")))
            if kind is not None:
                kinds.append(kind)
    return kinds


def count_words(text: str | None) -> int:
    """Count whitespace-separated words (the local server's notion of a token)."""
    return len(text.split()) if text else 0


def first_words(text: str, limit: int) -> str:
    """Return the first ``limit`` words of ``text`` joined by single spaces."""
    return " ".join(text.split()[:limit])


def truncate_words(text: str, max_words: int | None) -> tuple[str, bool]:
    """Keep at most ``max_words`` words of ``text`` (original spacing); say whether it cut."""
    if max_words is None:
        return text, False
    for index, match in enumerate(_WORD_RE.finditer(text)):
        if index + 1 == max_words:
            end = match.end()
            cut = text[end:].strip() != ""
            return (text[:end], True) if cut else (text, False)
    if max_words <= 0:
        return "", bool(text.strip())
    return text, False


def apply_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first occurrence of any stop sequence; say whether it cut."""
    best = -1
    for stop in stops:
        if not stop:
            continue
        position = text.find(stop)
        if position != -1 and (best == -1 or position < best):
            best = position
    if best == -1:
        return text, False
    return text[:best], True


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized pieces whose concatenation is exactly ``text``."""
    pieces = _PIECE_RE.findall(text)
    consumed = sum(len(piece) for piece in pieces)
    if consumed < len(text):
        if pieces:
            pieces[-1] += text[consumed:]
        else:
            pieces.append(text[consumed:])
    return pieces


@dataclass(frozen=True, slots=True)
class TextValues:
    """Values found in a piece of user text, in the order they appear."""

    text: str
    numbers: tuple[float, ...] = ()
    quoted: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    last_word: str | None = None
    assignments: dict[str, str] = field(default_factory=dict)

    def mentions(self, word: str) -> int:
        """Return the position of the first whole-word mention of ``word`` (or -1)."""
        if not word:
            return -1
        match = re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", self.text, re.IGNORECASE)
        return match.start() if match else -1


def extract_values(text: str, exclude: Iterable[str] = ()) -> TextValues:
    """Pick numbers, quoted strings, capitalized names and a last word out of ``text``.

    ``exclude`` holds words (for example tool names) never to be used as string values.
    """
    excluded = {word.lower() for word in exclude}
    numbers = _numbers(text)
    quoted: list[str] = []
    for match in _QUOTED_RE.finditer(text):
        value = next(group for group in match.groups() if group is not None).strip()
        if value and value not in quoted:
            quoted.append(value)
    names = [name for name in _capitalized_runs(text, excluded) if name not in quoted]
    assignments: dict[str, str] = {}
    for match in _ASSIGNMENT_RE.finditer(text):
        raw = match.group(2)
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            raw = raw[1:-1]
        assignments.setdefault(match.group(1).lower(), raw)
    return TextValues(
        text=text,
        numbers=tuple(numbers),
        quoted=tuple(quoted),
        names=tuple(names),
        last_word=_last_word(text, excluded),
        assignments=assignments,
    )


def _numbers(text: str) -> list[float]:
    found: list[tuple[int, float]] = [
        (match.start(), float(match.group())) for match in _NUMBER_RE.finditer(text)
    ]
    found.extend(
        (match.start(), float(_NUMBER_WORDS[match.group(1).lower()]))
        for match in _NUMBER_WORD_RE.finditer(text)
    )
    found.sort(key=lambda item: item[0])
    return [value for _, value in found]


def _at_sentence_start(text: str, position: int) -> bool:
    before = text[:position].rstrip(" \t\"'\u201c\u2018([")
    return before == "" or before[-1] in ".!?:\n"


def _capitalized_runs(text: str, excluded: set[str]) -> list[str]:
    """Runs of capitalized words ("San Francisco, CA"), mid-sentence runs first.

    A sentence's first word is dropped when it is a common opener ("What", "Tell", "The");
    otherwise a run at a sentence start ("Alice is 30") ranks after mid-sentence runs.
    """
    runs: list[str] = []
    openers: list[str] = []
    current: list[re.Match[str]] = []

    def flush() -> None:
        words = list(current)
        current.clear()
        target = runs
        if words and _at_sentence_start(text, words[0].start()):
            if words[0].group().lower() in _OPENERS:
                words = words[1:]
            else:
                target = openers
        words = [word for word in words if word.group() not in _PRONOUNS]
        if len(words) == 1 and words[0].group().lower() in _WEAK_LAST_WORDS:
            words = []
        if words:
            run = text[words[0].start() : words[-1].end()]
            if run not in target:
                target.append(run)

    for match in _LETTER_WORD_RE.finditer(text):
        word = match.group()
        if not word[0].isupper() or word.lower() in excluded:
            flush()
            continue
        if current:
            gap = text[current[-1].end() : match.start()]
            joins = gap.strip(" ") == "" or (
                gap.strip() == "," and word.isupper() and len(word) <= 3
            )
            if not joins or "\n" in gap:
                flush()
        current.append(match)
    flush()
    return runs + [run for run in openers if run not in runs]


def _last_word(text: str, excluded: set[str]) -> str | None:
    """The last content word of the first sentence that has one (else of the whole text)."""
    for sentence in _SENTENCE_RE.findall(text):
        word = _last_content_word(sentence, excluded)
        if word is not None:
            return word
    words = [match.group() for match in _LETTER_WORD_RE.finditer(text)]
    words = [word for word in words if word.lower() not in excluded]
    return words[-1] if words else None


def _last_content_word(text: str, excluded: set[str]) -> str | None:
    words = [match.group().strip("'\u2019-") for match in _LETTER_WORD_RE.finditer(text)]
    words = [word for word in words if word and word.lower() not in excluded]
    for word in reversed(words):
        if word.lower() not in _WEAK_LAST_WORDS and len(word) > 1:
            return word
    return None
