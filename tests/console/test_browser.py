"""The console in a real browser: Playwright driving Debian's chromium against real processes.

Web (Daphne), workers (qcluster) and the fake Ollama server run as they would
in production (``tests/e2e/harness.py``); requests are made with
``manage.py chat``, as a user would. Nothing here touches the ORM: the system
under test has its own database, reached through its pages and commands.
Every page a test opens records every request it makes, and the test fails if
one leaves the server's origin.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright import sync_api

from tests.e2e.harness import PYTHON, ROOT, System, running_system

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]

expect = sync_api.expect
ADMIN = ("admin", "e2e-password")  # what the harness's bootstrap creates
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def system(_fake_ollama_server, tmp_path_factory) -> Iterator[System]:
    with running_system(tmp_path_factory.mktemp("console"), ollama_url=_fake_ollama_server.url) as system:
        yield system


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


# Runs before the page's own scripts, outside its Content-Security-Policy (Playwright injects it).
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline code"}`);
});
"""


def is_csp_violation(text: str) -> bool:
    return text.startswith("CSP violation:") or "Content Security Policy" in text


@pytest.fixture
def page(browser, system):
    """A fresh browser context whose every request (websockets included) and CSP violation is recorded.

    The test fails if the page requested anything from outside the server, or
    if the Content-Security-Policy blocked anything (chromium logs it, and the
    page fires ``securitypolicyviolation``).
    """
    context = browser.new_context(base_url=system.web_url)
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.requested = []
    page.csp_violations = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("websocket", lambda socket: page.requested.append(socket.url))
    page.on("console", lambda message: is_csp_violation(message.text) and page.csp_violations.append(message.text))
    yield page
    context.close()
    origin = urlsplit(system.web_url).netloc
    foreign = [url for url in page.requested if urlsplit(url).netloc != origin and not url.startswith("data:")]
    assert foreign == [], f"the page requested something from outside the server: {foreign}"
    expected = getattr(page, "expected_csp_violations", 0)
    assert len(page.csp_violations) == expected, f"Content-Security-Policy violations: {page.csp_violations}"


def sign_in(page, next_path: str = "/console/") -> None:
    page.goto(next_path)
    page.get_by_label("User name").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_path}")


@contextlib.contextmanager
def chatting(system: System, text: str, user: str) -> Iterator[subprocess.Popen[bytes]]:
    """``manage.py chat`` in the background, as someone asking a question; ended afterwards.

    Its output goes to ``chat-<user>.log`` in the system's data directory, next to web's and the worker's.
    """
    log = (system.data_dir / f"chat-{user}.log").open("wb")
    process = subprocess.Popen(
        [PYTHON, "manage.py", "chat", text, "--user", user],
        cwd=ROOT,
        env=system.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=20)
        log.close()


def request_id_of(page, system: System, user: str) -> str:
    """The id of ``user``'s request, once the live table shows it (a busy machine may take a while to start chat)."""
    row = page.locator("table[data-requests] tbody tr", has_text=user).first
    try:
        expect(row).to_be_visible(timeout=3 * TIMEOUT_MS)
    except AssertionError as error:
        chat_log = (system.data_dir / f"chat-{user}.log").read_text(errors="replace")
        raise AssertionError(f"{error}\n--- chat ---\n{chat_log}\n{system.logs()}") from None
    return row.get_attribute("data-request-id")


