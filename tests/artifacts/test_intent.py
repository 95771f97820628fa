"""Rules that decide whether the user asked for a file."""

from __future__ import annotations

import pytest

from artifacts.intent import FILE_INSTRUCTIONS, wants_files


class WantsFilesTests:
    @pytest.mark.parametrize(
        "text",
        [
            "Write a Python script that scrapes a page, save it as scraper.py",
            "Please create a file with the nginx config",
            "give me a .csv of the planets and their moons",
            "Summarise this as a markdown document",
            "Give me the config as YAML",
            "put the result in a file called report.md",
            "Can you write me two python files, one for the model and one for the CLI?",
            "export the table to out.tsv",
            "call it notes.txt",
            "Send it as an attachment please",
            "Make a downloadable document with the checklist",
            "Write it into a JSON file",
            "I need this in a YAML file.",
            "Generate a Dockerfile file for this app",
        ],
    )
    def test_explicit_wording_asks_for_a_file(self, text):
        assert wants_files(text)

    @pytest.mark.parametrize(
        "text",
        [
            "How do I create a file in Python?",
            "how to save as json with pandas",
            "What is a CSV file?",
            "Explain the difference between YAML and JSON",
            "Write a haiku about GPUs",
            "Why does my script crash when the file is missing?",
            "My profile.py keeps failing with a KeyError",
            "",
        ],
    )
    def test_questions_about_files_and_ordinary_chat_do_not(self, text):
        assert not wants_files(text)

    def test_a_request_after_a_question_in_another_sentence_still_counts(self):
        assert wants_files("How do I parse CSV? Show me, and save it as parse.py")

    def test_the_instructions_name_the_info_string_convention_extraction_reads(self):
        assert 'title="scraper.py"' in FILE_INSTRUCTIONS
