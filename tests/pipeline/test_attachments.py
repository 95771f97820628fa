"""Files users send: reading each type, refusing the rest, and what reaches the model."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import discord
import pytest
from asgiref.sync import async_to_sync
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from PIL import Image

from bots.client import TrollamaBot
from conversations.models import Attachment, Message, Request
from pipeline.attachments import (
    MB,
    Limits,
    Unreadable,
    Upload,
    check_upload,
    read_upload,
    upload_limit,
    upload_name,
)
from pipeline.processing import process_request
from pipeline.services import Refusal, submit_request
from routing.sync import sync_models
from tests import personas
from tests.conversations.files import blank_pdf, image, pdf_with_text

LIMITS = Limits(max_bytes=10 * MB, max_text_chars=1000, max_pdf_pages=2, max_image_side=256)


def read(name: str, data: bytes, content_type: str = "", limits: Limits = LIMITS):
    return read_upload(Upload(name, content_type, data), limits=limits)


def refusal(name: str, data: bytes, content_type: str = "") -> str:
    with pytest.raises(Unreadable) as caught:
        read(name, data, content_type)
    return caught.value.message


class TextFileTests:
    def test_utf8_code_is_read_as_is(self):
        source = "def f():\n\treturn 'héllo'  # ✓\n"

        result = read("f.py", source.encode())

        assert (result.kind, result.extracted_text, result.note) == ("text", source, "")

    def test_other_encodings_are_detected(self):
        table = "name;city\nJosé;Zürich\nFrançoise;Orléans\nMüller;Köln\n" * 5

        result = read("people.csv", table.encode("cp1252"), "text/csv")

        assert result.extracted_text == table

    def test_long_text_is_cut_with_a_note(self):
        result = read("notes.md", ("word " * 1000).encode())

        assert len(result.extracted_text) == 1000
        assert result.note == "Only the first 1,000 of 5,000 characters of this file were read."

    def test_binary_data_named_txt_is_refused(self):
        message = refusal("notes.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)

        assert message == (
            "I can't use notes.txt: it is named like a text file but holds binary data. Send the original file instead."
        )

    def test_an_empty_file_is_refused(self):
        assert refusal("empty.txt", b"") == "I can't use empty.txt: the file is empty."


class PdfTests:
    def test_its_text_is_read_page_by_page(self):
        result = read("report.pdf", pdf_with_text("Revenue grew 12%", "Costs fell"), "application/pdf")

        assert result.kind == "pdf"
        assert result.extracted_text == "--- Page 1 ---\nRevenue grew 12%\n\n--- Page 2 ---\nCosts fell"
        assert result.note == ""

    def test_pages_past_the_limit_are_not_read_and_the_note_says_so(self):
        result = read("long.pdf", pdf_with_text("one", "two", "three"))

        assert "three" not in result.extracted_text
        assert result.note == "Only the first 2 of 3 pages were read."

    def test_a_pdf_without_text_gets_a_clear_message(self):
        message = refusal("scan.pdf", blank_pdf())

        assert message.startswith("I can't use scan.pdf: the PDF has no text I can extract")
        assert "Send the pages as images" in message

    def test_a_malformed_pdf_gets_a_clear_error(self):
        message = refusal("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R\ngarbage")

        assert message == "I can't use broken.pdf: the PDF is damaged or not really a PDF, so I couldn't read it."


class ImageTests:
    def test_a_small_image_is_kept_as_sent(self):
        data = image(64, 48)

        result = read("cat.png", data, "image/png")

        assert (result.kind, result.data, result.content_type, result.note) == ("image", data, "image/png", "")

    def test_a_large_image_is_scaled_down_to_the_maximum_side(self):
        result = read("photo.jpg", image(2000, 1000, format="JPEG"), "image/jpeg")

        scaled = Image.open(io.BytesIO(result.data))
        assert scaled.size == (256, 128)
        assert result.note == "Scaled from 2000x1000 to 256x128."

    def test_a_damaged_image_is_refused(self):
        message = refusal("cat.png", image()[:40])

        assert message == "I can't use cat.png: the image is damaged or not really an image, so I couldn't read it."


class ScreeningTests:
    def test_an_oversized_file_is_refused_with_both_sizes(self):
        with pytest.raises(Unreadable) as caught:
            check_upload(filename="big.pdf", content_type="application/pdf", size=12 * MB, max_bytes=10 * MB)

        assert caught.value.message == "I can't use big.pdf: it is 12 MB and the limit is 10 MB."

    @pytest.mark.parametrize(
        ("name", "content_type", "described"),
        [("setup.exe", "application/x-msdownload", "a .exe file"), ("archive.zip", "", "a .zip file")],
    )
    def test_anything_else_is_refused_with_the_reason(self, name, content_type, described):
        with pytest.raises(Unreadable) as caught:
            check_upload(filename=name, content_type=content_type, size=10, max_bytes=MB)

        assert f"I only read images, PDFs, and text or code files, and {described} is none of those" in str(
            caught.value.message
        )

    def test_the_limit_never_exceeds_the_discord_servers_upload_limit(self):
        assert upload_limit(max_mb=10) == 10 * MB
        assert upload_limit(max_mb=10, platform_limit=8 * MB) == 8 * MB
        assert upload_limit(max_mb=10, platform_limit=100 * MB) == 10 * MB


@pytest.mark.django_db
class SubmitWithAttachmentsTests:
    def test_files_are_stored_with_their_text_and_an_expiry(self, settings):
        settings.UPLOAD_CLEANUP_HOURS = 1
        user = personas.discord_user()
        upload = Upload("notes.md", "text/markdown", b"# Plan\n- ship it\n")

        submission = submit_request(
            user=user, thread=personas.thread_of(user), content="", attachments=[upload], enqueue=False
        )

        attachment = Attachment.objects.get()
        assert attachment.message == submission.request.message
        assert (attachment.kind, attachment.filename, attachment.size) == ("text", "notes.md", 17)
        assert attachment.extracted_text == "# Plan\n- ship it\n"
        assert attachment.expires_at == attachment.message.created_at + timedelta(hours=1)
        with attachment.file.open("rb") as handle:
            assert handle.read() == upload.data

    def test_a_file_that_cannot_be_used_is_left_out_and_named_in_a_notice(self):
        user = personas.discord_user()
        good = Upload("a.txt", "text/plain", b"fine")
        bad = Upload("scan.pdf", "application/pdf", blank_pdf())

        submission = submit_request(
            user=user, thread=personas.thread_of(user), content="read these", attachments=[good, bad], enqueue=False
        )

        request = Request.objects.get(pk=submission.request.pk)
        assert [a.filename for a in Attachment.objects.all()] == ["a.txt"]
        [notice] = request.notices
        assert (notice["code"], notice["file"]) == ("file_refused", "scan.pdf")
        assert notice["reason"].startswith("the PDF has no text")

    def test_a_message_of_only_unusable_files_is_refused_naming_the_first_and_nothing_is_stored(self):
        user = personas.discord_user()
        bad = Upload("scan.pdf", "application/pdf", blank_pdf())

        with pytest.raises(Refusal) as caught:
            submit_request(user=user, thread=personas.thread_of(user), content="  ", attachments=[bad])

        assert caught.value.message.startswith("I can't use scan.pdf: the PDF has no text")
        assert not Message.objects.exists() and not Attachment.objects.exists()

    def test_a_path_in_the_filename_is_dropped(self):
        user = personas.discord_user()

        submit_request(
            user=user,
            thread=personas.thread_of(user),
            content="x",
            attachments=[Upload("../../etc/passwd.txt", "", b"hi")],
            enqueue=False,
        )

        attachment = Attachment.objects.get()
        assert attachment.filename == "passwd.txt"
        assert ".." not in attachment.file.name and attachment.file.name.startswith("uploads/")

    @pytest.mark.parametrize(
        ("raw", "content_type", "filename"),
        [
            ("..", "text/plain", "upload.txt"),
            ("notes\x00\u202etxt.exe.md", "", "notestxt.exe.md"),
            (".env", "", "env"),
            ("x" * 300 + ".py", "", "x" * 117 + ".py"),
        ],
    )
    def test_hostile_names_are_stored_cleaned_never_hidden_or_raising(self, raw, content_type, filename):
        user = personas.discord_user()

        submit_request(
            user=user,
            thread=personas.thread_of(user),
            content="x",
            attachments=[Upload(raw, content_type, b"KEY=value\n")],
            enqueue=False,
        )

        attachment = Attachment.objects.get()
        assert attachment.filename == filename
        stored = attachment.file.name.rsplit("/", 1)[-1]
        assert not stored.startswith(".") and ".." not in attachment.file.name
        with attachment.file.open("rb") as handle:
            assert handle.read() == b"KEY=value\n"  # the file keeps its exact bytes


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ModelSeesAttachmentsTests:
    def test_nul_and_bidi_characters_in_a_name_never_reach_the_model(self, fake_ollama):
        fake_ollama.script("Seen.")
        user = personas.discord_user()
        request = submit_request(
            user=user,
            thread=personas.thread_of(user),
            content="read it",
            attachments=[Upload("evil\x00\u202egpj.txt", "text/plain", b"hello")],
            enqueue=False,
        ).request

        process_request(request_id=request.pk)

        content = fake_ollama.chats[-1].body["messages"][-1]["content"]
        assert "[File: evilgpj.txt]" in content
        assert "\x00" not in content and "\u202e" not in content

    def test_a_refused_file_is_still_named_after_the_context_is_built(self, fake_ollama):
        fake_ollama.script("No file.")
        user = personas.discord_user()
        submission = submit_request(
            user=user,
            thread=personas.thread_of(user),
            content="what is this?",
            attachments=[Upload("tool.exe", "application/x-msdownload", b"MZ")],
            enqueue=False,
        )

        process_request(request_id=submission.request.pk)

        request = Request.objects.get(pk=submission.request.pk)
        assert request.status == Request.Status.DONE
        assert [n["code"] for n in request.notices if n["code"] == "file_refused"] == ["file_refused"]

    def test_a_model_known_to_have_no_vision_gets_the_images_name_not_the_image(self, fake_ollama):
        sync_models()  # the fake's gpt-oss:20b reports no vision
        fake_ollama.script("I can't see images.")
        user = personas.discord_user()
        request = submit_request(
            user=user,
            thread=personas.thread_of(user),
            content="what is this?",
            route_slug="general",
            attachments=[Upload("red.png", "image/png", image(32, 32))],
            enqueue=False,
        ).request

        process_request(request_id=request.pk)

        request.refresh_from_db()
        assert request.status == Request.Status.DONE, request.error
        last = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].body["messages"][-1]
        assert "images" not in last and "[Image: red.png]" in last["content"]
        assert {"code": "images_unseen", "count": 1, "model": request.model} in request.notices

    def test_an_image_reaches_a_vision_model_in_the_images_field(self, fake_ollama):
        fake_ollama.script("A red rectangle.")
        user = personas.discord_user()
        picture = image(32, 32)
        request = submit_request(
            user=user,
            thread=personas.thread_of(user),
            content="what is this?",
            attachments=[Upload("red.png", "image/png", picture)],
            enqueue=False,
        ).request

        process_request(request_id=request.pk)

        request.refresh_from_db()
        assert request.status == Request.Status.DONE, request.error
        assert (request.route.slug, request.route_method) == ("vision", "vision")  # the router saw the image
        chat = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1]
        last = chat.body["messages"][-1]
        assert last["images"] == [base64.b64encode(picture).decode()]
        assert last["content"] == "what is this?\n\n[Image: red.png]"
        assert chat.images == [base64.b64encode(picture).decode()]

    def test_a_pdfs_text_reaches_the_model_with_its_filename(self, fake_ollama):
        fake_ollama.script("It grew 12%.")
        user = personas.discord_user()
        request = submit_request(
            user=user,
            thread=personas.thread_of(user),
            content="how much did revenue grow?",
            attachments=[Upload("report.pdf", "application/pdf", pdf_with_text("Revenue grew 12%"))],
            enqueue=False,
        ).request

        process_request(request_id=request.pk)

        content = fake_ollama.chats[-1].body["messages"][-1]["content"]
        assert content.startswith("how much did revenue grow?\n\n[File: report.pdf]\n--- Page 1 ---\nRevenue grew 12%")
        assert "images" not in fake_ollama.chats[-1].body["messages"][-1]


class UploadNameTests:
    """Uploads are named by the same cleaning path as artifacts (artifacts.filenames)."""

    @pytest.mark.parametrize(
        ("raw", "content_type", "expected"),
        [
            ("..", "text/plain", "upload.txt"),
            ("../..", "", "upload"),
            ("notes\x00.txt", "", "notes.txt"),
            ("invoice\u202egpj.exe.txt", "", "invoicegpj.exe.txt"),
            (".env", "", "env"),
            ("../../etc/passwd.txt", "", "passwd.txt"),
        ],
    )
    def test_the_name_is_cleaned(self, raw, content_type, expected):
        assert upload_name(raw, content_type) == expected

    def test_a_300_character_name_keeps_its_extension(self):
        name = upload_name("a" * 300 + ".py", "")

        assert name.endswith(".py") and len(name.encode()) <= 120

    def test_a_dot_env_file_is_read_as_text(self):
        result = read(".env", b"DEBUG=false\n")

        assert (result.kind, result.filename, result.extracted_text) == ("text", "env", "DEBUG=false\n")

    def test_a_name_of_only_dots_without_a_type_is_refused_in_words(self):
        message = refusal("..", b"data")

        assert message.startswith("I can't use upload: I only read images, PDFs, and text or code files")

    def test_a_refusal_never_repeats_control_or_bidi_characters(self):
        with pytest.raises(Unreadable) as caught:
            check_upload(filename="big\u202e\x00.txt", content_type="", size=11 * MB, max_bytes=10 * MB)

        assert caught.value.message.startswith("I can't use big.txt: it is 11 MB")


def fake_discord_attachment(filename: str, data: bytes, content_type: str | None = None) -> SimpleNamespace:
    async def read_bytes() -> bytes:
        return data

    return SimpleNamespace(filename=filename, content_type=content_type, size=len(data), read=read_bytes)


def fake_dm(*attachments: SimpleNamespace) -> mock.Mock:
    message = mock.Mock(spec=discord.Message)
    message.channel = mock.Mock(spec=discord.DMChannel)
    message.channel.id = 777
    message.channel.type = discord.ChannelType.private
    message.author = SimpleNamespace(id=1001, name="alice", display_name="Alice", bot=False)
    message.type = discord.MessageType.default
    message.mentions = []
    message.role_mentions = []
    message.guild = None
    message.id = 9001
    message.content = "look at this"
    message.attachments = list(attachments)
    message.reply = mock.AsyncMock()
    return message


@pytest.mark.django_db
class DiscordAttachmentTests:
    def test_an_unsupported_file_alone_is_refused_in_a_reply_naming_it_and_nothing_is_stored(self):
        message = fake_dm(fake_discord_attachment("tool.exe", b"MZ\x90\x00", "application/x-msdownload"))
        message.content = ""

        async_to_sync(TrollamaBot().on_message)(message)

        text = message.reply.await_args.args[0]
        assert text.startswith("I can't use tool.exe: I only read images, PDFs, and text or code files")
        assert not Message.objects.exists()

    def test_an_unsupported_file_beside_text_is_left_out_and_named_under_the_answer(self):
        attachment = fake_discord_attachment("tool.exe", b"MZ\x90\x00", "application/x-msdownload")
        attachment.read = mock.AsyncMock()
        message = fake_dm(attachment, fake_discord_attachment("main.py", b"x = 1\n"))
        message.channel.typing = mock.MagicMock()

        async_to_sync(TrollamaBot().on_message)(message)

        message.reply.assert_not_awaited()
        attachment.read.assert_not_awaited()
        request = Request.objects.get()
        assert request.message.content == "look at this"
        assert [a.filename for a in Attachment.objects.all()] == ["main.py"]
        [notice] = request.notices
        assert (notice["code"], notice["file"]) == ("file_refused", "tool.exe")

    def test_a_file_over_the_servers_upload_limit_is_refused_before_downloading(self, settings):
        settings.MAX_FILE_SIZE_MB = 10
        attachment = fake_discord_attachment("big.txt", b"x" * (9 * MB))
        attachment.read = mock.AsyncMock()
        message = fake_dm(attachment)
        message.guild = SimpleNamespace(id=1, filesize_limit=8 * MB)

        uploads, [refused] = async_to_sync(TrollamaBot().download_attachments)(message)

        assert uploads == []
        assert refused.message == "I can't use big.txt: it is 9 MB and the limit is 8 MB."
        attachment.read.assert_not_awaited()

    def test_accepted_files_are_downloaded_and_stored_with_the_turn(self):
        message = fake_dm(fake_discord_attachment("main.py", b"print('hi')\n", "text/x-python; charset=utf-8"))

        async_to_sync(TrollamaBot().on_message)(message)

        message.reply.assert_not_awaited()
        attachment = Attachment.objects.get()
        assert (attachment.filename, attachment.extracted_text) == ("main.py", "print('hi')\n")
        assert attachment.message.content == "look at this"
        assert default_storage.exists(attachment.file.name)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ChatFileOptionTests:
    def test_chat_sends_files_given_with_file(self, fake_ollama, tmp_path):
        source = tmp_path / "main.py"
        source.write_text("print('hi')\n")
        fake_ollama.script("It prints hi.")

        call_command("chat", "what does it print?", "--inline", "--file", str(source), stdout=io.StringIO())

        content = fake_ollama.chats[-1].body["messages"][-1]["content"]
        assert content == "what does it print?\n\n[File: main.py]\nprint('hi')\n\n[End of file: main.py]"

    def test_a_missing_file_is_an_error_and_nothing_is_sent(self, fake_ollama, tmp_path):
        with pytest.raises(CommandError, match=r"Can't read .*nope\.txt: No such file or directory"):
            call_command("chat", "hi", "--inline", "--file", str(tmp_path / "nope.txt"))

        assert not Message.objects.exists()
