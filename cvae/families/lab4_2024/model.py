"""The Lab4 (2024) CVAE modules, layer for layer as the template builds them.

Modules only: the training step lives in step.py and the loop in
train.py. Every conv has stride 1 and "same" padding, so every feature map
keeps the frame's H x W. Channel fractions (c/4, c/2, ...) use integer division
as the template does.

By default the modules compute the template's function. Two of its quirks are
options, because a user may well want them changed (docs/SPACES.md lists both):
- `leaky_slope`: the template writes `nn.LeakyReLU(True)` in the label encoder
  and the Gaussian predictor. Its first positional argument is `negative_slope`,
  so that is a slope of 1.0, i.e. the identity (the default, TEMPLATE_LEAKY_SLOPE);
  0.01 makes them real non-linearities, like every other activation in the model.
- `output_activation`: the template's Generator ends in a 1x1 conv with no
  activation ("none", the default); "sigmoid" keeps frames in [0, 1].
"""
from __future__ import annotations

import torch
from torch import nn

# The slope of every LeakyReLU the template writes with an explicit slope.
LEAKY_SLOPE = 0.01
# nn.LeakyReLU(True) in the template's label encoder and Gaussian predictor: slope 1.0.
TEMPLATE_LEAKY_SLOPE = 1.0
# ConvFFN's gate slope, as in the template's layers.py.
FFN_SLOPE = 0.1


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1)


def conv1x1(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1)


class ResidualBlock(nn.Module):
    """conv3x3 -> LeakyReLU -> conv3x3 -> LeakyReLU, plus a (1x1-adapted) skip."""

    def __init__(self, in_ch: int, out_ch: int, slope: float = LEAKY_SLOPE) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.leaky_relu = nn.LeakyReLU(negative_slope=slope)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.adaptor = conv1x1(in_ch, out_ch) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.adaptor is None else self.adaptor(x)
        out = self.leaky_relu(self.conv1(x))
        out = self.leaky_relu(self.conv2(out))
        return out + identity


