"""Seed the default Ollama host, the reference routes, pre-router rules and router settings.

Route prompts say only what is special about the route: the base role, the
Discord formatting rules and the date are added by ``routing.prompts``.
"""

from django.db import migrations

ROUTES = [
    {
        "slug": "math",
        "name": "Math",
        "model": "rnj-1:8b",
        "fallback_models": "gpt-oss:20b",
        "temperature": 0.2,
        "context_size": 8192,
        "description": "Arithmetic, algebra, calculus, statistics, probability, unit conversions and word "
        "problems that need a worked calculation.",
        "examples": [
            "What is 17% of 2,340?",
            "Solve 3x + 7 = 22 for x",
            "What's the derivative of x^3 * sin(x)?",
            "Integrate 1/(1+x^2) from 0 to 1",
            "If I roll two dice, what's the probability the sum is 8?",
            "Convert 72 degrees Fahrenheit to Celsius",
            "What is the standard deviation of 2, 4, 4, 4, 5, 5, 7, 9?",
            "A train travels 180 km in 2.5 hours. What is its average speed?",
            "Simplify (x^2 - 9)/(x - 3)",
            "How many ways can 5 people sit around a round table?",
            "What is 12.5% of 640?",
            "Solve for y: 4y - 9 = 3y + 2",
            "Find the roots of 2x^2 + 3x - 2",
            "What's the derivative of e^(3x)?",
            "Evaluate the integral of x*cos(x) dx",
            "What are the odds of getting exactly 3 heads in 5 coin flips?",
            "How many minutes are in 3.75 hours?",
            "What's the area of a triangle with base 10 and height 6?",
            "Calculate the compound interest on 2000 at 4% for 5 years",
            "What is the least common multiple of 18 and 24?",
            "Is 97 prime?",
            "What's 3/7 + 2/5?",
            "Find the sum of the geometric series 1 + 1/2 + 1/4 + ...",
            "What is log10 of 5000?",
            "A rectangle's length is twice its width and its area is 72. Find its sides.",
        ],
        "system_prompt": "You are working on a math question. Work it out step by step, show the key steps, "
        "and check the result before you state it. Put the final answer on its own line in bold. Write "
        "formulas in plain text or inline code, since Discord does not render LaTeX.",
    },
    {
        "slug": "simple_code",
        "name": "Simple code",
        "model": "rnj-1:8b",
        "fallback_models": "deepcoder:14b\ngpt-oss:20b",
        "temperature": 0.2,
        "context_size": 16384,
        "description": "Short programming tasks: one function or snippet, a syntax question, a small bug, "
        "a one-line shell or SQL command, explaining an error message.",
        "examples": [
            "How do I reverse a list in Python?",
            "Write a bash one-liner to count lines in all .py files",
            "What does this error mean: TypeError: 'NoneType' object is not subscriptable",
            "How do I center a div with CSS?",
            "Write a SQL query that returns the 5 newest users",
            "Convert this JavaScript for loop to use map",
            "How do I read a JSON file in Go?",
            "Regex to match an email address",
            "Why does my Python function return None?",
            "How do I undo the last git commit but keep the changes?",
            "How do I split a string by spaces in Python?",
            "What's the difference between a list and a set in Python?",
            "How do I merge two dictionaries in Python?",
            "Write a JavaScript function that capitalises the first letter",
            "How do I get the last element of an array in JS?",
            "What does 'npm install --save-dev' do?",
            "How do I create a new branch in git and switch to it?",
            "SQL to find duplicate emails in a users table",
            "How do I write a for loop in bash?",
            "How to convert a string to lowercase in Java?",
            "What does async/await do in JavaScript?",
            "How do I check the Python version?",
            "Write a function to compute factorial recursively in Python",
            "What's the difference between git pull and git fetch?",
            "How do I comment out multiple lines in Python?",
        ],
        "system_prompt": "You are helping with a small programming task. Give working code first, in a fenced "
        "block with its language, then a short explanation. Keep it minimal and idiomatic; mention an edge "
        "case only if it matters.",
    },
    {
        "slug": "complex_code",
        "name": "Complex code",
        "model": "deepcoder:14b",
        "fallback_models": "gpt-oss:20b",
        "temperature": 0.3,
        "context_size": 32768,
        "description": "Larger programming work: designing or refactoring a module, multi-file changes, "
        "algorithms with performance constraints, concurrency, debugging a system, code review.",
        "examples": [
            "Design a rate limiter for a multi-process Python web app backed by Redis",
            "Refactor this 300-line Django view into services and selectors",
            "Implement an LRU cache with O(1) get and put, with tests",
            "Why does my asyncio server deadlock under load? Here is the code",
            "Write a tokenizer and recursive-descent parser for arithmetic expressions",
            "Review this pull request for race conditions",
            "Build a REST API in FastAPI with JWT auth and PostgreSQL",
            "Port this C++ ray tracer to Rust",
            "Design a database schema for a multi-tenant invoicing system",
            "Optimize this O(n^2) algorithm for a list of a million items",
            "Design a scalable notification service with email, SMS and push, with retries",
            "Implement a thread pool with work stealing in C++",
            "Write a distributed lock manager on top of etcd",
            "Refactor our legacy PHP codebase into a modular architecture with tests",
            "Implement a red-black tree with full deletion support",
            "Build an event-driven microservice in Go with Kafka and exactly-once processing",
            "Debug a race condition in my multithreaded Rust program that only shows up under load",
            "Design a database schema and API for a ride-sharing app",
            "Write a query planner for a toy SQL engine",
            "Implement a full-text search index with ranking",
            "Set up a CI/CD pipeline with canary deploys and rollback",
            "Implement an actor system with supervision trees",
            "Write a memory allocator with free lists and coalescing",
            "Architect offline-first sync for a mobile app",
            "Design an authentication and authorization service for many tenants",
        ],
        "system_prompt": "You are working on a substantial programming task. Think about the design before "
        "writing code, state your assumptions, and keep code complete and runnable, each file in its own "
        "fenced block named in a line above it. Point out trade-offs and anything you left out.",
    },
    {
        "slug": "reasoning",
        "name": "Reasoning",
        "model": "magistral:24b",
        "fallback_models": "gpt-oss:20b",
        "think": "on",
        "context_size": 16384,
        "description": "Logic puzzles, riddles, careful analysis, comparing options, planning, and questions "
        "that need several steps of thought rather than facts or code.",
        "examples": [
            "Three boxes are labelled wrongly: apples, oranges, mixed. How many picks to fix the labels?",
            "Should I rent or buy a house if I might move in four years? Walk me through it",
            "If all bloops are razzies and some razzies are lazzies, are some bloops lazzies?",
            "Plan a two-week study schedule for an exam in linear algebra",
            "What are the strongest arguments for and against a four-day work week?",
            "A man pushes his car to a hotel and tells the owner he's bankrupt. Why?",
            "Help me decide between two job offers with these trade-offs",
            "Find the flaw in this argument",
            "How would you estimate the number of piano tuners in Chicago?",
            "Explain the prisoner's dilemma and when cooperation wins",
            "A snail climbs 3 metres a day and slips 2 at night in a 10-metre well. When does it get out?",
            "What are the pros and cons of nuclear power? Weigh them up",
            "Which would you choose, a guaranteed 1 million or a 50% chance at 3 million, and why?",
            "Knights always tell the truth and knaves always lie. Who is who?",
            "Walk me through whether I should change careers at 40",
            "Why do some people think free will is an illusion? Examine the reasoning",
            "How would you measure the height of a building with only a barometer?",
            "Is it ethical to eat meat? Consider the main positions",
            "There are 100 lockers and 100 students toggling them. Which stay open?",
            "What is the best strategy in rock-paper-scissors against a human?",
            "Analyse the risks and benefits of a startup versus a corporate job",
            "Think through what happens if everyone stopped using cash",
            "How should we decide who gets a scarce medical treatment?",
            "Find the hidden assumption in this argument",
            "Explain step by step why 0.999... equals 1",
        ],
        "system_prompt": "You are working through a question that needs careful reasoning. Lay out the "
        "steps, consider alternatives, and separate what you know from what you assume. End with a clear "
        "conclusion.",
    },
    {
        "slug": "research",
        "name": "Research",
        "model": "magistral:24b",
        "fallback_models": "gpt-oss:20b",
        "think": "on",
        "web_search": True,
        "web_fetch": True,
        "context_size": 32768,
        "description": "Questions about current events, recent releases, prices, or facts the user wants "
        "looked up or checked on the web, with sources.",
        "examples": [
            "What's the latest version of Python and what's new in it?",
            "Search the web for reviews of the Framework 16 laptop",
            "What happened in the news today?",
            "Find sources on the health effects of intermittent fasting",
            "Who won the most recent Formula 1 race?",
            "What is the current price of bitcoin?",
            "Look up the opening hours of the Louvre",
            "Compare the latest iPhone and Pixel, with links",
            "What are the new features in Django 5.2?",
            "Is there any recent research on room-temperature superconductors?",
            "What's in the news about the economy this week?",
            "Find recent articles about quantum computing breakthroughs",
            "What's the current exchange rate of the yen?",
            "Search for the best-rated pizza places in Naples",
            "Who won the Nobel Prize in Physics this year?",
            "What is the latest iPhone model and its price?",
            "Look up when the next Olympics start",
            "Find the current inflation rate in the US",
            "What are people saying online about the new GPU launch?",
            "Check the latest release notes for Kubernetes",
            "Find reliable sources on the side effects of melatonin",
            "What's the status of the Artemis moon mission?",
            "Search for the population of Canada in the latest census",
            "Which teams are in the playoffs right now?",
            "What are the newest features of ChatGPT announced recently?",
        ],
        "system_prompt": "You are researching a question. Use web_search to find sources and web_fetch to "
        "read the promising ones; prefer primary and recent sources. Answer from what you read, say when "
        "sources disagree, and cite them inline as [1], [2] in the order you used them.",
    },
    {
        "slug": "vision",
        "name": "Images",
        "model": "qwen3-vl:8b",
        "fallback_models": "",
        "context_size": 16384,
        "description": "Messages with images: describing pictures, reading screenshots or photos of text, "
        "charts and diagrams.",
        "examples": [
            "What's in this picture?",
            "Read the text in this screenshot",
            "What does this chart show?",
            "Describe this image",
            "What breed is this dog?",
        ],
        "system_prompt": "You are looking at images the user sent. Describe what is actually visible, read "
        "any text exactly, and say when something is unclear rather than guessing.",
    },
]

