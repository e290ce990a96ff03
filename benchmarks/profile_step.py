"""Where the time and the peak memory of one training or decoding step go (this checkout, CPU, fp32).

    python benchmarks/profile_step.py --arch ofa_base --step scst
    python benchmarks/profile_step.py --arch ofa_tiny --step ce --patch-image-size 128 --threads 1

The model, inputs and steps are bench_speed.py's (its worker, on this checkout). After one warm-up
step it runs three more and prints:
1. the wall time of the parts of the step: forward and backward; for SCST also the criterion's own
   timers (generation, which includes the training-mode encoding; reward; teacher-forced forward);
2. the peak memory (bytes allocated during the step and alive at once, from the profiler's
   allocation records), the operators running when it is reached, and the live memory at 20
   evenly spaced moments of the step;
3. the operators with the most self CPU time, grouped by input shapes.
"""
import argparse
import bisect
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import REPO_ROOT, Worker, add_step_options  # noqa: E402


def timed_parts(worker, step):
    """Seconds of the forward and backward of one step (and the SCST criterion's own timers)."""
    import torch

    model = worker.model
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    if step == "beam":
        worker.run_step("beam")
        return {"beam search": time.perf_counter() - start}
    if step == "ce":
        model.train()
        logits, _ = model(prev_output_tokens=worker.prev_output_tokens, **worker.net_input)
        loss = -torch.log_softmax(logits.float(), dim=-1).gather(-1, worker.target.unsqueeze(-1)).sum()
        parts = {}
    else:
        loss, _, log = worker.criterion(model, worker.scst_sample)
        parts = {f"  {name}": log[f"time_{name}"] for name in ("generate", "reward", "forward")}
    forwarded = time.perf_counter()
    loss.backward()
    return {"forward": forwarded - start, **parts, "backward": time.perf_counter() - forwarded}


def memory_timeline(worker, step):
    """(peak bytes, names of the operators running at the peak, live bytes at 21 moments)."""
    from torch.profiler import ProfilerActivity, profile

    worker.model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        worker.run_step(step)
    events = list(prof.profiler.kineto_results.events())
    records = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    times, live_bytes, live, peak, peak_time = [], [], 0, 0, records[0].start_ns()
    for record in records:
        live += record.nbytes()
        times.append(record.start_ns())
        live_bytes.append(live)
        if live > peak:
            peak, peak_time = live, record.start_ns()
    running = [e.name() for e in sorted(events, key=lambda e: e.start_ns())
               if e.name() != "[memory]" and e.start_ns() <= peak_time <= e.end_ns()]
    first, last = times[0], times[-1]
    moments = [live_bytes[max(bisect.bisect_right(times, first + (last - first) * i / 20) - 1, 0)] for i in range(21)]
    return peak, running, moments


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ofa_base")
    parser.add_argument("--step", default="scst", choices=["ce", "scst", "beam"])
    add_step_options(parser)
    parser.add_argument("--top", type=int, default=25, help="operators to list (default: 25)")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(args.threads)
    worker = Worker(str(REPO_ROOT))
    worker.setup(args.arch, args.step, args.patch_image_size, args.batch_size, args.beam, args.max_len_b)
    worker.run_step(args.step)  # warm-up

    print(f"{args.arch}, {args.step}, {args.batch_size} images at {args.patch_image_size} px, {args.threads} threads")
    for name, seconds in timed_parts(worker, args.step).items():
        print(f"{name:14} {seconds:8.3f} s")

    peak, running, moments = memory_timeline(worker, args.step)
    print(f"\npeak memory {peak / 2 ** 20:.1f} MB, reached in: {' > '.join(running)}")
    print("live MB at 0%, 5%, ..., 100% of the step: " + " ".join(f"{m / 2 ** 20:.0f}" for m in moments))

    worker.model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        worker.run_step(args.step)
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
