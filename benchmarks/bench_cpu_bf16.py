"""Does bf16 autocast (`--amp` on the CPU) make the demo's training step faster on this CPU?

    python benchmarks/bench_cpu_bf16.py [--arch ofa_demo --patch-image-size 96 --batch-size 16 --repeats 5]

One process, one model: a CE step (forward + backward) in fp32 and under bf16 autocast, interleaved
with alternating order; prints the medians and the ratio, and whether the CPU reports bf16 support
(AVX-512 BF16 / AMX).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import REPO_ROOT, Worker  # noqa: E402


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = [flag for flag in ("avx512_bf16", "amx_bf16", "avx512f") if f" {flag}" in flags]
    return " ".join(wanted) or "none of avx512f/avx512_bf16/amx_bf16"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ofa_demo")
    parser.add_argument("--patch-image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    worker = Worker(str(REPO_ROOT))
    worker.setup(arch=args.arch, step="ce", patch=args.patch_image_size, batch=args.batch_size, beam=5, max_len_b=16)
    seconds = {"fp32": [], "bf16": []}

    def step(precision):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            worker.run_step("ce")
        return time.perf_counter() - start

    step("fp32"), step("bf16")  # warm-up
    for repeat in range(args.repeats):
        for precision in (("fp32", "bf16") if repeat % 2 == 0 else ("bf16", "fp32")):
            seconds[precision].append(step(precision))
    fp32, bf16 = statistics.median(seconds["fp32"]), statistics.median(seconds["bf16"])
    print(f"{args.arch} CE step, batch {args.batch_size} at {args.patch_image_size} px, {torch.get_num_threads()} threads; "
          f"CPU flags: {cpu_flags()}")
    print(f"fp32 {fp32:.3f} s, bf16 autocast {bf16:.3f} s: bf16 is {fp32 / bf16:.2f}x as fast")


if __name__ == "__main__":
    main()
