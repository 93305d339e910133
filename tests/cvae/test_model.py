"""The CVAE modules: parameter count derived by hand from the layer list, and shapes."""
from __future__ import annotations

import pytest
import torch

from cvae.families.lab4_2024.config import TrainConfig
from cvae.families.lab4_2024.model import (
    CVAE,
    ConvFFN,
    DepthConv,
    Gaussian_Predictor,
    Generator,
    ResidualBlock,
)

torch.set_num_threads(1)


# --- parameter counts by hand, from the template's layer list (cvae/families/lab4_2024/model.py) --------------------
def conv(k: int, cin: int, cout: int, groups: int = 1) -> int:
    return k * k * cin // groups * cout + cout


def bn(c: int) -> int:
    return 2 * c  # weight and bias (running stats are buffers)


def rb(i: int, o: int) -> int:
    return conv(3, i, o) + conv(3, o, o) + (conv(1, i, o) if i != o else 0)


def depth_conv(i: int, o: int) -> int:
    return conv(1, i, i) + conv(3, i, i, groups=i) + conv(1, i, o) + (conv(1, i, o) if i != o else 0)


def ffn(c: int) -> int:
    return conv(1, c, 4 * c) + conv(1, 2 * c, c)


def dcb(i: int, o: int) -> int:
    return depth_conv(i, o) + ffn(o)


def rgb_encoder(f: int) -> int:
    return (rb(3, f // 8) + dcb(f // 8, f // 8) + rb(f // 8, f // 4) + dcb(f // 4, f // 4)
            + rb(f // 4, f // 2) + dcb(f // 2, f // 2) + conv(3, f // 2, f))


def label_encoder(l: int) -> int:
    return conv(7, 3, l // 2) + bn(l // 2) + rb(l // 2, l)


def gaussian_predictor(i: int, n: int) -> int:
    return (rb(i, n // 4) + dcb(n // 4, n // 4) + rb(n // 4, n // 2) + dcb(n // 2, n // 2)
            + rb(n // 2, n) + conv(1, n, 2 * n))


def decoder_fusion(c: int, d: int) -> int:
    return (dcb(c, c) + rb(c, c // 4) + dcb(c // 4, c // 2) + rb(c // 2, c // 2)
            + dcb(c // 2, d // 2) + conv(1, d // 2, d))


def generator(d: int) -> int:
    return (dcb(d, d) + rb(d, d // 2) + dcb(d // 2, d // 2) + rb(d // 2, d // 4) + dcb(d // 4, d // 4)
            + rb(d // 4, d // 8) + dcb(d // 8, d // 8) + conv(1, d // 8, 3))


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_at_lab_dims_matches_hand_derivation() -> None:
    F, L, N, D = 128, 32, 12, 192
    model = CVAE(F, L, N, D, "sigmoid")
    assert n_params(model.frame_transformation) == rgb_encoder(F)
    assert n_params(model.label_transformation) == label_encoder(L)
    assert n_params(model.Gaussian_Predictor) == gaussian_predictor(F + L, N)
    assert n_params(model.Decoder_Fusion) == decoder_fusion(F + L + N, D)
    assert n_params(model.Generator) == generator(D)
    expected = (rgb_encoder(F) + label_encoder(L) + gaussian_predictor(F + L, N)
                + decoder_fusion(F + L + N, D) + generator(D))
    assert n_params(model) == expected


@pytest.mark.parametrize("dims,hw", [((16, 8, 4, 16), (16, 32)), ((24, 6, 8, 24), (9, 13))])
def test_shapes_at_other_dims_and_frame_sizes(dims: tuple[int, int, int, int], hw: tuple[int, int]) -> None:
    F, L, N, D = dims
    H, W = hw
    model = CVAE(F, L, N, D, "none")
    B = 3
    frame, label = torch.rand(B, 3, H, W), torch.rand(B, 3, H, W)
    f = model.frame_transformation(frame)
    lab = model.label_transformation(label)
    z, mu, logvar = model.Gaussian_Predictor(f, lab)
    dec = model.Decoder_Fusion(f, lab, z)
    out = model.Generator(dec)
    assert f.shape == (B, F, H, W)
    assert lab.shape == (B, L, H, W)
    assert z.shape == mu.shape == logvar.shape == (B, N, H, W)
    assert dec.shape == (B, D, H, W)
    assert out.shape == (B, 3, H, W)


def test_gaussian_predictor_uses_given_eps() -> None:
    gp = Gaussian_Predictor(6, 4)
    a, b = torch.rand(2, 4, 5, 5), torch.rand(2, 2, 5, 5)
    eps = torch.randn(2, 4, 5, 5)
    z, mu, logvar = gp(a, b, eps)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)
    z0, mu0, _ = gp(a, b, torch.zeros_like(eps))
    torch.testing.assert_close(z0, mu0)


def test_output_activation() -> None:
    x = torch.randn(2, 16, 4, 4) * 10
    torch.manual_seed(0)
    sig = Generator(16, "sigmoid")
    torch.manual_seed(0)
    raw = Generator(16, "none")
    torch.testing.assert_close(sig(x), torch.sigmoid(raw(x)))
    with pytest.raises(ValueError, match="output_activation"):
        Generator(16, "tanh")


def _option_slopes(model: torch.nn.Module) -> list[float]:
    """Slopes of the two LeakyReLUs `leaky_slope` sets: the label encoder's (after its
    BatchNorm) and the Gaussian predictor's (before its last 1x1)."""
    label = model.label_transformation
    predictor = model.Gaussian_Predictor
    return [label[3].negative_slope, predictor[5].negative_slope]


def test_the_default_model_is_the_templates_function() -> None:
    # The template writes nn.LeakyReLU(True): slope 1.0, the identity; its Generator
    # ends in a 1x1 conv with no activation.
    model = CVAE.from_config(TrainConfig())
    assert _option_slopes(model) == [1.0, 1.0]
    assert isinstance(model.Generator[-1], torch.nn.Conv2d)
    x = torch.randn(2, 3, 5, 5)
    identity = model.label_transformation[3]
    torch.testing.assert_close(identity(x), x)  # slope 1.0 passes negatives through
    improved = CVAE.from_config(TrainConfig(leaky_slope=0.01, output_activation="sigmoid"))
    assert _option_slopes(improved) == [0.01, 0.01] and isinstance(improved.Generator[-1], torch.nn.Sigmoid)
    assert (improved.label_transformation[3](x) >= 0.01 * x - 1e-7).all() and \
        not torch.equal(improved.label_transformation[3](x), x)  # now it rectifies
    # every other LeakyReLU keeps the template's explicit 0.01
    others = [m.negative_slope for name, m in model.named_modules() if isinstance(m, torch.nn.LeakyReLU)
              and name not in ("label_transformation.3", "Gaussian_Predictor.5")]
    assert others and set(others) <= {0.01, 0.1}  # 0.1: ConvFFN's gate


def test_blocks_keep_spatial_size_and_add_identity() -> None:
    x = torch.randn(1, 4, 7, 9)
    block = ConvFFN(4)
    torch.nn.init.zeros_(block.conv_out.weight)
    torch.nn.init.zeros_(block.conv_out.bias)
    torch.testing.assert_close(block(x), x)  # zero residual branch -> identity
    assert DepthConv(4, 6)(x).shape == (1, 6, 7, 9)
    assert ResidualBlock(4, 2)(x).shape == (1, 2, 7, 9)