class ConsoleBrowserTests:
    def test_staff_sign_in_from_the_login_page(self, page, system):
        page.goto("/console/")

        expect(page).to_have_url(re.compile(r"/console/login/\?next=/console/$"))
        sign_in(page)
        expect(page.get_by_role("heading", name="Requests")).to_be_visible()
        expect(page.locator("[data-connection]")).to_have_text("Live")
        expect(page.get_by_role("link", name="Admin")).to_have_attribute("href", "/admin/")

    def test_the_live_table_follows_a_request_as_it_streams(self, page, system, fake):
        fake.script("word " * 40, tokens_per_second=10, prompt_tokens=17, completion_tokens=40)
        sign_in(page)
        expect(page.locator("[data-connection]")).to_have_text("Live")
        page.evaluate("window.notReloaded = true")

        with chatting(system, "tell me forty words", "erin") as chat:
            request_id_of(page, system, "erin")
            row = page.locator("table[data-requests] tbody tr", has_text="erin").first
            expect(row.locator("td.status")).to_contain_text("generating")
            expect(row.locator("td.status")).to_have_text("done")
            chat.wait(timeout=20)

        cells = row.locator("td")
        expect(cells.nth(3)).to_have_text("general")
        expect(cells.nth(4)).to_have_text("gpt-oss:20b")
        expect(cells.nth(9)).to_have_text("17")
        expect(cells.nth(10)).to_have_text("40")
        assert page.evaluate("window.notReloaded") is True

    def test_after_losing_its_connection_the_table_catches_up_from_the_server(self, page, system, fake):
        fake.script("Answered while you were away.")
        blocked = False

        def through_a_cable_we_can_cut(socket):
            if blocked:
                socket.close(code=1011)  # the page sees a failed reconnection and tries again later
            else:
                socket.connect_to_server()
                sockets.append(socket)

        sockets: list = []
        page.route_web_socket(re.compile(r"/ws/events/"), through_a_cable_we_can_cut)
        sign_in(page)
        indicator = page.locator("[data-connection]")
        expect(indicator).to_have_text("Live")
        page.evaluate("window.notReloaded = true")

        blocked = True
        sockets[0].close(code=1006)
        expect(indicator).to_contain_text("Disconnected")
        with chatting(system, "are you there?", "ivan") as chat:
            assert chat.wait(timeout=60) == 0
        expect(page.locator("table[data-requests] tbody tr", has_text="ivan")).to_have_count(0)
        blocked = False

        expect(indicator).to_have_text("Live", timeout=3 * TIMEOUT_MS)
        row = page.locator("table[data-requests] tbody tr", has_text="ivan")
        expect(row.locator("td.status")).to_have_text("done")
        assert page.evaluate("window.notReloaded") is True

    def test_filters_hide_other_requests_and_survive_a_reload(self, page, system, fake):
        fake.script("Fine.")
        with chatting(system, "hello", "frank") as chat:
            chat.wait(timeout=20)
        sign_in(page, "/console/?user=frank")

        expect(page.locator("table[data-requests] tbody tr", has_text="frank").first).to_be_visible()
        expect(page.locator("table[data-requests] tbody tr", has_text="erin")).to_have_count(0)
        page.get_by_label("User").fill("nobody-like-this")
        page.get_by_label("User").press("Enter")
        expect(page.locator("[data-empty]")).to_be_visible()
        expect(page).to_have_url(re.compile(r"user=nobody-like-this"))

    def test_the_detail_page_streams_the_answer_text(self, page, system, fake):
        reply = "Here it comes:\n\n```python\nfor i in range(3):\n    print(i)\n```\n" + "more " * 30
        fake.script(reply, latency=2, tokens_per_second=12)
        sign_in(page)

        with chatting(system, "stream to the detail page", "gina"):
            request_id = request_id_of(page, system, "gina")
            page.goto(f"/console/requests/{request_id}/")
            answer = page.locator("[data-answer]")
            page.wait_for_function(
                "full => { const t = document.querySelector('[data-answer]').textContent;"
                " return t.length > 0 && t.length < full.length && full.startsWith(t); }",
                arg=reply,
            )
            expect(page.locator(".facts .badge")).to_have_text("Done")

        assert answer.text_content() == reply
        expect(page.locator(".timeline")).to_contain_text("First token")

    def test_cancel_from_the_browser_stops_ollama(self, page, system, fake):
        fake.script("slow " * 500, tokens_per_second=20)
        sign_in(page)

        with chatting(system, "tell me a very long story", "hank"):
            request_id = request_id_of(page, system, "hank")
            page.goto(f"/console/requests/{request_id}/")
            expect(page.locator("[data-answer]")).to_contain_text("slow slow")
            page.get_by_role("button", name="Cancel").click()

            expect(page.locator(".facts .badge")).to_have_text("Cancelled")
            assert fake.wait_for_hangup(timeout=10) is not None

    def test_the_usage_page_draws_its_charts(self, page, system):
        system.manage(
            "shell",
            "-c",
            "from budgets.usage import record_usage; from conversations.models import ChatUser; "
            "user = ChatUser.objects.order_by('pk').first(); "
            "record_usage(user=user, kind='answer', model='chart-model:7b', prompt_tokens=1200, completion_tokens=300)",
        )
        sign_in(page, "/console/usage/")

        charts = page.locator("svg.chart")
        expect(charts).to_have_count(4)
        expect(page.locator("figure", has_text="by model").locator("rect.bar").first).to_be_visible()
        expect(page.locator("figure", has_text="by model").locator(".legend")).to_contain_text("chart-model:7b")
        expect(page.locator("table.latency")).to_contain_text("Time to first token")

    def test_every_page_loads_only_from_the_server(self, page, system):
        sign_in(page)
        for path in (
            "/console/",
            "/console/health/",
            "/console/usage/",
            "/console/conversations/",
            "/console/artifacts/",
            "/admin/",
        ):
            page.goto(path)
            page.wait_for_load_state("networkidle")
        page.get_by_role("link", name="Console").click()
        expect(page.get_by_role("heading", name="Requests")).to_be_visible()
        page.goto("/console/conversations/")
        page.locator("table a").first.click()
        page.wait_for_load_state("networkidle")
        # The page fixture asserts that nothing left the server's origin.
        assert any(url.startswith("ws://") for url in page.requested)

    def test_no_page_breaks_the_content_security_policy(self, page, system):
        sign_in(page)
        for path in (
            "/console/",
            "/console/health/",
            "/console/usage/",
            "/console/conversations/",
            "/console/artifacts/",
            "/admin/",
            "/admin/routing/route/",
            "/admin/routing/route/add/",
            "/admin/budgets/tier/",
        ):
            response = page.goto(path)
            page.wait_for_load_state("networkidle")
            assert "'unsafe-inline'" not in response.headers["content-security-policy"], path
        page.goto("/console/")
        expect(page.locator("[data-connection]")).to_have_text("Live")  # connect-src lets the websocket through
        # The page fixture asserts that nothing was blocked.

    def test_an_inline_script_is_refused_and_reported(self, page, system):
        sign_in(page)

        ran = page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.injected = true';"
            " document.body.append(s); return window.injected === true; }"
        )

        assert ran is False
        page.wait_for_function("() => true")  # let the console message arrive
        assert any("script-src" in text for text in page.csp_violations), page.csp_violations
        page.expected_csp_violations = len(page.csp_violations)  # this one, and only this one, was wanted

    def test_the_health_page_shows_workers_and_ollama_and_refreshes(self, page, system, fake):
        sign_in(page, "/console/health/")

        expect(page.locator(".check", has_text="Queue and workers")).to_have_attribute("data-ok", "true")
        expect(page.locator(".check", has_text=fake.url)).to_contain_text("Ollama 0.12.0")
        with page.expect_response(re.compile(r"/console/health/panel/$")):
            pass

    def test_hard_maintenance_from_the_health_page_refuses_a_new_request(self, page, system):
        sign_in(page, "/console/health/")

        page.get_by_label("Hard: refuse new requests").check()
        page.get_by_label("Message").fill("Swapping the GPU, back soon.")
        page.get_by_role("button", name="Apply").click()
        try:
            expect(page.locator("#maintenance")).to_have_attribute("data-maintenance", "hard")
            asked = system.manage("chat", "hello?", "--user", "ivy", check=False)
            assert asked.returncode == 2, asked.stdout + asked.stderr
            assert "Swapping the GPU, back soon." in asked.stderr
        finally:
            page.get_by_label("Off: answering normally").check()
            page.get_by_role("button", name="Apply").click()
        expect(page.locator("#maintenance")).to_have_attribute("data-maintenance", "off")

    def test_a_file_from_an_answer_downloads_byte_for_byte_from_the_artifacts_page(self, page, system, fake):
        script = "import sys\n\n\tdef main():\n    print('thé ☕', sys.argv[1:])  # tabs, Unicode, no CRLF\n"
        fake.script(f'Here it is:\n\n```python title="fetch_tea.py"\n{script}```\n')
        asked = system.chat("write a tea fetcher and save it as fetch_tea.py", "--user", "jill")
        assert asked.returncode == 0, asked.stdout + asked.stderr + system.logs()
        sign_in(page, "/console/")

        page.get_by_role("link", name="Artifacts").click()
        row = page.locator("table.artifacts tbody tr", has_text="fetch_tea.py")
        expect(row).to_contain_text("jill")
        expect(row).to_contain_text("text/x-python")
        with page.expect_download() as downloading:
            row.get_by_role("link", name="fetch_tea.py", exact=True).click()

        download = downloading.value
        assert download.suggested_filename == "fetch_tea.py"
        assert Path(download.path()).read_bytes() == script.encode()
        page.reload()
        expect(row.locator("td").last).to_have_text("1")  # the download was counted

    def test_reset_from_a_conversation_page_forgets_its_messages(self, page, system, fake):
        fake.script("Noted.")
        asked = system.chat("remember that my locker is 42", "--user", "kim")
        assert asked.returncode == 0, asked.stdout + asked.stderr
        sign_in(page, "/console/conversations/?q=kim")
        page.locator("table a").first.click()
        expect(page.locator("li.message")).to_have_count(2)

        page.get_by_text("Reset: forget the history, keep the thread").click()
        page.get_by_role("button", name="Reset this conversation").click()

        expect(page.locator(".note")).to_contain_text("Forgot 2 messages")
        expect(page.locator("li.message")).to_have_count(0)
        expect(page.locator("ol.messages")).to_contain_text("This thread has no messages.")