GENERAL = {
    "examples": [
        "Hi! How are you today?",
        "Tell me a joke about cats",
        "What's a good name for a fantasy tavern?",
        "Can you summarise the plot of Hamlet?",
        "Give me some ideas for a birthday party",
        "What is the capital of Australia?",
        "Write a short poem about autumn",
        "How do I ask my boss for a raise?",
        "Recommend a few sci-fi books",
        "Translate 'good morning' into Spanish",
        "Hey there, what's up?",
        "Tell me something interesting",
        "Write a short poem for my mom's birthday",
        "What's a fun weekend activity for kids?",
        "Can you suggest a name for my band?",
        "How do I make a good first impression?",
        "What's the story behind the Trojan horse?",
        "Recommend a TV series like Breaking Bad",
        "Write a funny caption for a cat photo",
        "What's a healthy breakfast idea?",
        "Give me a riddle",
        "How do I start journaling?",
        "Who was Cleopatra?",
        "Help me write a message to reconnect with an old friend",
        "Good night!",
    ],
    "fallback_models": "",
    "think": "low",
    "keep_warm": True,
    "keep_alive": "30m",
    "system_prompt": "Be friendly and direct. Keep everyday answers short; go into depth when asked.",
}
OLD_GENERAL_PROMPT_START = "You are Trollama, a helpful assistant in a Discord community."

