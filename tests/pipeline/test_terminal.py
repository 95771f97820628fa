"""The terminal's renderer: events and resyncs from the database make one exact answer on stdout."""

from __future__ import annotations

import io

from pipeline.terminal import BROKE_OFF, WHOLE_AGAIN, TerminalRenderer

ANSWER = "def f():\n\treturn [1, {'a': (2, 3)}]\n"


def renderer() -> tuple[TerminalRenderer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return TerminalRenderer(1, out=out, err=err), out, err


def delta(offset: int, text: str, attempt: int = 1) -> dict:
    return {"type": "request.delta", "request_id": 1, "attempt": attempt, "offset": offset, "text": text}


class TerminalResyncTests:
    def test_a_resync_prints_what_the_websocket_missed_and_then_the_rest_once(self):
        shown, out, _ = renderer()
        shown.handle(delta(0, ANSWER[:5]))

        assert shown.resync({"status": "generating", "attempts": 1, "content": ANSWER[:12]}) is None
        shown.handle(delta(5, ANSWER[5:15]))  # overlaps what the resync printed
        finished = shown.handle({"type": "request.done", "request_id": 1, "content": ANSWER, "request": {}})

        assert finished is not None and finished.status == "done"
        assert out.getvalue() == ANSWER

    def test_a_finished_request_found_on_resync_ends_the_follow(self):
        shown, out, _ = renderer()

        finished = shown.resync({"status": "done", "attempts": 1, "content": ANSWER, "prompt_tokens": 3})

        assert finished is not None and finished.prompt_tokens == 3
        assert out.getvalue() == ANSWER

    def test_a_retry_missed_while_away_is_said_and_the_new_attempt_printed(self):
        shown, out, err = renderer()
        shown.handle(delta(0, "Broken fir", attempt=1))

        shown.resync({"status": "generating", "attempts": 2, "content": "def f"})
        shown.handle(delta(0, "Broken first attempt", attempt=1))  # read before the resync: ignored
        shown.handle({"type": "request.done", "request_id": 1, "content": ANSWER, "request": {}})

        assert out.getvalue() == "Broken fir\n" + ANSWER
        assert err.getvalue().count(BROKE_OFF) == 1

    def test_a_final_text_that_does_not_continue_the_screen_is_printed_whole(self):
        shown, out, err = renderer()
        shown.handle(delta(0, "Something else"))

        shown.handle({"type": "request.done", "request_id": 1, "content": ANSWER, "request": {}})

        assert out.getvalue() == "Something else\n" + ANSWER
        assert WHOLE_AGAIN in err.getvalue()

    def test_a_retry_that_writes_the_same_words_again_is_shown_once_without_a_note(self):
        shown, out, err = renderer()
        shown.handle(delta(0, ANSWER[:9], attempt=1))

        shown.handle({"type": "request.status", "request_id": 1, "phase": "retrying", "reset": True, "attempt": 2})
        shown.handle({"type": "request.status", "request_id": 1, "phase": "loading", "model": "m", "attempt": 2})
        shown.handle(delta(0, ANSWER[:4], attempt=2))
        shown.handle(delta(4, ANSWER[4:20], attempt=2))
        shown.handle({"type": "request.done", "request_id": 1, "content": ANSWER, "request": {}})

        assert out.getvalue() == ANSWER
        assert err.getvalue() == ""  # no note, and no progress line in the middle of the answer

    def test_a_retry_that_parts_from_the_screen_says_so_and_prints_its_answer_whole(self):
        shown, out, err = renderer()
        shown.handle(delta(0, "def f():\n\tpass", attempt=1))

        shown.handle({"type": "request.status", "request_id": 1, "phase": "retrying", "reset": True, "attempt": 2})
        shown.handle(delta(0, ANSWER[:9], attempt=2))  # the same words so far: nothing printed
        assert out.getvalue() == "def f():\n\tpass" and err.getvalue() == ""
        shown.handle(delta(9, ANSWER[9:], attempt=2))
        shown.handle({"type": "request.done", "request_id": 1, "content": ANSWER, "request": {}})

        assert out.getvalue() == "def f():\n\tpass\n" + ANSWER
        assert err.getvalue() == BROKE_OFF + "\n"

    def test_a_retry_whose_answer_is_shorter_than_the_screen_is_printed_whole(self):
        shown, out, err = renderer()
        shown.handle(delta(0, ANSWER + "# and more", attempt=1))

        shown.resync({"status": "queued", "attempts": 1, "content": ""})  # handed back to the queue
        shown.handle(delta(0, ANSWER, attempt=2))
        shown.handle({"type": "request.done", "request_id": 1, "content": ANSWER, "request": {}})

        assert out.getvalue() == ANSWER + "# and more\n" + ANSWER
        assert err.getvalue() == WHOLE_AGAIN + "\n"

    def test_a_deleted_request_ends_with_a_reason(self):
        shown, _, _ = renderer()

        finished = shown.resync(None)

        assert finished is not None and finished.status == "failed" and "no longer exists" in finished.error

    def test_deltas_after_a_gap_are_printed_once_a_resync_fills_it(self):
        shown, out, _ = renderer()
        shown.handle(delta(0, ANSWER[:5]))
        shown.handle(delta(12, ANSWER[12:20]))  # 5..12 missed
        assert shown.gap and out.getvalue() == ANSWER[:5]

        shown.resync({"status": "generating", "attempts": 1, "content": ANSWER[:14]})

        assert not shown.gap and out.getvalue() == ANSWER[:20]
