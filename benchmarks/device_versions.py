"""What a check runs with, as one JSON object, and whether it is what the check means to run.

    python3 benchmarks/device_versions.py WHEELS TARGET

Checks (each failure is listed under "problems", and the exit status is then 1):
- every `name==version` of WHEELS/requirements.txt (benchmarks/device_wheels.sh) is installed at that
  version in TARGET (benchmarks/device_env.sh), not found elsewhere on the path;
- fairseq is imported from TARGET, ofa_sic and criterions from this checkout;
- `fairseq-train`, `fairseq-generate` and `ofa-sic` on PATH are the scripts in TARGET/bin;
- torch is at least 2.6 (ofa_sic.checkpoints relies on weights_only loading).
Reported besides: Python, torch (its CUDA and cuDNN, the GPU's name, memory and compute capability),
the packages the commands import, and how torch differs from the CPU build that the test suite pins
(the Makefile's TORCH_VERSION).
"""
import importlib.metadata
import json
import platform
import re
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MINIMUM_TORCH = (2, 6)
REPORTED = ("numpy", "pillow", "tokenizers", "sacrebleu", "regex", "scikit-learn", "PyYAML", "tqdm", "transformers")


def release(version: str):
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def is_inside(path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    wheels, target = Path(sys.argv[1]), Path(sys.argv[2])
    problems = []
    pins = [line.split("==") for line in (wheels / "requirements.txt").read_text().split() if "==" in line]
    installed = {}
    for name, version in pins:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        installed[name] = distribution.version
        if distribution.version != version:
            problems.append(f"{name} {distribution.version} is installed, the wheels pin {version}")
        if not is_inside(distribution.locate_file(""), target):
            problems.append(f"{name} comes from {distribution.locate_file('')}, not from {target}")

    import torch

    import criterions
    import fairseq
    import ofa_sic

    if not is_inside(fairseq.__file__, target):
        problems.append(f"fairseq is imported from {fairseq.__file__}, not from {target}")
    for module in (ofa_sic, criterions):
        if not is_inside(module.__file__, REPO_ROOT):
            problems.append(f"{module.__name__} is imported from {module.__file__}, not from {REPO_ROOT}")
    for script in ("fairseq-train", "fairseq-generate", "ofa-sic"):
        found = shutil.which(script)
        if found is None or not is_inside(found, target / "bin"):
            problems.append(f"{script} on PATH is {found}, not {target / 'bin' / script}")
    if release(torch.__version__) < MINIMUM_TORCH:
        problems.append(f"torch {torch.__version__} is older than {'.'.join(map(str, MINIMUM_TORCH))}")

    cpu_pin = re.search(r"^TORCH_VERSION \?= (\S+)", (REPO_ROOT / "Makefile").read_text(), flags=re.M).group(1)
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "torch_vs_cpu_pin": (
            f"same release as the test suite's CPU pin {cpu_pin}" if release(torch.__version__) == release(cpu_pin)
            else f"torch {torch.__version__} here; the test suite runs on the CPU build of {cpu_pin}: the suite has "
                 f"not run on this release, and the figures here are this release's kernels"
        ),
        "installed_from_wheels": installed,
        "fairseq": fairseq.__version__,
        "others": {},
    }
    for name in REPORTED:
        try:
            versions["others"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions["others"][name] = None
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        versions.update(gpu=properties.name, gpu_total_gib=round(properties.total_memory / 2 ** 30, 2),
                        gpu_capability=f"{properties.major}.{properties.minor}", gpu_count=torch.cuda.device_count())
    else:
        versions["gpu"] = None
    versions["problems"] = problems
    print(json.dumps(versions))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
