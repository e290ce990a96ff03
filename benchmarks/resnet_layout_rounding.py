"""How far the ResNet's fp32 gradients lie from exact (float64) ones, in the layout the CPU path uses
(channels-last images) and in the plain contiguous layout.

    python benchmarks/resnet_layout_rounding.py
    python benchmarks/resnet_layout_rounding.py --resnet resnet101 --image-size 256 --batch-size 2

One float64 ResNet in training mode (batch statistics, as in stage 1) is copied into float32 twice.
Both copies run the same images forward and take the gradient of the same random projection of the
output: one with the images laid out channels-last (what `ResNet.forward` does on the CPU), one with the
layers called on contiguous images, as before. Printed for each: the relative error of the output and
the median and largest relative error (L2 norm, per parameter tensor) of the gradients against float64.
Changing the layout changes the order in which oneDNN sums, so the two fp32 copies differ from each other
by about as much as each differs from float64; this says how large that rounding is.
"""
import argparse
import copy
import statistics

import torch

from ofa_sic.models.resnet import BLOCKS_PER_LAYER, ResNet


def layers_in_contiguous_layout(model: ResNet, images: torch.Tensor) -> torch.Tensor:
    """ResNet.forward without its channels-last conversion: [B, 3, H, W] -> [B, 1024, H/16, W/16]."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(images.contiguous()))))
    return model.layer3(model.layer2(model.layer1(x)))


def output_and_gradients(reference: ResNet, dtype: torch.dtype, images: torch.Tensor, channels_last: bool):
    """(output [B, 1024, h, w], {name: gradient}) in float64 of a `dtype` copy of `reference`."""
    model = copy.deepcopy(reference).to(dtype).train()
    x = images.to(dtype)
    output = model(x) if channels_last else layers_in_contiguous_layout(model, x)
    (output.double() * projection(output.shape)).sum().backward()
    return output.double(), {name: p.grad.double() for name, p in model.named_parameters()}


def projection(shape) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resnet", default="resnet18", choices=sorted(BLOCKS_PER_LAYER))
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = ResNet(BLOCKS_PER_LAYER[args.resnet]).double()
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, dtype=torch.float64)
    exact_output, exact_grads = output_and_gradients(reference, torch.float64, images, channels_last=False)
    print(f"{args.resnet}, {args.batch_size} images at {args.image_size} px, training mode; errors against float64")
    print(f"{'fp32 layout':<16} {'output':>10} {'grad median':>12} {'grad max':>10}")
    for name, channels_last in (("contiguous", False), ("channels-last", True)):
        output, grads = output_and_gradients(reference, torch.float32, images, channels_last)
        errors = [relative(grads[key], exact_grads[key]) for key in exact_grads]
        print(f"{name:<16} {relative(output, exact_output):>10.2e} {statistics.median(errors):>12.2e} {max(errors):>10.2e}")
