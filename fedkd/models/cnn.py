"""Small CNNs with GroupNorm (Opacus rejects BatchNorm, which mixes samples)."""

from __future__ import annotations

import torch
from torch import nn

from fedkd.models.registry import ModelSpec, register_model


def _conv_block(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
        nn.GroupNorm(groups, c_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class CNN(nn.Module):
    """Two or three conv blocks, global pooling to 2×2, and a linear classifier.

    The adaptive pool makes one architecture serve 8×8 digits and 28×28 MNIST alike.
    """

    def __init__(
        self, in_channels: int, widths: tuple[int, ...], num_classes: int, groups: int = 4
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c = in_channels
        for w in widths:
            blocks.append(_conv_block(c, w, groups))
            c = w
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.classifier = nn.Linear(c * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def _channels(spec: ModelSpec) -> int:
    if len(spec.input_shape) != 3:
        raise ValueError(f"CNNs need (channels, height, width) inputs, got {spec.input_shape}")
    return spec.input_shape[0]


register_model("cnn-s")(lambda spec: CNN(_channels(spec), (16, 32), spec.num_classes))
register_model("cnn-m")(lambda spec: CNN(_channels(spec), (32, 64), spec.num_classes))
register_model("cnn-l")(lambda spec: CNN(_channels(spec), (32, 64, 128), spec.num_classes))


class FedAvgCNN(nn.Module):
    """The MNIST CNN of FedAvg (McMahan et al., "Communication-Efficient Learning of Deep
    Networks from Decentralized Data", AISTATS 2017, §3): two 5×5 convolutions with 32 and
    64 channels, each followed by 2×2 max pooling, a 512-unit ReLU layer and a linear
    output.  On 28×28 inputs it has 1,663,370 parameters, the paper's "1,663,370".  No
    normalisation layer, as in the paper.
    """

    def __init__(self, in_channels: int, side: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        pooled = side // 4
        self.classifier = nn.Sequential(
            nn.Linear(64 * pooled * pooled, 512), nn.ReLU(), nn.Linear(512, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def _fedavg_cnn(spec: ModelSpec) -> FedAvgCNN:
    channels = _channels(spec)
    if spec.input_shape[1] != spec.input_shape[2] or spec.input_shape[1] < 4:
        raise ValueError(f"cnn-fedavg needs square inputs of side >= 4, got {spec.input_shape}")
    return FedAvgCNN(channels, spec.input_shape[1], spec.num_classes)


register_model("cnn-fedavg")(_fedavg_cnn)
