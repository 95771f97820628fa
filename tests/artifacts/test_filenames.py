"""Safe file names, tested directly."""

from __future__ import annotations

import pytest

from artifacts.filenames import MAX_FILENAME_BYTES, safe_filename, storage_name, unique_names
from artifacts.languages import content_type_for, default_filename


class SafeFilenameTests:
    @pytest.mark.parametrize("raw", ["", "   ", "..", "../..", "/", "...", "\x00\x01", "\u202e"])
    def test_nothing_usable_gives_none(self, raw):
        assert safe_filename(raw) is None

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("report.md", "report.md"),
            ("  spaced name.txt  ", "spaced name.txt"),
            ("dir/sub/..\\x.py", "x.py"),
            ("file.txt. . ", "file.txt"),
            ("tab\there.txt", "tabhere.txt"),
            ("LPT1", "_LPT1"),
            ("aux.tar.gz", "_aux.tar.gz"),
            ("console.txt", "console.txt"),
            ("e\u0301te\u0301.md", "\u00e9t\u00e9.md"),  # decomposed accents are composed
            ("\ufb01le.txt", "file.txt"),  # the ligature is two letters after NFKC
        ],
    )
    def test_names_are_cleaned(self, raw, expected):
        assert safe_filename(raw) == expected

    def test_long_names_are_cut_on_a_character_boundary_keeping_the_extension(self):
        name = safe_filename("é" * 200 + ".md")

        assert name is not None and name.endswith(".md")
        assert len(name.encode()) <= MAX_FILENAME_BYTES
        name.encode().decode()  # still valid UTF-8


class StorageNameTests:
    @pytest.mark.parametrize(
        ("name", "stored"),
        [
            ("report final.pdf", "report_final.pdf"),
            ("café.txt", "cafe.txt"),
            ("★★.txt", "file.txt"),
            ("..", "file"),
            (".env", "file.env"),
            ("日本語.md", "file.md"),
        ],
    )
    def test_it_is_plain_ascii_never_hidden_and_never_empty(self, name, stored):
        assert storage_name(name) == stored

    def test_a_long_name_keeps_its_extension(self):
        assert storage_name("é" * 200 + ".csv").endswith(".csv")


class UniqueNamesTests:
    def test_repeats_get_a_number_before_the_extension(self):
        assert unique_names(["a.py", "a.py", "Dockerfile", "dockerfile", "a.py"]) == [
            "a.py",
            "a-2.py",
            "Dockerfile",
            "dockerfile-2",
            "a-3.py",
        ]

    def test_a_long_repeat_stays_within_the_length_limit(self):
        long = "x" * (MAX_FILENAME_BYTES - 3) + ".py"

        first, second = unique_names([long, long])

        assert second.endswith("-2.py") and len(second.encode()) <= MAX_FILENAME_BYTES and first != second


class LanguageTests:
    @pytest.mark.parametrize(
        ("language", "name"),
        [
            ("python", "script.py"),
            ("YAML", "config.yaml"),
            ("dockerfile", "Dockerfile"),
            ("", "file.txt"),
            ("brainfuck", "file.txt"),
        ],
    )
    def test_default_names(self, language, name):
        assert default_filename(language) == name

    @pytest.mark.parametrize(
        ("name", "content_type"),
        [("a.py", "text/x-python"), ("a.md", "text/markdown"), ("a.csv", "text/csv"), ("Makefile", "text/plain")],
    )
    def test_content_types(self, name, content_type):
        assert content_type_for(name) == content_type
