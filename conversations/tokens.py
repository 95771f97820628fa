"""How many tokens a text costs, estimated before a model has seen it. Pure: no Django state.

Ollama reports exact counts only after a request (``prompt_eval_count``), and
tiktoken fetches its tables from the network, so prompts are sized by this
estimate and then corrected per model by ``conversations.calibration``.

Byte-level BPE tokenizers (cl100k/o200k, and the Llama 3, Qwen, Mistral Tekken
and gpt-oss vocabularies built the same way) first cut text into pieces — a
word with its leading space, up to three digits, a run of punctuation, a run
of whitespace — and then merge the bytes of each piece into vocabulary
entries. So a text costs at least one token per piece, plus more for pieces
the vocabulary knows only in parts. The estimate follows that shape, piece by
piece, with a cost per kind of piece:

=====================  ==========================  =================================================
piece                  cost                        why
=====================  ==========================  =================================================
ASCII word             1 token per 7 letters       common English words are one token; long words
                       (rounded up)                and identifiers split into 2-3
other alphabetic word  1 token per 2 letters       Latin with accents, Greek, Cyrillic, Hebrew,
(U+00C0-U+06FF)                                    Arabic: 2-4 letters a token in cl100k
other scripts          1 token per character       Indic, Thai, Georgian, Ethiopic…: often more than
                                                   one token a character in cl100k
CJK, kana, Hangul      1 token per character       cl100k ~1.2 for Chinese, o200k ~0.8; calibration
                                                   brings it down for models that do better
emoji                  2 per pictograph, 1 per     4 UTF-8 bytes each; common ones are 1-2 tokens,
                       joiner/modifier             rare ones up to 4; ZWJ sequences add the joiners
digits                 1 token per 3 digits        the pre-tokenizers cut numbers into 1-3 digits
punctuation            1 token per 2 characters    code: ``):``, ``=>``, ``{`` are single tokens
whitespace             1 per line break, plus 1    indentation runs merge; a single space joins
                       per 4 spaces of indent      the next word at no cost
=====================  ==========================  =================================================

These ratios were chosen to err on the high side for both cl100k and o200k on
English prose, code, Chinese, Japanese, Korean, Russian, Hindi and emoji-heavy
text; ``python -m bench.tokens`` measures them (README, "Token estimates").
Overestimating costs a little context; underestimating makes Ollama silently
drop the start of the prompt, so the estimate leans high.
"""

from __future__ import annotations

import math
import re
import threading

# The kinds of piece, tried in this order at each position.
_PIECES = re.compile(
    "|".join(
        [
            # Han, kana, Hangul, CJK punctuation and full-width forms.
            r"(?P<hangul>[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7ff]+)",
            r"(?P<cjk>[\u2e80-\u2fdf\u3000-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff]+)",
            # Pictographs, symbols, flags, with their joiners, variation selectors and tags.
            r"(?P<emoji>[\u2190-\u21ff\u2300-\u23ff\u2460-\u27bf\u2900-\u297f\u2b00-\u2bff"
            r"\U0001f000-\U0001faff\u200d\ufe00-\ufe0f\u20e3\U000e0020-\U000e007f]+)",
            # Base64, hashes, keys: random letters and digits that no vocabulary merges well.
            r"(?P<blob>[A-Za-z0-9+/=]{32,})",
            r"(?P<ascii>(?:[^\w\s]|[ _])?[A-Za-z]+)",
            r"(?P<digits> ?\d+)",
            # Latin with accents, Greek, Cyrillic, Armenian.
            r"(?P<alphabetic> ?[\u00c0-\u058f\u1e00-\u1fff]+)",
            # Hebrew, Arabic, Syriac, Thaana: fewer merges in most vocabularies.
            r"(?P<abjad> ?[\u0590-\u07bf\ufb1d-\ufdff\ufe70-\ufeff]+)",
            # Every other script, with its combining marks (Indic vowel signs are not \w).
            r"(?P<letters> ?(?:[^\W\d_]|[\u0300-\u036f\u0900-\u0dff\u0e00-\u0fff\u1000-\u109f])+)",
            r"(?P<space>\s+)",
            r"(?P<punct> ?(?:[^\w\s]|_)+)",
        ]
    )
)
_JOINERS = re.compile(r"[\u200d\ufe00-\ufe0f\u20e3\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")

