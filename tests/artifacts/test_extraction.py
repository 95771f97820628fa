"""Files found in a model's answer: names, several files, fences, exact content."""

from __future__ import annotations

import pytest

from artifacts.extraction import MAX_FILES_PER_ANSWER, extract_files

CODE = "def f(x):\n\tif x:\n        return [x, {'a': (1, 2)}]\n"


def names(text: str, **kwargs) -> list[str]:
    return [file.filename for file in extract_files(text, **kwargs).files]


def only(text: str, **kwargs):
    files = extract_files(text, **kwargs).files
    assert len(files) == 1, files
    return files[0]


class FenceInfoTests:
    @pytest.mark.parametrize(
        "info",
        [
            'python title="scraper.py"',
            "python title='scraper.py'",
            "python filename=scraper.py",
            "python:scraper.py",
            "scraper.py",
            "python scraper.py",
            "python {title=scraper.py}",
        ],
    )
    def test_the_name_on_the_opening_fence_is_read(self, info):
        file = only(f"Here you go:\n\n```{info}\n{CODE}```\n")

        assert file.filename == "scraper.py"
        assert file.content == CODE
        assert file.named_by == "fence"

    def test_the_language_comes_from_the_fence_or_the_names_extension(self):
        assert only('```python title="a.py"\nx\n```').language == "python"
        assert only("```a.yaml\nx: 1\n```").language == "yaml"

    def test_a_fence_with_only_a_language_is_not_a_file(self):
        assert names(f"```python\n{CODE}```\n") == []


class LineBeforeTests:
    @pytest.mark.parametrize(
        "line",
        [
            "**scraper.py**",
            "__scraper.py__",
            "File: scraper.py",
            "**File:** `scraper.py`",
            "Filename: scraper.py",
            "scraper.py:",
            "`scraper.py`:",
            "### scraper.py",
            "### `scraper.py`",
            "1. **scraper.py**",
            "- `scraper.py`",
            "`scraper.py`",
            "Save this as `scraper.py`:",
            "Use `requests` and `bs4` in `scraper.py`:",
        ],
    )
    def test_a_line_naming_the_file_just_before_the_fence(self, line):
        file = only(f"Sure.\n\n{line}\n\n```python\n{CODE}```\n")

        assert file.filename == "scraper.py"
        assert file.named_by == "line"
        assert file.content == CODE

    @pytest.mark.parametrize(
        "line",
        [
            "Here is how scraper.py works, run it with python:",
            "See https://example.com:",
            "e.g.",
            "Put `a.py` and `b.py` side by side:",
        ],
    )
    def test_prose_that_mentions_a_name_does_not_name_the_block(self, line):
        assert names(f"{line}\n```python\n{CODE}```\n") == []

    def test_the_line_before_is_not_taken_from_across_another_block(self):
        text = "**a.py**\n```python\nA\n```\n```python\nB\n```\n"

        assert [(f.filename, f.content) for f in extract_files(text).files] == [("a.py", "A\n")]


class CommentNameTests:
    @pytest.mark.parametrize(
        ("block", "name"),
        [
            ("```python\n# scraper.py\nimport x\n```", "scraper.py"),
            ("```js\n// app.js\nlet a = 1;\n```", "app.js"),
            ("```html\n<!-- index.html -->\n<p>hi</p>\n```", "index.html"),
            ("```sql\n-- schema.sql\ncreate table t (id int);\n```", "schema.sql"),
            ("```css\n/* site.css */\nbody {}\n```", "site.css"),
            ("```python\n# File: tools/run.py\npass\n```", "run.py"),
            ("```bash\n#!/usr/bin/env bash\n# deploy.sh\necho hi\n```", "deploy.sh"),
        ],
    )
    def test_a_first_line_comment_naming_the_file(self, block, name):
        file = only(block)

        assert file.filename == name
        assert file.named_by == "comment"
        assert block.split("\n", 1)[1].startswith(file.content.split("\n", 1)[0])  # the comment stays

    def test_a_comment_that_only_mentions_a_file_is_not_a_name(self):
        assert names("```python\n# see utils.py for helpers\npass\n```") == []


class SeveralFilesTests:
    def test_every_named_block_of_an_answer_is_a_file_in_order(self):
        text = (
            "Three files.\n\n**app.py**\n```python\nprint('app')\n```\n\n"
            '```yaml title="config.yaml"\nport: 8080\n```\n\n'
            "Install with:\n```bash\npip install flask\n```\n\n"
            "```js\n// static/app.js\nconsole.log(1)\n```\n"
        )

        files = extract_files(text, name_unnamed=True).files

        assert [f.filename for f in files] == ["app.py", "config.yaml", "app.js"]
        assert [f.content for f in files] == ["print('app')\n", "port: 8080\n", "// static/app.js\nconsole.log(1)\n"]

    def test_repeated_names_are_made_unique(self):
        text = "```a.py\n1\n```\n```a.py\n2\n```\n```A.py\n3\n```\n"

        assert names(text) == ["a.py", "a-2.py", "A-3.py"]


