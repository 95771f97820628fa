"""The house's floors run one way: no app module imports from a floor above its own.

Every module of every app is read with ``ast`` (not imported), so an import
anywhere counts: at the top, inside a function, or under ``TYPE_CHECKING``.
The floors are the README's ("How the code is laid out"); a new app must be
given one here, and an import that runs upward must be allow-listed below with
the reason it cannot run the other way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Higher imports lower, never the reverse; apps on one rank do not import each other.
FLOORS: dict[str, float] = {
    # 0, the ground: settings, ASGI, URLs (by name), events, logs, fields, tls, origins,
    # counters, and the state every floor reads (Maintenance, MetricCounter).
    "trollama": 0,
    # 1, the shared data model: users, threads, messages, requests, and what reads them.
    "conversations": 1,
    # 2, what the pipeline draws on. Routing is the lowest of these: budgets' usage entries
    # point at a route and knowledge searches with routing's hosts, so both import routing;
    # routing reports its calls' tokens by a signal (routing.signals) instead of importing budgets.
    "routing": 2,
    "budgets": 2.5,
    "artifacts": 2.5,
    "knowledge": 2.5,
    # 3, the request pipeline: the one place that calls across routing, budgets, artifacts and knowledge.
    "pipeline": 3,
    # 4, the faces: the bot, operations (which reads the bot's heartbeat), and the console
    # (which shows operations' health and switches maintenance).
    "bots": 4,
    "ops": 4.5,
    "console": 4.9,
}

# (module file, imported module): why this one import runs upward.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    ("conversations/tasks.py", "pipeline.tasks"): (
        "django-q2 stores a task by its dotted path: tasks queued before the pipeline moved out of "
        "conversations still name conversations.tasks.*, and must still run after an upgrade."
    ),
}

# Imports within an app that must not happen: (importing module's prefix, imported module's prefix): why.
FORBIDDEN_WITHIN: dict[tuple[str, str], str] = {
    ("bots/commands/", "bots.client"): (
        "the client registers the commands; they receive the bot (bots.commands.CommandBot) instead of "
        "importing its module, which would make a cycle"
    ),
}


def app_modules() -> Iterator[tuple[str, Path]]:
    for app in FLOORS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.relative_to(ROOT).parts:
                yield app, path


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            # ``from pipeline import services`` imports pipeline.services.
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def upward_imports() -> list[str]:
    found = []
    for app, path in app_modules():
        name = path.relative_to(ROOT).as_posix()
        for line, module in imports_of(path):
            target = module.split(".")[0]
            if target == app or target not in FLOORS or FLOORS[target] < FLOORS[app]:
                continue
            if any(name == allowed and (module == to or module.startswith(f"{to}.")) for allowed, to in ALLOWED_UPWARD):
                continue
            found.append(f"{name}:{line} imports {module} ({app} is on {FLOORS[app]}, {target} on {FLOORS[target]})")
    return sorted(set(found))


def test_every_app_has_a_floor() -> None:
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    assert apps - FLOORS.keys() == set(), "give each new app a floor in FLOORS (and the README)"
    assert FLOORS.keys() - apps == set()


def test_no_import_runs_from_a_lower_floor_to_a_higher_one() -> None:
    assert upward_imports() == []


def test_each_allowed_upward_import_still_exists() -> None:
    """An allow-list entry whose import is gone is removed, so the list stays the true list of exceptions."""
    present = {
        (path.relative_to(ROOT).as_posix(), module) for _, path in app_modules() for _, module in imports_of(path)
    }
    assert set(ALLOWED_UPWARD) - present == set()


def test_forbidden_imports_within_an_app() -> None:
    found = [
        f"{path.relative_to(ROOT).as_posix()}:{line} imports {module}: {why}"
        for _, path in app_modules()
        for line, module in imports_of(path)
        for (prefix, forbidden), why in FORBIDDEN_WITHIN.items()
        if path.relative_to(ROOT).as_posix().startswith(prefix)
        and (module == forbidden or module.startswith(f"{forbidden}."))
    ]
    assert found == []


def test_the_check_sees_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ops.health import x\n"
        "def f():\n    from pipeline import services\n    import console.views\n"
    )
    assert {m for _, m in imports_of(module)} >= {"ops.health", "pipeline.services", "console.views"}