# Tokens per character of each kind of piece; every piece costs at least one token.
PER_CHAR = {
    "ascii": 1 / 6,
    "alphabetic": 1 / 2,
    "abjad": 4 / 5,
    "letters": 1.2,
    "hangul": 1.3,
    "cjk": 1.25,
    "digits": 1 / 3,
    "blob": 3 / 4,
    "punct": 1 / 2,
}
_WHOLE = frozenset({"ascii", "digits", "punct", "blob"})
EMOJI_TOKENS = 3  # a pictograph
JOINER_TOKENS = 1  # a zero-width joiner, variation selector, skin tone or tag
INDENT_SPACES_PER_TOKEN = 8


def _piece_cost(kind: str | None, piece: str) -> float:
    if kind == "space":
        if piece == " ":
            return 0  # joins the next word
        breaks = piece.count("\n")
        return breaks + -(-(len(piece) - breaks) // INDENT_SPACES_PER_TOKEN)
    if kind == "emoji":
        joiners = len(_JOINERS.findall(piece))
        return (len(piece) - joiners) * EMOJI_TOKENS + joiners * JOINER_TOKENS
    # A leading space joins a word, but stands alone before digits and punctuation.
    spaced = piece.startswith(" ")
    body = piece[1:] if spaced or (kind == "ascii" and not piece[0].isalpha()) else piece
    cost = len(body) * PER_CHAR[kind or "punct"]
    if kind in _WHOLE:
        cost = math.ceil(cost - 1e-9)  # the pre-tokenizer cuts these into whole pieces
    cost = max(1.0, cost)
    return cost + 1 if spaced and kind in ("digits", "punct") else cost


def _compute(text: str) -> float:
    return sum(_piece_cost(match.lastgroup, match.group()) for match in _PIECES.finditer(text))


# Estimates of recent texts by (length, hash): a worker builds the context of the same
# thread again and again, and pricing its turns piece by piece is what that costs most.
_CACHE: dict[tuple[int, int], float] = {}
_CACHE_SIZE = 50_000
_CACHE_FROM = 256  # characters; shorter texts are cheaper to price than to look up
_lock = threading.Lock()


def raw_estimate(text: str) -> float:
    """Tokens ``text`` costs by the table above, before any per-model calibration."""
    if len(text) < _CACHE_FROM:
        return _compute(text)
    key = (len(text), hash(text))
    cached = _CACHE.get(key)
    if cached is None:
        cached = _compute(text)
        with _lock:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))  # the oldest entry
            _CACHE[key] = cached
    return cached


def scaled(raw: float, ratio: float = 1.0) -> int:
    """A raw estimate in the model's tokens (``ratio``: ``conversations.calibration``), rounded up, at least 1."""
    return max(1, math.ceil(raw * ratio - 1e-9))


def estimate_tokens(text: str, *, ratio: float = 1.0) -> int:
    return scaled(raw_estimate(text), ratio)


def _costs(text: str) -> list[tuple[int, int, float]]:
    return [(m.start(), m.end(), _piece_cost(m.lastgroup, m.group())) for m in _PIECES.finditer(text)]


def _partial(start: int, end: int, cost: float, budget: float) -> int:
    """How many characters of a piece fit ``budget``, its cost spread evenly over them."""
    return int((end - start) * budget / cost) if cost > 0 else end - start


def head_within(text: str, budget: float) -> int:
    """The longest ``text[:n]`` whose raw estimate stays within ``budget``: returns n."""
    used = 0.0
    for start, end, cost in _costs(text):
        if used + cost > budget:
            return start + _partial(start, end, cost, budget - used)
        used += cost
    return len(text)


def tail_within(text: str, budget: float, *, start: int = 0) -> int:
    """The earliest n >= ``start`` whose ``text[n:]`` stays within ``budget``: returns n."""
    used = 0.0
    for begin, end, cost in reversed(_costs(text[start:])):
        if used + cost > budget:
            return start + end - _partial(begin, end, cost, budget - used)
        used += cost
    return start