# (route, kind, pattern, note): only patterns that are nearly never wrong, the similarity
# check and the classifier handle the rest.
RULES = [
    ("math", "regex", r"^\s*[-+*/^()\d\s.,=x%]*\d\s*[-+*/^%]\s*[\d(][-+*/^()\d\s.,=x%]*\??\s*$", "bare arithmetic"),
    ("math", "regex", r"(?i)\b(integrate|integral of|derivative of|differentiate|solve for [a-z]\b)", "calculus"),
    (
        "research",
        "regex",
        r"(?i)\b(search the web|look (it|this|that) up online|google (it|this)|with sources)\b",
        "explicit web search",
    ),
    ("research", "regex", r"(?i)\b(latest news|news today|today's news|current price of)\b", "current events"),
    (
        "complex_code",
        "regex",
        r"(?i)\b(refactor|code review|review (this|my) (code|pull request|pr))\b",
        "larger code work",
    ),
]


def seed(apps, schema_editor):
    Route = apps.get_model("routing", "Route")
    RouterRule = apps.get_model("routing", "RouterRule")
    apps.get_model("routing", "OllamaHost").objects.get_or_create(name="default", defaults={"url": ""})
    apps.get_model("routing", "RouterSettings").objects.get_or_create(pk=1)
    for data in ROUTES:
        values = {**data, "examples": "\n".join(data["examples"])}
        Route.objects.get_or_create(slug=values.pop("slug"), defaults=values)
    general = Route.objects.filter(slug="general").first()
    if general is not None:
        if general.system_prompt.startswith(OLD_GENERAL_PROMPT_START):
            general.system_prompt = GENERAL["system_prompt"]
        general.examples = general.examples or "\n".join(GENERAL["examples"])
        general.think = GENERAL["think"]
        general.keep_warm = GENERAL["keep_warm"]
        general.keep_alive = general.keep_alive or GENERAL["keep_alive"]
        general.save()
    for slug, kind, pattern, note in RULES:
        route = Route.objects.get(slug=slug)
        RouterRule.objects.get_or_create(route=route, pattern=pattern, defaults={"kind": kind, "note": note})


def unseed(apps, schema_editor):
    apps.get_model("routing", "Route").objects.filter(slug__in=[r["slug"] for r in ROUTES]).delete()


SYNC = "routing.tasks.sync_models"


def schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        func=SYNC,
        defaults={"name": "Sync Ollama models", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=SYNC).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0003_hosts_models_and_router"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(seed, unseed), migrations.RunPython(schedule, unschedule)]
