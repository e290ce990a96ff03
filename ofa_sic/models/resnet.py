"""OFA's visual backbone: a ResNet stem plus layer1..layer3 of Bottleneck blocks (stride 16).

Parameter names follow torchvision/OFA (`conv1`, `bn1`, `layer1.0.downsample.0`, ...), so released
checkpoints load unchanged. Every depth uses Bottleneck blocks, including OFA's "resnet18".
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ofa_sic.models.drop_path import DropPath

BLOCKS_PER_LAYER = {
    "resnet18": (2, 2, 2),
    "resnet34": (3, 4, 6),
    "resnet50": (3, 4, 6),
    "resnet101": (3, 4, 23),
    "resnet152": (3, 8, 36),
}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters, all stored as buffers.

    Used by `--freeze-resnet`: the backbone's normalisation never updates, whatever the batch.
    Checkpoints from a trainable BatchNorm load into it (their `num_batches_tracked` is dropped).
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> [B, C, H, W]."""
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def sync_batch_norm(num_features: int) -> nn.Module:
    """OFA's `--sync-bn` layer: SyncBatchNorm with momentum 0.1 and eps 1e-3 (OFA's values)."""
    return nn.SyncBatchNorm(num_features, momentum=0.1, eps=1e-3)


def make_norm_layer(freeze: bool, sync: bool):
    """The normalisation layer class OFA picks: SyncBN wins over frozen BN, else plain BatchNorm2d."""
    if sync:
        return sync_batch_norm
    if freeze:
        return FrozenBatchNorm2d
    return nn.BatchNorm2d


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 convolutions with a residual; output channels = 4 * planes."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=nn.BatchNorm2d, drop_path_rate=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(identity + self.drop_path(out))


class ResNet(nn.Module):
    """Stem + three Bottleneck stages. Input [B, 3, H, W] -> features [B, 1024, H/16, W/16]."""

    def __init__(self, blocks_per_layer, norm_layer=nn.BatchNorm2d, drop_path_rate=0.0):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, blocks_per_layer[0], 1, norm_layer, drop_path_rate)
        self.layer2 = self._make_layer(128, blocks_per_layer[1], 2, norm_layer, drop_path_rate)
        self.layer3 = self._make_layer(256, blocks_per_layer[2], 2, norm_layer, drop_path_rate)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, planes, blocks, stride, norm_layer, drop_path_rate):
        out_channels = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out_channels, kernel_size=1, stride=stride, bias=False),
                norm_layer(out_channels),
            )
        # As in OFA: the first block of a stage never drops its path; the others ramp up linearly.
        rates = torch.linspace(0, drop_path_rate, blocks, device="cpu").tolist()
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, norm_layer)]
        self.inplanes = out_channels
        for i in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes, norm_layer=norm_layer, drop_path_rate=rates[i]))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 3, H, W] -> [B, 1024, H/16, W/16].

        On the CPU the images are laid out channels-last (NHWC) first: oneDNN's convolutions and batch
        norm run faster in that layout, forward and backward, which makes the demo's stage-1 epoch
        faster (BENCHMARKS.md, "Stage 1 speed"). The arithmetic is the same, summed in another order,
        so results agree to rounding. On a GPU the layout is left as it comes (not measured there).
        """
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))
