"""What one small operator costs with 1 and with 2 torch threads, on this machine as it is now.

    python benchmarks/bench_thread_stall.py

Times the operators of one beam-search step of ofa_base at beam 5 x 2 images (a [10, 768] x
[768, 768] linear layer and a LayerNorm on [1, 10, 768]), 500 calls each after 50 warm-up calls.
On an idle machine 2 threads cost about what 1 does; while other jobs keep the cores busy, each
2-thread operator waits for a displaced thread's next time slice (milliseconds), which is why
bench_speed.py is run with `--threads 1` on a shared machine.
"""
import time

import torch


def microseconds_per_call(function, calls: int = 500, warmup: int = 50) -> float:
    for _ in range(warmup):
        function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def main():
    rows = torch.randn(10, 768)
    linear = torch.nn.Linear(768, 768)
    norm = torch.nn.LayerNorm(768)
    operators = {"linear [10, 768] x [768, 768]": lambda: linear(rows),
                 "LayerNorm [1, 10, 768]": lambda: norm(rows.view(1, 10, 768))}
    with torch.no_grad():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, function in operators.items():
                print(f"{threads} thread(s)  {name:32} {microseconds_per_call(function):10.1f} us per call")


if __name__ == "__main__":
    main()
