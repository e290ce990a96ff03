"""Step time, peak memory, images/s and model FLOPs utilisation of the CE, SCST and generation steps
on a GPU, for fp32 and bf16/fp16 autocast (what `--amp` runs). Run by benchmarks/gpu_check.sh.

The steps, model and inputs are those of benchmarks/bench_speed.py (this checkout only). FLOPs are
counted by torch's FlopCounterMode over one step (matmuls, convolutions, attention); MFU = FLOPs /
(step time x the device's dense peak: --peak-tflops for bf16/fp16 and --peak-tflops-fp32 for fp32,
TF32 off as in PyTorch's default). Peak memory is torch.cuda.max_memory_allocated over one step.
Each measured row is printed as one JSON object as soon as it is measured (benchmarks/check_report.py
collects them), so a run stopped at its time limit keeps the rows it finished. A row that raises
(e.g. out of memory) is printed with its "error", the others still run, and the exit status is then 1.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import REPO_ROOT, Worker  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def moved(value, device):
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return {k: moved(v, device) for k, v in value.items()}
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["ofa_base", "ofa_large"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"], choices=sorted(DTYPES))
    parser.add_argument("--steps", nargs="+", default=["ce", "scst", "beam"], choices=["ce", "scst", "beam"])
    parser.add_argument("--patch-image-size", type=int, default=480)
    parser.add_argument("--batch-ce", type=int, default=16)
    parser.add_argument("--batch-scst", type=int, default=8, help="images per SCST step (x5 hypotheses)")
    parser.add_argument("--batch-beam", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16/fp16 peak (H200 SXM: 989)")
    parser.add_argument("--peak-tflops-fp32", type=float, default=67.0, help="fp32 peak without TF32 (H200 SXM: 67)")
    args = parser.parse_args()
    device = torch.device(args.device)
    worker = Worker(str(REPO_ROOT))
    batch = {"ce": args.batch_ce, "scst": args.batch_scst, "beam": args.batch_beam}
    print(json.dumps({"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                      "patch_image_size": args.patch_image_size, "torch": torch.__version__,
                      "repeats": args.repeats, "statistic": "median"}), flush=True)
    errors = 0
    for arch in args.archs:
        for step in args.steps:
            try:
                worker.setup(arch=arch, step=step, patch=args.patch_image_size, batch=batch[step], beam=5, max_len_b=16)
                worker.model.to(device)
                worker.net_input = moved(worker.net_input, device)
                worker.prev_output_tokens, worker.target = worker.prev_output_tokens.to(device), worker.target.to(device)
                if step == "scst":
                    worker.scst_sample = moved(worker.scst_sample, device)
                setup_error = None
            except Exception as error:  # recorded for each precision of this step; the next step still runs
                setup_error = f"setup: {error!r}"
            for precision in args.precisions:
                row = {"arch": arch, "step": step, "precision": precision, "batch": batch[step]}
                if setup_error:
                    row["error"] = setup_error
                else:
                    try:
                        row.update(measure(worker, step, DTYPES[precision], device, args))
                        row["images_per_s"] = round(batch[step] / row["step_s"], 2)
                    except Exception as error:  # e.g. out of memory: recorded, and the next precision still runs
                        row["error"] = repr(error)
                errors += "error" in row
                print(json.dumps(row), flush=True)
            worker.model = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 1 if errors else 0


def measure(worker, step, dtype, device, args) -> dict:
    """Median step seconds, peak GiB, TFLOP and MFU of `step` under autocast to `dtype` (None: fp32)."""

    def run():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            worker.run_step(step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run()  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    flops = counter.get_total_flops()
    step_s = statistics.median(seconds)
    peak_flops = (args.peak_tflops if dtype is not None else args.peak_tflops_fp32) * 1e12
    return {"step_s": round(step_s, 4), "peak_gib": None if peak is None else round(peak, 2),
            "tflop": round(flops / 1e12, 3), "mfu": round(flops / step_s / peak_flops, 4)}


if __name__ == "__main__":
    raise SystemExit(main())
