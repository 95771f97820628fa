"""Does the user want a file? Decided by rules, without a model call.

The reference system asked a model once or twice per message; explicit wording
is enough in practice ("save it as scraper.py", "give me a .csv", "as a
markdown document"), and the routing classifier can add a ``wants_file`` flag
from the structured answer it already makes. The rules here lean towards
precision: a question *about* files ("how do I create a file in Python?") is
not a request for one.

Pure: no Django.
"""

from __future__ import annotations

import re

from artifacts.languages import known_extensions

FILE_INSTRUCTIONS = (
    "The user wants one or more files. Put the complete content of each file in its own fenced code block, "
    'and name the file on the opening fence after the language, like ```python title="scraper.py"```. '
    "Use a plain file name without folders. Do not split one file across several blocks, and do not put "
    "anything but the file's content inside its block."
)

_EXTENSIONS = "|".join(sorted((re.escape(ext) for ext in known_extensions()), key=len, reverse=True))
# A file name as a user writes it: "scraper.py", "config.yaml", "my-notes.md".
_FILENAME = rf"[\w.-]*\w\.(?:{_EXTENSIONS})\b"

# Formats people ask for by name ("as YAML", "in a markdown document").
_FORMATS = (
    r"markdown|md|json|jsonl|yaml|yml|toml|csv|tsv|xml|html|css|sql|text|txt|plain[- ]text|python|javascript|"
    r"typescript|bash|shell|powershell|ini|svg|latex|tex|dockerfile|makefile|config|configuration"
)
_FILE_NOUN = r"(?:file|files|document|doc|attachment|download|script)"
_ARTICLE = r"(?:a|an|the|one|two|three|some|\d+|separate|individual|downloadable)"
_CREATE = r"(?:create|make|write|generate|produce|give|send|attach|export|save|put|output|dump|provide|build)"

_RULES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # "save it as scraper.py", "call it notes.md", "write it to out.csv", "in a file called x.py"
        rf"\b(?:save|store|write|put|export|dump|output)\b(?:\s+(?:it|this|that|them|the\s+\w+))?\s+(?:as|to|in|into)\s+[`'\"]?{_FILENAME}",
        rf"\b(?:call|name)\s+(?:it|the\s+file|them)\s+[`'\"]?{_FILENAME}",
        rf"\b{_FILE_NOUN}\s+(?:called|named)\s+[`'\"]?{_FILENAME}",
        # "create a file", "give me a csv file", "write me two python files", "make a downloadable document"
        rf"\b{_CREATE}\b(?:\s+(?:me|us|it))?\s+{_ARTICLE}(?:\s+[\w.+#-]+){{0,3}}?\s+{_FILE_NOUN}\b",
        # "as a markdown document", "in a YAML file", "into a .json file"
        rf"\b(?:as|in|into)\s+(?:an?\s+|the\s+)?\.?(?:{_FORMATS})\s+{_FILE_NOUN}\b",
        # "give me a .csv", "as a .json", "export to .xlsx"
        rf"(?:\b(?:a|an|as|in|into|to|the|me)\s+)\.(?:{_EXTENSIONS})\b",
        # "give me the config as YAML", "export the table as CSV"
        rf"\b(?:give|send|export|save|dump|provide|output)\b[^.?!\n]{{0,60}}?\bas\s+(?:an?\s+)?(?:{_FORMATS})\b",
        # "as a file", "as an attachment", "as files"
        r"\bas\s+(?:an?\s+)?(?:downloadable\s+)?(?:file|files|attachment|attachments|download)\b",
    )
)

# "How do I create a file…", "how to save as json": a question about files, not a request for one.
_QUESTION_ABOUT_FILES = re.compile(
    r"\bhow\s+(?:do|can|could|would|should|to|does|did)\b(?:\s+(?:i|we|you|one|it|someone))?[^.?!\n]*$",
    re.IGNORECASE,
)


def wants_files(text: str) -> bool:
    """True when ``text`` explicitly asks for one or more files."""
    for rule in _RULES:
        for match in rule.finditer(text):
            if not _QUESTION_ABOUT_FILES.search(text[: match.start()]):
                return True
    return False
