"""``classify()`` of this tree against ``classify()`` of another git revision, in one process.

    .venv/bin/python bench/classify_ab.py [--base REV] [--repeat N] [--quick]

The revision's ``src/fluidedge/codec/stack.py`` is read with ``git show`` and loaded as a
separate module (its imports resolve to this tree's codec, so only ``stack.py`` differs).
Rounds interleave the two on the same frames (bench/codec_bench.py's four shapes, plus a TOF
style dispatch: classify, then pick the G-PDU branch), and the best round of each is kept; the
machine is shared, so only the ratio (this tree / base) is meaningful.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from codec_bench import SHAPES, make_frames
from fluidedge.codec import stack

ROOT = Path(__file__).resolve().parent.parent


def load_base(rev: str) -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/fluidedge/codec/stack.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "stack_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("stack_base", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["stack_base"] = module
    spec.loader.exec_module(module)
    return module


def kind_loop(module: ModuleType) -> Callable[[Sequence[bytes]], int]:
    classify, gpdu = module.classify, int(module.Kind.GTP_GPDU)

    def run(frames: Sequence[bytes]) -> int:
        hits = 0
        for f in frames:
            if classify(f).kind == gpdu:
                hits += 1
        return hits

    return run


def dispatch_loop(module: ModuleType) -> Callable[[Sequence[bytes]], int]:
    """What the TOF's from_s1 does first: the base tests kind and inner addresses, this tree
    the result's type."""
    classify = module.classify
    typed = getattr(module, "IpGpdu", None)
    if typed is not None:

        def run(frames: Sequence[bytes]) -> int:
            hits = 0
            for f in frames:
                c = classify(f)
                if type(c) is typed:
                    hits += c.inner_end - c.inner_offset > 0
            return hits

        return run
    gpdu = int(module.Kind.GTP_GPDU)

    def run_base(frames: Sequence[bytes]) -> int:
        hits = 0
        for f in frames:
            c = classify(f)
            if c.kind == gpdu and c.inner_src is not None and c.inner_dst is not None:
                hits += c.inner_end - c.inner_offset > 0
        return hits

    return run_base


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="git revision to compare with (HEAD)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="20,000 frames a shape, 3 rounds")
    args = ap.parse_args(argv)
    n = 20_000 if args.quick else 200_000
    repeat = 3 if args.quick else args.repeat
    base = load_base(args.base)
    tasks: dict[tuple[str, str, str], tuple[Callable[[Sequence[bytes]], int], list[bytes]]] = {}
    for shape in SHAPES:
        frames = make_frames(shape, 1000)
        for f in frames[:50]:
            if tuple(base.classify(f)) != tuple(stack.classify(f)):
                raise SystemExit(f"{shape}: this tree and {args.base} classify differently")
        frames = (frames * (n // len(frames) + 1))[:n]
        for loop in ("kind", "dispatch"):
            maker = kind_loop if loop == "kind" else dispatch_loop
            tasks[shape, loop, "base"] = (maker(base), frames)
            tasks[shape, loop, "tree"] = (maker(stack), frames)
    best = dict.fromkeys(tasks, float("inf"))
    for _ in range(repeat):
        for key, (fn, frames) in tasks.items():
            t0 = time.perf_counter()
            hits = fn(frames)
            best[key] = min(best[key], time.perf_counter() - t0)
            if hits != len(frames):
                raise SystemExit(f"{key}: {hits} of {len(frames)} frames were G-PDUs")
    print(f"classify(): this tree vs {args.base}, best of {repeat}, {n:,} frames a shape")
    print(f"{'shape':6} {'loop':9} {'base/s':>11} {'tree/s':>11} {'tree÷base':>10}")
    for shape, loop, _ in [k for k in tasks if k[2] == "base"]:
        b, t = n / best[shape, loop, "base"], n / best[shape, loop, "tree"]
        print(f"{shape:6} {loop:9} {b:11,.0f} {t:11,.0f} {t / b:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
