"""Texts in dense scripts, and counting them with real tokenizers, for the token estimate's tests."""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_rng = random.Random(18)
_HAN = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切"
_EMOJI = ["😀", "😂", "❤️", "👍", "🔥", "🎉", "✨", "🙏", "😊", "💯", "🚀", "👨‍👩‍👧‍👦", "🇫🇷", "👩🏻‍💻", "🏳️‍🌈", "🫠"]


def _chinese(chars: int) -> str:
    text: list[str] = []
    while sum(map(len, text)) < chars:
        stop = _rng.choice("\uff0c\u3002\uff01\uff1f")  # full-width , . ! ?
        text.append("".join(_rng.choice(_HAN) for _ in range(_rng.randint(8, 30))) + stop)
    return "".join(text)[:chars]


def _translations(lang: str, chars: int) -> str:
    """Natural text: Django's own translations into ``lang``."""
    import django

    lines = []
    for path in sorted(Path(django.__file__).parent.glob(f"**/locale/{lang}/LC_MESSAGES/django.po")):
        lines += re.findall(r'^msgstr "(.+)"$', path.read_text(encoding="utf-8"), re.M)
    text = "\n".join(lines)
    return (text * (chars // len(text) + 1))[:chars]


def _emoji_chat(chars: int) -> str:
    parts: list[str] = []
    while sum(map(len, parts)) < chars:
        parts.append(_rng.choice(["lol", "omg", "so good", "see you", "yes!!", "party"]) + " ")
        parts.append("".join(_rng.choice(_EMOJI) for _ in range(_rng.randint(1, 6))) + " ")
    return "".join(parts)[:chars]


def _python(chars: int) -> str:
    text = ""
    for path in sorted(ROOT.glob("conversations/*.py")) + sorted(ROOT.glob("budgets/*.py")):
        text += path.read_text(encoding="utf-8")
    return (text * (chars // len(text) + 1))[:chars]


def _english(chars: int) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraphs = [p for p in readme.split("\n\n") if p[:1].isalpha()]
    text = "\n\n".join(paragraphs)
    return (text * (chars // len(text) + 1))[:chars]


SAMPLES = {
    "english": _english(20_000),
    "python": _python(20_000),
    "chinese": _chinese(8_000),
    "chinese-translations": _translations("zh_Hans", 8_000),
    "japanese-translations": _translations("ja", 8_000),
    "korean-translations": _translations("ko", 8_000),
    "hindi-translations": _translations("hi", 8_000),
    "arabic-translations": _translations("ar", 8_000),
    "emoji": _emoji_chat(8_000),
}


@functools.cache
def _encoding(name: str):
    bpe_openai = pytest.importorskip("bpe_openai", reason="pip install -r requirements-dev.txt (bpe-openai)")
    return bpe_openai.get_encoding(name)


def real_tokens(text: str, encoding: str) -> int:
    return len(_encoding(encoding).encode(text))
