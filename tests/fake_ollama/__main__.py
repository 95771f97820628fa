"""Run the fake Ollama on its own: ``python -m tests.fake_ollama --port 11435``.

Useful for demos and benchmarks where the bot runs in another process; script
it over HTTP with ``POST /_fake/script`` and friends. ``--gpu`` adds the GPU
simulation (``--gpu --time-scale 0.05`` for a fast one); ``GET /_fake/gpu``
then shows what is loaded and what it recorded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.background import serve_until_stopped

from .gpu import DEFAULT_TOKENS_PER_SECOND, GB, GpuConfig, parse_rates
from .server import FakeOllama
from .specs import Rule


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_ollama",
        description="Serve a fake Ollama API until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11435, help="0 picks a free port")
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=None,
        help="stream pacing for unscripted replies (default: instant)",
    )
    parser.add_argument(
        "--load-delay",
        type=float,
        default=0.0,
        help="seconds the first request to each model waits (cold load)",
    )
    parser.add_argument(
        "--reply",
        default=None,
        help="fixed reply text (default: echo the user message)",
    )
    parser.add_argument("--version", default="0.12.0", help="what /api/version reports")
    gpu = parser.add_argument_group("GPU simulation (off unless --gpu; see tests/fake_ollama/gpu.py)")
    gpu.add_argument("--gpu", action="store_true", help="simulate one GPU: memory, loads, slots, Ollama's queue")
    gpu.add_argument("--vram-gb", type=float, default=24.0, help="GPU memory in GB (default 24)")
    gpu.add_argument("--load-seconds-per-gb", type=float, default=0.5, help="simulated load time (default 0.5)")
    gpu.add_argument("--num-parallel", type=int, default=2, help="slots per model, OLLAMA_NUM_PARALLEL (default 2)")
    gpu.add_argument("--max-loaded-models", type=int, default=3, help="OLLAMA_MAX_LOADED_MODELS (default 3)")
    gpu.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="real seconds per simulated second (0.05 runs 20 times as fast; default 1)",
    )
    gpu.add_argument(
        "--model-rate",
        action="append",
        default=[],
        metavar="MODEL=TOKENS_PER_SECOND",
        help="a model's simulated generation speed (repeatable; defaults in gpu.DEFAULT_TOKENS_PER_SECOND)",
    )
    return parser.parse_args(argv)


def gpu_config(args: argparse.Namespace) -> GpuConfig | None:
    if not args.gpu:
        return None
    return GpuConfig(
        vram=int(args.vram_gb * GB),
        load_seconds_per_gb=args.load_seconds_per_gb,
        num_parallel=args.num_parallel,
        max_loaded_models=args.max_loaded_models,
        time_scale=args.time_scale,
        tokens_per_second={**DEFAULT_TOKENS_PER_SECOND, **parse_rates(args.model_rate)},
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    default = Rule(
        reply=args.reply,
        tokens_per_second=args.tokens_per_second,
        load_delay=args.load_delay,
    )
    try:
        gpu = gpu_config(args)
    except ValueError as exc:
        print(f"Bad GPU setting: {exc}", file=sys.stderr)
        return 2
    fake = FakeOllama(port=args.port, host=args.host, version=args.version, default=default, gpu=gpu)
    fake.start()
    print(f"Fake Ollama listening on {fake.url}", flush=True)
    if gpu is not None:
        print(
            f"Simulating one {gpu.vram / GB:g} GB GPU: {gpu.load_seconds_per_gb:g} s/GB to load, "
            f"{gpu.num_parallel} slots per model, at most {gpu.max_loaded_models} models, "
            f"time scale {gpu.time_scale:g}",
            flush=True,
        )
    return serve_until_stopped(fake, "Fake Ollama")


if __name__ == "__main__":
    raise SystemExit(main())
