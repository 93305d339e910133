"""The Lab4 2024 template's modules, rebuilt in the test from their published
structure (the course's modules/layers.py and modules/modules.py): the same
submodule and tensor names, the same layers, so that a checkpoint the
template's Tester can load is one these load with strict=True.

Written independently of cvae/families/lab4_2024/model.py on purpose: the export test compares the
two, so a shared bug would hide. Where the template is quirky it is kept:
`nn.LeakyReLU(True)` (slope 1.0) in Label_Encoder and Gaussian_Predictor, no
activation after the Generator's last conv, ResidualBlock's shortcut named `skip`."""
from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.leaky_relu = nn.LeakyReLU(inplace=True)  # default slope 0.01
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.skip is None else self.skip(x)
        return self.leaky_relu(self.conv2(self.leaky_relu(self.conv1(x)))) + shortcut


class DepthConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_ch, in_ch, 1), nn.LeakyReLU(negative_slope=0.01))
        self.depth_conv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 1)
        self.adaptor = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.adaptor is None else self.adaptor(x)
        return self.conv2(self.depth_conv(self.conv1(x))) + shortcut


class ConvFFN(nn.Module):
    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, in_ch * 4, 1)
        self.conv_out = nn.Conv2d(in_ch * 2, in_ch, 1)
        self.relu = nn.LeakyReLU(negative_slope=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, 1)
        return x + self.conv_out(a * self.relu(b))


class DepthConvBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.block = nn.Sequential(DepthConv(in_ch, out_ch), ConvFFN(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def generator(d: int) -> nn.Sequential:
    return nn.Sequential(DepthConvBlock(d, d), ResidualBlock(d, d // 2), DepthConvBlock(d // 2, d // 2),
                         ResidualBlock(d // 2, d // 4), DepthConvBlock(d // 4, d // 4),
                         ResidualBlock(d // 4, d // 8), DepthConvBlock(d // 8, d // 8), nn.Conv2d(d // 8, 3, 1))


def rgb_encoder(f: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(3, f // 8), DepthConvBlock(f // 8, f // 8), ResidualBlock(f // 8, f // 4),
                         DepthConvBlock(f // 4, f // 4), ResidualBlock(f // 4, f // 2),
                         DepthConvBlock(f // 2, f // 2), nn.Conv2d(f // 2, f, 3, padding=1))


def label_encoder(l: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, l // 2, 7), nn.BatchNorm2d(l // 2),
                         nn.LeakyReLU(True), ResidualBlock(l // 2, l))


def gaussian_predictor(c: int, n: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(c, n // 4), DepthConvBlock(n // 4, n // 4), ResidualBlock(n // 4, n // 2),
                         DepthConvBlock(n // 2, n // 2), ResidualBlock(n // 2, n), nn.LeakyReLU(True),
                         nn.Conv2d(n, n * 2, 1))


def decoder_fusion(c: int, d: int) -> nn.Sequential:
    return nn.Sequential(DepthConvBlock(c, c), ResidualBlock(c, c // 4), DepthConvBlock(c // 4, c // 2),
                         ResidualBlock(c // 2, c // 2), DepthConvBlock(c // 2, d // 2), nn.Conv2d(d // 2, d, 1))


class TemplateVAE(nn.Module):
    """The template's VAE_Model as its Tester sees it: five submodules, nothing else with weights."""

    def __init__(self, F_dim: int, L_dim: int, N_dim: int, D_out_dim: int) -> None:
        super().__init__()
        self.frame_transformation = rgb_encoder(F_dim)
        self.label_transformation = label_encoder(L_dim)
        self.Gaussian_Predictor = gaussian_predictor(F_dim + L_dim, N_dim)
        self.Decoder_Fusion = decoder_fusion(F_dim + L_dim + N_dim, D_out_dim)
        self.Generator = generator(D_out_dim)

    def next_frame(self, prev: torch.Tensor, label: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One step of the Tester's rollout with a given z: frame t from frame t-1 and label t."""
        return self.Generator(self.Decoder_Fusion(torch.cat(
            [self.frame_transformation(prev), self.label_transformation(label), z], dim=1)))

    def posterior(self, frame: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of the Gaussian predictor for a frame and its label."""
        params = self.Gaussian_Predictor(torch.cat([self.frame_transformation(frame),
                                                    self.label_transformation(label)], dim=1))
        return torch.chunk(params, 2, dim=1)
