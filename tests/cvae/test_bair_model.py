"""The 2023 SVG-style modules: layer shapes, parameter counts against a hand derivation
from the 2023 template's layer list (docs/BAIR-2023.md), init, width multiplier."""
from __future__ import annotations

import torch
from torch import nn

from cvae.families.bair_2023.config import BairConfig
from cvae.families.bair_2023.model import SVG, Decoder, Encoder, GaussianLSTM, LSTMStack, vgg_widths


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- the hand derivation ---------------------------------------------------------------
def vgg(i: int, o: int) -> int:
    """Conv3x3 (9io weights + o bias) + BatchNorm (o gamma + o beta)."""
    return 9 * i * o + o + 2 * o


def encoder_params(g: int) -> int:
    stages = (vgg(3, 64) + vgg(64, 64)                                     # 64 px
              + vgg(64, 128) + vgg(128, 128)                               # 32 px
              + vgg(128, 256) + 2 * vgg(256, 256)                          # 16 px
              + vgg(256, 512) + 2 * vgg(512, 512))                         # 8 px
    return stages + (16 * 512 * g + g) + 2 * g                             # Conv(512->g, k4) + BN


def decoder_params(g: int) -> int:
    return ((16 * g * 512 + 512) + 2 * 512                                 # ConvT(g->512, k4) + BN
            + vgg(1024, 512) + vgg(512, 512) + vgg(512, 256)
            + vgg(512, 256) + vgg(256, 256) + vgg(256, 128)
            + vgg(256, 128) + vgg(128, 64)
            + vgg(128, 64) + (9 * 64 * 3 + 3))                             # ConvT(64->3, k3)


def lstm_cells(hidden: int, layers: int) -> int:
    return layers * (4 * hidden * hidden * 2 + 2 * 4 * hidden)             # W_ih, W_hh, b_ih, b_hh


def predictor_params(inp: int, out: int, hidden: int, layers: int) -> int:
    return (inp * hidden + hidden) + lstm_cells(hidden, layers) + (hidden * out + out) + 2 * out


def posterior_params(inp: int, out: int, hidden: int, layers: int) -> int:
    return (inp * hidden + hidden) + lstm_cells(hidden, layers) + 2 * (hidden * out + out)


def test_parameter_counts_match_the_hand_derivation_at_template_dims():
    model = SVG.from_config(BairConfig())  # g 128, z 64, rnn 256, predictor 2 layers, posterior 1
    assert count(model.encoder) == encoder_params(128)
    assert count(model.decoder) == decoder_params(128)
    assert count(model.frame_predictor) == predictor_params(128 + 64 + 7, 128, 256, 2)
    assert count(model.posterior) == posterior_params(128, 64, 256, 1)
    total = encoder_params(128) + decoder_params(128) + predictor_params(199, 128, 256, 2) + posterior_params(128, 64, 256, 1)
    assert count(model) == total


def test_predictor_input_is_g_plus_z_plus_the_7_condition_values():
    model = SVG()
    assert model.frame_predictor.embed.in_features == 128 + 64 + 7 == 199
    assert model.posterior.embed.in_features == 128


def test_encoder_shapes_and_skips():
    enc = Encoder(128).eval()
    h, skips = enc(torch.rand(2, 3, 64, 64))
    assert h.shape == (2, 128) and h.abs().max() <= 1  # tanh
    assert [tuple(s.shape) for s in skips] == [(2, 64, 64, 64), (2, 128, 32, 32), (2, 256, 16, 16), (2, 512, 8, 8)]


def test_decoder_shape_and_range():
    enc, dec = Encoder(128).eval(), Decoder(128).eval()
    _, skips = enc(torch.rand(2, 3, 64, 64))
    x = dec(torch.rand(2, 128), skips)
    assert x.shape == (2, 3, 64, 64) and 0 <= x.min() and x.max() <= 1  # sigmoid


def test_lstm_shapes_and_state_reset():
    lstm = LSTMStack(10, 6, 16, 2).eval()
    lstm.init_hidden(3, torch.device("cpu"))
    first = lstm(torch.ones(3, 10))
    second = lstm(torch.ones(3, 10))
    assert first.shape == (3, 6) and not torch.allclose(first, second)  # state carried over
    lstm.init_hidden(3, torch.device("cpu"))
    assert torch.allclose(lstm(torch.ones(3, 10)), first)
    post = GaussianLSTM(10, 4, 16, 1)
    post.init_hidden(3, torch.device("cpu"))
    eps = torch.randn(3, 4)
    z, mu, logvar = post(torch.ones(3, 10), eps)
    assert torch.allclose(z, mu + eps * torch.exp(0.5 * logvar))


def test_init_as_the_template():
    torch.manual_seed(0)
    model = SVG()
    conv = model.encoder.c4[1][0].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and model.encoder.c4[1][0].bias.abs().max() == 0
    bn = model.encoder.c4[1][1].weight
    assert abs(bn.mean().item() - 1) < 0.01 and 0.01 < bn.std().item() < 0.03
    # LSTMCells keep PyTorch's default U(-1/sqrt(h), 1/sqrt(h))
    cell = model.frame_predictor.lstm[0].weight_hh
    assert cell.abs().max() <= 1 / 16 + 1e-6 and cell.std() > 0.03


def test_width_multiplier_scales_the_vgg_channels_only():
    assert vgg_widths(1.0) == (64, 128, 256, 512)
    assert vgg_widths(0.125) == (8, 16, 32, 64)
    small = SVG(g_dim=16, z_dim=4, rnn_size=8, width=0.125).eval()
    _, skips = small.encoder(torch.rand(2, 3, 64, 64))
    assert [s.shape[1] for s in skips] == [8, 16, 32, 64]
    assert count(small) < count(SVG(g_dim=16, z_dim=4, rnn_size=8)) / 20
