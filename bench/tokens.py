"""The token estimate against real tokenizers, script by script.

    python -m bench.tokens

Counts the same texts with the estimate (``conversations.tokens``), with the
old characters/4 rule, and with two real byte-level BPE tokenizers, cl100k and
o200k (``bpe-openai``, a dev requirement whose tables are built in, so it runs
offline), and prints estimate/real for each: above 1.0 the estimate leans
high (costs context), below 1.0 it leans low (risks overflowing the window).

The texts are found on any machine that runs the project: English prose
(the license texts of installed packages), this repository's Markdown, Python
and JavaScript, JSON made from its fake data, Django's own translations
(Chinese, Japanese, Korean, Russian, Hindi, Thai, Arabic, German, Vietnamese),
emoji-heavy chat, numbers and base64. Nothing asserts; it exits non-zero only
when bpe-openai is missing.
"""

from __future__ import annotations

import base64
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CHARS = 400_000

EMOJI_CHAT = (
    "Great job team!!! 🎉🎉🎉 So proud of you all 😍❤️👍 Let's go 🚀🔥💯\n"
    "lol 😂😂😂 that's hilarious 🤣 ok 👌🏽 see you 👋 family: 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵🇧🇷 ✨🙏😊 #blessed\n"
    "weather today ☀️🌧️⛈️❄️ food 🍕🍔🌮🍣🍜 pets 🐶🐱🐰🦜🦄 👩🏻‍💻 coding all night ☕☕ 🥱\n"
)
EMOJI_ONLY = "😀😂❤️👍🔥🎉✨🙏😊💯🚀🤔😭🥺👀💀🫠🧑‍🚀🏳️‍🌈"


def _read(paths: list[Path], limit: int = SAMPLE_CHARS) -> str:
    text = ""
    for path in sorted(paths):
        text += path.read_text(encoding="utf-8", errors="replace") + "\n"
        if len(text) >= limit:
            break
    return text[:limit]


def _translations(lang: str) -> str:
    import django

    found = Path(django.__file__).parent.glob(f"**/locale/{lang}/LC_MESSAGES/django.po")
    lines = []
    for path in sorted(found):
        lines += re.findall(r'^msgstr "(.+)"$', path.read_text(encoding="utf-8"), re.M)
    return "\n".join(lines)


def samples() -> dict[str, str]:
    site = Path(json.__file__).parent.parent / "site-packages"
    venv_site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    licenses = [p for p in (venv_site if venv_site.exists() else site).glob("*.dist-info/**/LICENSE*") if p.is_file()]
    rng = random.Random(7)
    data = [
        {"id": n, "name": f"user-{n}", "score": rng.random(), "tags": ["a", "bc"], "ok": n % 2 == 0}
        for n in range(3000)
    ]
    texts = {
        "English prose (licenses)": _read(licenses),
        "Markdown (README)": (ROOT / "README.md").read_text(encoding="utf-8"),
        "Python (this repo)": _read([p for p in ROOT.glob("**/*.py") if ".venv" not in p.parts]),
        "JavaScript (console)": _read(list(ROOT.glob("console/static/**/*.js"))),
        "JSON": json.dumps(data, indent=2),
    }
    for name, lang in [
        ("Chinese", "zh_Hans"),
        ("Japanese", "ja"),
        ("Korean", "ko"),
        ("Russian", "ru"),
        ("Hindi", "hi"),
        ("Thai", "th"),
        ("Arabic", "ar"),
        ("German", "de"),
        ("Vietnamese", "vi"),
    ]:
        texts[f"{name} (Django's translations)"] = _translations(lang)
    texts["emoji-heavy chat"] = EMOJI_CHAT * 50
    texts["emoji only"] = EMOJI_ONLY * 100
    texts["numbers"] = " ".join(str(n * 7919) for n in range(5000))
    texts["base64"] = base64.b64encode(rng.randbytes(60_000)).decode()
    return {name: text for name, text in texts.items() if text}


def main() -> int:
    try:
        import bpe_openai
    except ImportError:
        print("bpe-openai is not installed: pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from conversations.tokens import estimate_tokens, raw_estimate

    encodings = {name: bpe_openai.get_encoding(name) for name in ("cl100k_base", "o200k_base")}
    print(
        f"{'text':34} {'chars':>8} {'estimate':>9} {'cl100k':>8} {'o200k':>8}   est/cl100k  est/o200k  chars/4÷cl100k"
    )
    for name, text in samples().items():
        estimate = estimate_tokens(text)
        cl100k, o200k = (len(encoding.encode(text)) for encoding in encodings.values())
        print(
            f"{name:34} {len(text):8,} {estimate:9,} {cl100k:8,} {o200k:8,}   "
            f"{estimate / cl100k:10.2f} {estimate / o200k:10.2f} {len(text) / 4 / cl100k:15.2f}"
        )
    prose = samples()["English prose (licenses)"] * 5
    started = time.perf_counter()
    raw_estimate(prose)
    print(f"\nspeed: {len(prose) / (time.perf_counter() - started) / 1e6:.1f} million characters a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
