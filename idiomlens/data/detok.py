"""Detokenise whitespace-tokenised sentences into natural text, keeping word offsets.

Corpora such as EPIE store each sentence as whitespace-separated tokens
(``He did n't spill the beans .``). Language models should see natural text
(``He didn't spill the beans.``), and analyses need the character span of every word
in that text. :func:`detokenize` does both at once: it decides, for each pair of
neighbouring words, whether a space separates them, and records where each word lands,
so character spans are exact by construction (``text[start:end]`` is the word).

Rules (applied left to right; the first word never gets a space before it):

* No space **before** closing punctuation ``, . ? ! ; : % ) ] } ...`` and closing
  quotes (``''``, ``”``, ``’``, ``»``), nor before the clitics ``n't 's 're 'll 've 'm 'd``
  (also with ``’``, any case): ``ca n't`` -> ``can't``, ``John 's`` -> ``John's``.
* No space **after** opening brackets and quotes ``( [ { `` “ ‘ «``, nor after a currency
  sign followed by a digit (``$ 5`` -> ``$5``).
* A straight ``"`` alternates between opening (space before, none after) and closing
  (none before), starting with opening. A standalone ``'`` closes an open single quote;
  otherwise it is a possessive attached to the left after a word ending in ``s``
  (``the boys ' toys`` -> ``the boys' toys``) and opens a quote anywhere else
  (``he said ' fine '`` -> ``he said 'fine'``).
* Hyphens and dashes that are separate tokens (``-``, ``--``, ``–``, ``—``) keep their
  spaces: tokenisers such as the BNC's keep hyphenated words whole, so a standalone
  hyphen is a dash (``late - as always - again``); we do not guess otherwise.
* Penn-Treebank escapes are turned back into characters: ```` `` ```` and ``''`` ->
  ``"``, ``-LRB-``/``-RRB-`` -> ``(``/``)``, ``-LSB-``/``-RSB-`` -> ``[``/``]``.
  Every other word is copied verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Detokenized", "detokenize"]

_PTB = {
    "``": '"',
    "''": '"',
    "-LRB-": "(",
    "-RRB-": ")",
    "-LSB-": "[",
    "-RSB-": "]",
    "-LCB-": "{",
    "-RCB-": "}",
}
_CLOSING = {",", ".", "?", "!", ";", ":", "%", ")", "]", "}", "...", "…", "”", "’", "»"}
_OPENING = {"(", "[", "{", "“", "‘", "«"}
_CLITICS = {"n't", "'s", "'re", "'ll", "'ve", "'m", "'d"}
_CLITICS |= {c.replace("'", "’") for c in _CLITICS}
_CURRENCY = {"$", "£", "€", "¥", "US$"}
_QUOTE_KIND = {'"': '"', "``": '"', "''": '"', "'": "'"}
_ASCII_SPACE = re.compile(r"[ \t\n\r\f\v]")


class Detokenized(NamedTuple):
    """Natural text and the ``(start, end)`` character span of every input word."""

    text: str
    spans: list[tuple[int, int]]


def detokenize(words: Sequence[str]) -> Detokenized:
    """Join whitespace tokens into natural text, returning each word's character span.

    Args:
        words: the tokens of one sentence (e.g. ``line.split(" ")``); none may be empty or
            contain ASCII whitespace (other characters, such as a no-break space inside a
            word, are copied verbatim).

    Returns:
        ``(text, spans)`` with ``len(spans) == len(words)``; ``text[s:e]`` is word ``i``
        (after the Penn-Treebank escapes listed in the module docstring are undone).

    >>> text, spans = detokenize('" I ca n\\'t , " he said ( twice ) .'.split())
    >>> text
    '"I can\\'t," he said (twice).'
    >>> text[slice(*spans[2])], text[slice(*spans[3])]
    ('ca', "n't")
    """
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    pos, prev = 0, ""
    glue_next = True  # no space before the first word
    open_quotes: set[str] = set()  # straight quote kinds currently open: '"' and/or "'"
    for i, raw in enumerate(words):
        if not raw or _ASCII_SPACE.search(raw):
            raise ValueError(f"word {i} is empty or contains whitespace: {raw!r}")
        word = _PTB.get(raw, raw)
        role = _quote_role(raw, prev, open_quotes, glue_next)
        if role == "open":
            glue_before, glue_after = glue_next, True
            open_quotes.add(_QUOTE_KIND[raw])
        elif role is not None:  # a closing quote or a possessive apostrophe
            glue_before, glue_after = True, False
            if role == "close":
                open_quotes.discard(_QUOTE_KIND[raw])
        else:
            closing = word in _CLOSING or word.lower() in _CLITICS
            glue_before, glue_after = glue_next or closing, word in _OPENING
        if pieces and not glue_before:
            pieces.append(" ")
            pos += 1
        spans.append((pos, pos + len(word)))
        pieces.append(word)
        pos += len(word)
        nxt = words[i + 1] if i + 1 < len(words) else ""
        glue_next = glue_after or (word in _CURRENCY and nxt[:1].isdigit())
        prev = raw
    return Detokenized("".join(pieces), spans)


def _quote_role(raw: str, prev: str, open_quotes: set[str], at_start: bool) -> str | None:
    """``"open"``, ``"close"``, ``"possessive"`` for straight/PTB quotes, else ``None``."""
    if raw == "``":
        return "open"
    if raw == "''":
        return "close"
    if raw == '"':
        return "close" if '"' in open_quotes else "open"
    if raw == "'":
        if "'" in open_quotes:
            return "close"
        if at_start or prev[-1:].lower() != "s":
            return "open"
        return "possessive"
    return None