class NestedFenceTests:
    def test_a_four_backtick_block_keeps_the_inner_fences_as_content(self):
        inner = "# Usage\n\n```bash\npython run.py\n```\n\nDone.\n"
        text = f'````markdown title="README.md"\n{inner}````\n'

        file = only(text)

        assert file.filename == "README.md"
        assert file.content == inner

    def test_a_tilde_block_may_contain_backtick_fences(self):
        inner = "```\ncode\n```\n"

        assert only(f"~~~md notes.md\n{inner}~~~\n").content == inner

    def test_a_shorter_or_different_closing_fence_does_not_close_the_block(self):
        inner = "a\n```\n~~~~\nb\n"

        assert only(f"````text x.txt\n{inner}`````\n").content == inner

    def test_an_unclosed_block_runs_to_the_end_of_the_answer(self):
        assert only("```python title=a.py\nx = 1\ny = 2").content == "x = 1\ny = 2"

    def test_a_fence_indented_four_spaces_is_not_a_fence(self):
        assert names("    ```python title=a.py\n    x\n    ```\n") == []

    def test_an_indented_fence_loses_that_much_indentation_from_its_lines_as_commonmark_renders(self):
        text = "1. **a.py**\n\n   ```python\n   def f():\n       return 1\n  two\n   ```\n"

        assert only(text).content == "def f():\n    return 1\ntwo\n"

    def test_inline_code_with_backticks_in_the_info_string_is_not_a_fence(self):
        assert names("```a.py``` is the file\n") == []


class UnnamedFilesTests:
    def test_when_the_user_asked_for_files_unnamed_blocks_are_named_after_their_language(self):
        text = "```python\nprint(1)\n```\n```python\nprint(2)\n```\n```yaml\na: 1\n```\n```\nplain\n```\n"

        assert names(text, name_unnamed=True) == ["script.py", "script-2.py", "config.yaml", "file.txt"]
        assert [f.named_by for f in extract_files(text, name_unnamed=True).files] == ["language"] * 4

    def test_without_a_request_for_files_unnamed_blocks_stay_text(self):
        assert names("```python\nprint(1)\n```\n") == []

    def test_empty_blocks_are_skipped(self):
        assert names("```python\n\n  \n```\n", name_unnamed=True) == []


class OddNamesTests:
    @pytest.mark.parametrize(
        ("info", "expected"),
        [
            ('title="../../etc/passwd.txt"', "passwd.txt"),
            ('title="/etc/cron.d/evil.sh"', "evil.sh"),
            ('title="C:\\Windows\\system32\\x.bat"', "x.bat"),
            ('title=".bashrc.sh"', "bashrc.sh"),
            ('title="CON.txt"', "_CON.txt"),
            ('title="nul"', "_nul"),
            ('title="rep\u202eort.txt"', "report.txt"),
            ('title="\uff53\uff43\uff52\uff49\uff50\uff54\uff0e\uff50\uff59"', "script.py"),
            ('title="a<b>|c?.md"', "a_b__c_.md"),
            ('title="café.md"', "caf\u00e9.md"),
        ],
    )
    def test_names_are_made_safe(self, info, expected):
        assert only(f"```{info}\nx\n```\n").filename == expected

    def test_a_name_with_nothing_usable_left_falls_back_to_the_language(self):
        assert names('```python title="../.."\nx\n```\n') == ["script.py"]

    def test_a_very_long_name_is_shortened_keeping_the_extension(self):
        name = only(f'```python title="{"x" * 300}.py"\npass\n```').filename

        assert name.endswith(".py") and len(name.encode()) <= 120


class SizeLimitTests:
    def test_a_file_over_the_limit_is_left_out_with_a_note(self):
        big = "a" * 2_000_001
        text = f"```big.txt\n{big}\n```\n```small.txt\nok\n```\n"

        extraction = extract_files(text, max_bytes=1_000_000)

        assert [f.filename for f in extraction.files] == ["small.txt"]
        assert extraction.notes == [
            "big.txt is 2.0 MB, over the 1.0 MB limit for a file, so it was not saved as a file (its text is in the answer)."
        ]

    def test_the_limit_counts_utf8_bytes(self):
        assert extract_files("```a.txt\néé\n```", max_bytes=4).files == []
        assert len(extract_files("```a.txt\néé\n```", max_bytes=5).files) == 1

    def test_at_most_a_fixed_number_of_files_per_answer(self):
        text = "".join(f"```f{i}.txt\n{i}\n```\n" for i in range(MAX_FILES_PER_ANSWER + 2))

        extraction = extract_files(text)

        assert len(extraction.files) == MAX_FILES_PER_ANSWER
        assert len(extraction.notes) == 2


class ByteExactnessTests:
    @pytest.mark.parametrize(
        "content",
        [
            CODE,
            "    leading spaces\n\ttabs\t inside\n",
            "brackets [{(<>)}] and `ticks` and ~~ tildes\n",
            "\n\nblank lines first and last\n\n\n",
            "trailing spaces   \n\t\n",
            "unicode: ñ 漢字 🐍 \u200b\n",
            "a ``` inside a line is fine\n",
        ],
    )
    def test_content_is_exactly_what_the_model_wrote(self, content):
        assert only(f'```text title="a.txt"\n{content}```\n').content == content

    def test_crlf_line_endings_are_kept(self):
        text = '```python title="a.py"\r\ndef f():\r\n\treturn 1\r\n```\r\n'

        assert only(text).content == "def f():\r\n\treturn 1\r\n"

    def test_a_closed_block_ends_with_the_newline_of_its_last_line(self):
        assert only("```a.txt\nlast\n```").content == "last\n"