# The phone and the laptop the layout is checked at (an iPhone 12 to 15 is 390 px wide; 1366 px is the commonest laptop).
WIDTHS = {"phone": (390, 844), "laptop": (1366, 768)}

# What spills: the page wider than the window, or any card (and the top bar) wider than its own box. A wide table
# scrolls inside its .scroll box, which clips it, so the card around it stays within bounds.
OVERFLOWS = r"""
() => {
  const found = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) found.push(`the page is ${doc.scrollWidth} px wide in ${window.innerWidth} px`);
  for (const box of document.querySelectorAll(".card, .topbar, main")) {
    if (box.scrollWidth > box.clientWidth + 1) {
      const heading = box.querySelector("h1, h2, figcaption");
      const name = heading ? heading.textContent.trim().replace(/\s+/g, " ").slice(0, 40) : "";
      found.push(`${box.className || box.tagName} "${name}": content ${box.scrollWidth} px in ${box.clientWidth} px`);
    }
  }
  return found;
}
"""


class ConsoleLayoutTests:
    """Every page at a phone's and a laptop's width: screenshots, and nothing wider than the screen or its card."""

    @pytest.mark.parametrize("device", WIDTHS)
    def test_no_page_overflows_at_a_phone_or_a_laptop_width(self, page, system, fake, device):
        fake.script("A fairly long answer, so the tables have something in them. " * 3, prompt_tokens=123456)
        asked = system.chat("fill the tables with a request", "--user", f"someone-with-a-long-name-{device}")
        assert asked.returncode == 0, asked.stdout + asked.stderr
        system.manage(
            "shell",
            "-c",
            "from budgets.usage import record_usage; from conversations.models import ChatUser; "
            "user = ChatUser.objects.order_by('pk').last(); "
            "record_usage(user=user, kind='router', model='gpt-oss:20b', prompt_tokens=300, completion_tokens=2)",
        )
        width, height = WIDTHS[device]
        page.set_viewport_size({"width": width, "height": height})
        sign_in(page)
        request_id = request_id_of(page, system, f"someone-with-a-long-name-{device}")
        page.goto("/console/conversations/")
        thread = page.locator("table a").first.get_attribute("href")
        shots = system.data_dir / "screenshots"
        shots.mkdir(exist_ok=True)

        spilled = {}
        for name, path in {
            "requests": "/console/",
            "request": f"/console/requests/{request_id}/",
            "health": "/console/health/",
            "usage": "/console/usage/",
            "conversations": "/console/conversations/",
            "conversation": thread,
            "artifacts": "/console/artifacts/",
            "routing": "/console/routing/?show=all",
        }.items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(shots / f"{device}-{width}px-{name}.png"), full_page=True)
            if found := page.evaluate(OVERFLOWS):
                spilled[name] = found

        assert spilled == {}, f"screenshots in {shots}"

    def test_the_usage_chart_names_the_routers_own_tokens(self, page, system):
        system.manage(
            "shell",
            "-c",
            "from budgets.usage import record_usage; from conversations.models import ChatUser; "
            "user = ChatUser.objects.order_by('pk').first(); "
            "record_usage(user=user, kind='router', model='gpt-oss:20b', prompt_tokens=300, completion_tokens=2)",
        )
        sign_in(page, "/console/usage/")

        legend = page.locator("figure", has_text="by route").locator(".legend")
        expect(legend).to_contain_text("Router classification")
        expect(legend).not_to_contain_text("(none)")
