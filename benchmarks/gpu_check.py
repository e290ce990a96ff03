"""Step time, peak memory, images/s and model FLOPs utilisation of the CE, SCST and generation steps
on a GPU, for fp32 and bf16/fp16 autocast (what `--amp` runs). Run by benchmarks/gpu_check.sh.

The steps, model and inputs are those of benchmarks/bench_speed.py (this checkout only). FLOPs are
counted by torch's FlopCounterMode over one step (matmuls, convolutions, attention); MFU = FLOPs /
(step time x the device's dense peak: --peak-tflops for bf16/fp16 and --peak-tflops-fp32 for fp32,
TF32 off as in PyTorch's default). Peak memory is torch.cuda.max_memory_allocated over one step.
"""
import argparse
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
    print(f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, {args.patch_image_size} px, "
          f"torch {torch.__version__}; median of {args.repeats}")
    print(f"{'arch':9} {'step':5} {'prec':5} {'batch':>5} {'step s':>8} {'images/s':>9} {'peak GiB':>9} {'TFLOP':>8} {'MFU':>6}")
    for arch in args.archs:
        for step in args.steps:
            worker.setup(arch=arch, step=step, patch=args.patch_image_size, batch=batch[step], beam=5, max_len_b=16)
            worker.model.to(device)
            worker.net_input = moved(worker.net_input, device)
            worker.prev_output_tokens, worker.target = worker.prev_output_tokens.to(device), worker.target.to(device)
            if step == "scst":
                worker.scst_sample = moved(worker.scst_sample, device)
            for precision in args.precisions:
                dtype = DTYPES[precision]

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
                peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
                counter = FlopCounterMode(display=False)
                with counter:
                    run()
                flops = counter.get_total_flops()
                step_s = statistics.median(seconds)
                peak_flops = (args.peak_tflops if dtype is not None else args.peak_tflops_fp32) * 1e12
                print(f"{arch:9} {step:5} {precision:5} {batch[step]:5d} {step_s:8.3f} {batch[step] / step_s:9.1f} "
                      f"{peak:9.2f} {flops / 1e12:8.2f} {flops / step_s / peak_flops:6.1%}", flush=True)
            worker.model = None
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
