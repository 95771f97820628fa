"""Languages, file extensions and content types, shared by intent and extraction.

Pure data and lookups: no Django.
"""

from __future__ import annotations

import mimetypes

# A fence's language (as models write it, lower-cased) → the extension of a
# file in that language. Used to name a file the model did not name.
LANGUAGE_EXTENSIONS: dict[str, str] = {
    "python": "py",
    "py": "py",
    "python3": "py",
    "javascript": "js",
    "js": "js",
    "jsx": "jsx",
    "typescript": "ts",
    "ts": "ts",
    "tsx": "tsx",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "ini": "ini",
    "xml": "xml",
    "html": "html",
    "css": "css",
    "scss": "scss",
    "markdown": "md",
    "md": "md",
    "csv": "csv",
    "tsv": "tsv",
    "sql": "sql",
    "bash": "sh",
    "sh": "sh",
    "shell": "sh",
    "zsh": "sh",
    "powershell": "ps1",
    "ps1": "ps1",
    "bat": "bat",
    "dockerfile": "Dockerfile",
    "makefile": "Makefile",
    "make": "Makefile",
    "c": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "csharp": "cs",
    "cs": "cs",
    "c#": "cs",
    "java": "java",
    "kotlin": "kt",
    "go": "go",
    "golang": "go",
    "rust": "rs",
    "rs": "rs",
    "ruby": "rb",
    "rb": "rb",
    "php": "php",
    "lua": "lua",
    "perl": "pl",
    "r": "r",
    "swift": "swift",
    "scala": "scala",
    "haskell": "hs",
    "elixir": "ex",
    "dart": "dart",
    "vue": "vue",
    "svg": "svg",
    "tex": "tex",
    "latex": "tex",
    "text": "txt",
    "txt": "txt",
    "plaintext": "txt",
    "diff": "diff",
    "patch": "patch",
    "nginx": "conf",
    "conf": "conf",
    "env": "env",
    "graphql": "graphql",
    "proto": "proto",
    "protobuf": "proto",
    "terraform": "tf",
    "hcl": "tf",
}

# Base names for a file named after its language: "script.py", not "file.py".
_STEMS: dict[str, str] = {
    "py": "script",
    "js": "script",
    "ts": "script",
    "sh": "script",
    "ps1": "script",
    "bat": "script",
    "rb": "script",
    "pl": "script",
    "lua": "script",
    "php": "script",
    "md": "document",
    "tex": "document",
    "html": "index",
    "css": "styles",
    "scss": "styles",
    "sql": "query",
    "csv": "data",
    "tsv": "data",
    "json": "data",
    "xml": "data",
    "yaml": "config",
    "toml": "config",
    "ini": "config",
    "conf": "config",
    "env": "config",
    "diff": "changes",
    "patch": "changes",
}

# Extensions that are whole file names by convention.
_WHOLE_NAMES = {"Dockerfile", "Makefile"}

# Types mimetypes does not know everywhere, and text types it would guess as
# application/octet-stream; an artifact is always text the model wrote.
_CONTENT_TYPES: dict[str, str] = {
    ".py": "text/x-python",
    ".md": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".ts": "text/x-typescript",
    ".tsx": "text/x-typescript",
    ".jsx": "text/javascript",
    ".rs": "text/x-rust",
    ".go": "text/x-go",
    ".kt": "text/x-kotlin",
    ".sql": "application/sql",
    ".sh": "text/x-shellscript",
    ".ps1": "text/plain",
    ".env": "text/plain",
    ".tf": "text/plain",
    ".vue": "text/plain",
    ".proto": "text/plain",
    ".graphql": "application/graphql",
}


def extension_for(language: str) -> str | None:
    """The extension for a fence language, or None when it is not a known one."""
    return LANGUAGE_EXTENSIONS.get(language.strip().lower())


def default_filename(language: str) -> str:
    """A name for an unnamed file in ``language``: ``python`` → ``script.py``; unknown → ``file.txt``."""
    extension = extension_for(language) or "txt"
    if extension in _WHOLE_NAMES:
        return extension
    return f"{_STEMS.get(extension, 'file')}.{extension}"


def known_extensions() -> frozenset[str]:
    """Lower-case extensions (no dot) that a file the model writes may have."""
    return frozenset(ext.lower() for ext in LANGUAGE_EXTENSIONS.values() if ext not in _WHOLE_NAMES) | {
        "yml",
        "htm",
        "jsonl",
        "log",
        "cfg",
        "rst",
        "mjs",
        "cjs",
        "h",
        "hpp",
        "ipynb",
    }


def content_type_for(filename: str) -> str:
    """The MIME type of ``filename``; text/plain when unsure, since an artifact is text the model wrote."""
    lowered = filename.lower()
    suffix = "." + lowered.rsplit(".", 1)[1] if "." in lowered else ""
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(lowered, strict=False)[0] or "text/plain"
