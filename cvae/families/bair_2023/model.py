"""The 2023 SVG-style CVAE modules, layer for layer as the TA template builds them
(docs/BAIR-2023.md; Denton & Fergus 2018 `vgg_64` and `lstm_models`).

`width` multiplies the VGG channel widths 64/128/256/512 (1.0 = the template);
it exists for CPU demos and changes nothing else.
"""
from __future__ import annotations

import torch
from torch import nn

from cvae.families.bair_2023.config import COND_DIM, BairConfig

LEAKY_SLOPE = 0.2


def vgg_widths(width: float) -> tuple[int, int, int, int]:
    """The four stage widths 64, 128, 256, 512 times `width` (at least 1 channel each)."""
    return tuple(max(1, round(c * width)) for c in (64, 128, 256, 512))  # type: ignore[return-value]


def vgg_layer(nin: int, nout: int) -> nn.Sequential:
    """Conv3x3 s1 p1, BatchNorm, LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(nin, nout, 3, 1, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(LEAKY_SLOPE, inplace=True))


class Encoder(nn.Module):
    """64x64 frame -> h (B, g) and skips h1..h4 at 64/32/16/8 px."""

    def __init__(self, g_dim: int, width: float = 1.0, nc: int = 3) -> None:
        super().__init__()
        c1, c2, c3, c4 = vgg_widths(width)
        self.c1 = nn.Sequential(vgg_layer(nc, c1), vgg_layer(c1, c1))                       # 64
        self.c2 = nn.Sequential(vgg_layer(c1, c2), vgg_layer(c2, c2))                       # 32
        self.c3 = nn.Sequential(vgg_layer(c2, c3), vgg_layer(c3, c3), vgg_layer(c3, c3))    # 16
        self.c4 = nn.Sequential(vgg_layer(c3, c4), vgg_layer(c4, c4), vgg_layer(c4, c4))    # 8
        self.c5 = nn.Sequential(nn.Conv2d(c4, g_dim, 4, 1, 0), nn.BatchNorm2d(g_dim), nn.Tanh())  # 4 -> 1
        self.mp = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.g_dim = g_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h1 = self.c1(x)
        h2 = self.c2(self.mp(h1))
        h3 = self.c3(self.mp(h2))
        h4 = self.c4(self.mp(h3))
        h5 = self.c5(self.mp(h4))
        return h5.view(-1, self.g_dim), [h1, h2, h3, h4]


class Decoder(nn.Module):
    """cat(h (B, g), skips) -> 64x64 frame in [0, 1] (sigmoid)."""

    def __init__(self, g_dim: int, width: float = 1.0, nc: int = 3) -> None:
        super().__init__()
        c1, c2, c3, c4 = vgg_widths(width)
        self.upc1 = nn.Sequential(nn.ConvTranspose2d(g_dim, c4, 4, 1, 0), nn.BatchNorm2d(c4),
                                  nn.LeakyReLU(LEAKY_SLOPE, inplace=True))                  # 1 -> 4
        self.upc2 = nn.Sequential(vgg_layer(2 * c4, c4), vgg_layer(c4, c4), vgg_layer(c4, c3))  # 8
        self.upc3 = nn.Sequential(vgg_layer(2 * c3, c3), vgg_layer(c3, c3), vgg_layer(c3, c2))  # 16
        self.upc4 = nn.Sequential(vgg_layer(2 * c2, c2), vgg_layer(c2, c1))                     # 32
        self.upc5 = nn.Sequential(vgg_layer(2 * c1, c1), nn.ConvTranspose2d(c1, nc, 3, 1, 1), nn.Sigmoid())  # 64
        self.up = nn.UpsamplingNearest2d(scale_factor=2)
        self.g_dim = g_dim

    def forward(self, h: torch.Tensor, skip: list[torch.Tensor]) -> torch.Tensor:
        d1 = self.upc1(h.view(-1, self.g_dim, 1, 1))
        d2 = self.upc2(torch.cat([self.up(d1), skip[3]], 1))
        d3 = self.upc3(torch.cat([self.up(d2), skip[2]], 1))
        d4 = self.upc4(torch.cat([self.up(d3), skip[1]], 1))
        return self.upc5(torch.cat([self.up(d4), skip[0]], 1))


class LSTMStack(nn.Module):
    """The template's `lstm`: Linear in->hid, L x LSTMCell, Linear hid->out, BatchNorm1d, Tanh.

    State lives in the module between calls of one sequence; `init_hidden(batch)`
    resets it to zeros (the template does so at every sequence)."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int) -> None:
        super().__init__()
        self.hidden_size, self.n_layers = hidden_size, n_layers
        self.embed = nn.Linear(input_size, hidden_size)
        self.lstm = nn.ModuleList([nn.LSTMCell(hidden_size, hidden_size) for _ in range(n_layers)])
        self.output = nn.Sequential(nn.Linear(hidden_size, output_size), nn.BatchNorm1d(output_size), nn.Tanh())
        self.hidden: list[tuple[torch.Tensor, torch.Tensor]] = []

    def init_hidden(self, batch: int, device: torch.device) -> None:
        zeros = torch.zeros(batch, self.hidden_size, device=device)
        self.hidden = [(zeros, zeros) for _ in range(self.n_layers)]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        h_in = self.embed(x)
        for i, cell in enumerate(self.lstm):
            self.hidden[i] = cell(h_in, self.hidden[i])
            h_in = self.hidden[i][0]
        return h_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self._run(x))