class DepthConv(nn.Module):
    """1x1 -> LeakyReLU -> depthwise 3x3 -> 1x1, plus a (1x1-adapted) skip."""

    def __init__(self, in_ch: int, out_ch: int, depth_kernel: int = 3, slope: float = LEAKY_SLOPE) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(conv1x1(in_ch, in_ch), nn.LeakyReLU(negative_slope=slope))
        self.depth_conv = nn.Conv2d(in_ch, in_ch, depth_kernel, padding=depth_kernel // 2, groups=in_ch)
        self.conv2 = conv1x1(in_ch, out_ch)
        self.adaptor = conv1x1(in_ch, out_ch) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.adaptor is None else self.adaptor(x)
        out = self.conv2(self.depth_conv(self.conv1(x)))
        return out + identity


class ConvFFN(nn.Module):
    """Gated feed-forward: 1x1 (c -> 4c), x1 * LeakyReLU(x2) on the halves, 1x1 (2c -> c), plus skip."""

    def __init__(self, in_ch: int, slope: float = FFN_SLOPE) -> None:
        super().__init__()
        internal_ch = in_ch * 2
        self.conv = conv1x1(in_ch, internal_ch * 2)
        self.conv_out = conv1x1(internal_ch, in_ch)
        self.relu = nn.LeakyReLU(negative_slope=slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.conv(x).chunk(2, dim=1)
        return x + self.conv_out(x1 * self.relu(x2))


class DepthConvBlock(nn.Module):
    """DepthConv(in, out) then ConvFFN(out)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.block = nn.Sequential(DepthConv(in_ch, out_ch), ConvFFN(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class RGB_Encoder(nn.Sequential):
    """Frame (B, 3, H, W) -> feature (B, F, H, W)."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        c = out_chans
        super().__init__(
            ResidualBlock(in_chans, c // 8),
            DepthConvBlock(c // 8, c // 8),
            ResidualBlock(c // 8, c // 4),
            DepthConvBlock(c // 4, c // 4),
            ResidualBlock(c // 4, c // 2),
            DepthConvBlock(c // 2, c // 2),
            nn.Conv2d(c // 2, c, kernel_size=3, padding=1),
        )


class Label_Encoder(nn.Sequential):
    """Pose image (B, 3, H, W) -> feature (B, L, H, W)."""

    def __init__(self, in_chans: int, out_chans: int, slope: float = TEMPLATE_LEAKY_SLOPE) -> None:
        super().__init__(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_chans, out_chans // 2, kernel_size=7, padding=0),
            nn.BatchNorm2d(out_chans // 2),
            # Template: nn.LeakyReLU(True) == slope 1.0 == identity (leaky_slope).
            nn.LeakyReLU(negative_slope=slope),
            ResidualBlock(out_chans // 2, out_chans),
        )


class Gaussian_Predictor(nn.Sequential):
    """cat(frame feature, label feature) -> (z, mu, logvar), each (B, N, H, W)."""

    def __init__(self, in_chans: int, out_chans: int, slope: float = TEMPLATE_LEAKY_SLOPE) -> None:
        n = out_chans
        super().__init__(
            ResidualBlock(in_chans, n // 4),
            DepthConvBlock(n // 4, n // 4),
            ResidualBlock(n // 4, n // 2),
            DepthConvBlock(n // 2, n // 2),
            ResidualBlock(n // 2, n),
            # Template: nn.LeakyReLU(True) == identity (leaky_slope).
            nn.LeakyReLU(negative_slope=slope),
            nn.Conv2d(n, n * 2, kernel_size=1),
        )

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, img: torch.Tensor, label: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        params = super().forward(torch.cat([img, label], dim=1))  # (B, 2N, H, W)
        mu, logvar = torch.chunk(params, 2, dim=1)
        return self.reparameterize(mu, logvar, eps), mu, logvar


class Decoder_Fusion(nn.Sequential):
    """cat(previous-frame feature, label feature, z) -> (B, D, H, W)."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        c, d = in_chans, out_chans
        super().__init__(
            DepthConvBlock(c, c),
            ResidualBlock(c, c // 4),
            DepthConvBlock(c // 4, c // 2),
            ResidualBlock(c // 2, c // 2),
            DepthConvBlock(c // 2, d // 2),
            nn.Conv2d(d // 2, d, kernel_size=1),
        )

    def forward(self, img: torch.Tensor, label: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([img, label, z], dim=1))


class Generator(nn.Sequential):
    """Decoder feature (B, D, H, W) -> frame (B, 3, H, W)."""

    def __init__(self, input_nc: int, output_activation: str = "none") -> None:
        d = input_nc
        layers: list[nn.Module] = [
            DepthConvBlock(d, d),
            ResidualBlock(d, d // 2),
            DepthConvBlock(d // 2, d // 2),
            ResidualBlock(d // 2, d // 4),
            DepthConvBlock(d // 4, d // 4),
            ResidualBlock(d // 4, d // 8),
            DepthConvBlock(d // 8, d // 8),
            nn.Conv2d(d // 8, 3, kernel_size=1),
        ]
        if output_activation == "sigmoid":
            layers.append(nn.Sigmoid())
        elif output_activation != "none":
            raise ValueError(f"output_activation is {output_activation!r}, but must be 'none' or 'sigmoid'")
        super().__init__(*layers)


class CVAE(nn.Module):
    """Container for the five modules; the step functions in step.py wire them."""

    def __init__(self, F_dim: int, L_dim: int, N_dim: int, D_out_dim: int,
                 output_activation: str = "none", leaky_slope: float = TEMPLATE_LEAKY_SLOPE) -> None:
        super().__init__()
        self.N_dim = N_dim
        self.frame_transformation = RGB_Encoder(3, F_dim)
        self.label_transformation = Label_Encoder(3, L_dim, leaky_slope)
        self.Gaussian_Predictor = Gaussian_Predictor(F_dim + L_dim, N_dim, leaky_slope)
        self.Decoder_Fusion = Decoder_Fusion(F_dim + L_dim + N_dim, D_out_dim)
        self.Generator = Generator(D_out_dim, output_activation)

    @classmethod
    def from_config(cls, cfg) -> "CVAE":  # cfg: the family's TrainConfig
        return cls(cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim, cfg.output_activation, cfg.leaky_slope)

    def decode(self, prev_feat: torch.Tensor, label_feat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Fused decoder + generator: (B, F), (B, L), (B, N) feature maps -> (B, 3, H, W)."""
        return self.Generator(self.Decoder_Fusion(prev_feat, label_feat, z))