class GaussianLSTM(LSTMStack):
    """The template's `gaussian_lstm`: the same body with Linear heads mu and logvar.

    The template's `reparameterize` is a stub; filled as z = mu + eps * exp(0.5 * logvar)."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int) -> None:
        super().__init__(input_size, output_size, hidden_size, n_layers)
        del self.output
        self.mu_net = nn.Linear(hidden_size, output_size)
        self.logvar_net = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self._run(x)
        mu, logvar = self.mu_net(h), self.logvar_net(h)
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar


def init_weights(m: nn.Module) -> None:
    """The template's init: Conv*/Linear ~ N(0, 0.02), bias 0; BatchNorm gamma ~ N(1, 0.02), beta 0.
    LSTMCells keep PyTorch's default."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        m.weight.data.normal_(0.0, 0.02)
        if m.bias is not None:
            m.bias.data.fill_(0)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class SVG(nn.Module):
    """The four modules of the template: encoder, decoder, frame predictor, posterior.

    Predictor = lstm(g + z + 7, g, rnn, predictor layers); posterior = gaussian_lstm(g, z, rnn,
    posterior layers). Predictor input order: cat[h_{t-1}, z_t, c_t] (the template's wiring;
    c_t is the condition row of the frame being predicted)."""

    def __init__(self, g_dim: int = 128, z_dim: int = 64, rnn_size: int = 256, predictor_rnn_layers: int = 2,
                 posterior_rnn_layers: int = 1, width: float = 1.0, cond_dim: int = COND_DIM) -> None:
        super().__init__()
        self.g_dim, self.z_dim, self.cond_dim = g_dim, z_dim, cond_dim
        self.encoder = Encoder(g_dim, width)
        self.decoder = Decoder(g_dim, width)
        self.frame_predictor = LSTMStack(g_dim + z_dim + cond_dim, g_dim, rnn_size, predictor_rnn_layers)
        self.posterior = GaussianLSTM(g_dim, z_dim, rnn_size, posterior_rnn_layers)
        self.apply(init_weights)

    @classmethod
    def from_config(cls, cfg: BairConfig) -> "SVG":
        return cls(cfg.g_dim, cfg.z_dim, cfg.rnn_size, cfg.predictor_rnn_layers, cfg.posterior_rnn_layers, cfg.width)

    def init_hidden(self, batch: int, device: torch.device) -> None:
        self.frame_predictor.init_hidden(batch, device)
        self.posterior.init_hidden(batch, device)
