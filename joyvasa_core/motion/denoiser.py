"""JoyVASA's diffusion transformer (``DenoisingNetwork``): predicts clean motion x0 from noisy motion and audio.

Weight names follow the official checkpoint (``nn.TransformerDecoderLayer`` layout under ``transformer.layers``), but
the maths is written out so that the cross-attention, which the diagonal alignment mask turns into a per-token linear
map of the audio memory, is computed once per window instead of once per diffusion step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import MotionGeneratorConfig


def sinusoid_table(rows: int, dim: int) -> torch.Tensor:
    """(1, rows, dim) float32 table: sin on even channels, cos on odd ones, built in the reference's float32 order."""
    table = torch.zeros(rows, dim)
    position = torch.arange(0, rows, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table.unsqueeze(0)


def alignment_mask(n_queries: int, n_keys: int, frame_width: int = 1) -> torch.Tensor:
    """Bool (n_queries, n_keys) mask, True = forbidden: query i may only see keys [i*w, (i+1)*w)."""
    mask = torch.ones(n_queries, n_keys, dtype=torch.bool)
    for i in range(n_queries):
        mask[i, i * frame_width : (i + 1) * frame_width] = False
    return mask


class SinusoidTable(nn.Module):
    """Holds a sinusoid table as the buffer ``pe`` so the checkpoint's ``TE.pe``/``PE.pe`` keys load in place."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid_table(rows, dim))


class DecoderLayer(nn.Module):
    """Post-LN transformer decoder layer with the parameter names of ``nn.TransformerDecoderLayer``.

    Self-attention runs through ``nn.MultiheadAttention`` (its fused eval kernel, as in the reference); the
    cross-attention can instead take a precomputed per-window term (see ``cross_term``).
    """

    def __init__(self, dim: int, n_heads: int, ffn_dim: int, eps: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.self_attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps)

    def cross_term(self, memory: torch.Tensor) -> torch.Tensor:
        """Cross-attention output under the diagonal mask: token i sees only memory i with weight exactly 1.

        So the result is W_o (W_v mem_i + b_v) + b_o, independent of the query and the diffusion step. The value
        projection is a matmul followed by the bias add, as in torch's fused attention kernel the reference ran,
        which keeps the values bit-identical to it on CPU.
        """
        d = memory.shape[-1]
        attn = self.multihead_attn
        value = torch.matmul(memory, attn.in_proj_weight[2 * d :].t()) + attn.in_proj_bias[2 * d :]
        return attn.out_proj(value)

    def forward(
        self,
        h: torch.Tensor,
        cross: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One layer; give ``cross`` (precomputed term) or ``memory`` + ``mask`` (literal masked attention)."""
        h = self.norm1(h + self.self_attn(h, h, h, need_weights=False)[0])
        if cross is None:
            cross = self.multihead_attn(h, memory, memory, attn_mask=mask, need_weights=False)[0]
        h = self.norm2(h + cross)
        return self.norm3(h + self.linear2(F.gelu(self.linear1(h))))


class DecoderStack(nn.Module):
    """Container matching the checkpoint's ``transformer.layers.{i}`` names (no final norm, as in the reference)."""

    def __init__(self, layers: list[DecoderLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class DenoisingNetwork(nn.Module):
    """x0-predicting denoiser over L = P + T tokens (previous motion first), conditioned on per-frame audio."""

    def __init__(self, config: MotionGeneratorConfig) -> None:
        super().__init__()
        self.config = config
        dim, n_tokens = config.feature_dim, config.n_tokens
        self.register_buffer("alignment_mask", alignment_mask(n_tokens, n_tokens))
        self.TE = SinusoidTable(config.time_embedding_rows, dim)
        self.diff_step_map = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.PE = SinusoidTable(config.pos_encoding_rows, dim)
        self.feature_proj = nn.Linear(config.motion_feat_dim, dim)
        self.transformer = DecoderStack(
            [
                DecoderLayer(dim, config.n_heads, dim * config.mlp_ratio, config.layer_norm_eps)
                for _ in range(config.n_layers)
            ]
        )
        self.motion_dec = nn.Sequential(
            nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, config.motion_feat_dim)
        )

    def positional_term(self, n_tokens: int) -> torch.Tensor:
        """``legacy``: the single row pe[L] for every token (the pre-2025-12 bug); ``fixed``: rows 0..L-1."""
        if self.config.pe_mode == "legacy":
            return self.PE.pe[:, n_tokens : n_tokens + 1]
        return self.PE.pe[:, :n_tokens]

    def time_embedding(self, step: torch.Tensor | int, batch: int) -> torch.Tensor:
        """(B, 1, D) embedding of the integer diffusion step(s)."""
        table = self.TE.pe[0]
        if not torch.is_tensor(step):
            step = torch.full((batch,), int(step), dtype=torch.long, device=table.device)
        step = step.to(device=table.device, dtype=torch.long).reshape(-1).expand(batch)
        return self.diff_step_map(table[step]).unsqueeze(1)

    def encode_memory(self, audio_feat: torch.Tensor, prev_audio_feat: torch.Tensor) -> torch.Tensor:
        """Per-layer cross-attention terms (n_layers, B, L, D): compute once per window and CFG branch."""
        memory = torch.cat([prev_audio_feat, audio_feat], dim=1)
        return torch.stack([layer.cross_term(memory) for layer in self.transformer.layers])

    def denoise(
        self,
        motion_feat: torch.Tensor,
        prev_motion_feat: torch.Tensor,
        step: torch.Tensor | int,
        memory: torch.Tensor,
    ) -> torch.Tensor:
        """Prediction (B, P+T, D_m) from noisy motion (B,T,D_m), previous motion (B,P,D_m) and ``encode_memory``."""
        h = self._embed(motion_feat, prev_motion_feat, step)
        for layer, cross in zip(self.transformer.layers, memory, strict=True):
            h = layer(h, cross=cross)
        return self.motion_dec(h)

    def forward(
        self,
        motion_feat: torch.Tensor,
        audio_feat: torch.Tensor,
        prev_motion_feat: torch.Tensor,
        prev_audio_feat: torch.Tensor,
        step: torch.Tensor | int,
        precompute_cross: bool = True,
    ) -> torch.Tensor:
        """Full forward; ``precompute_cross=False`` runs the literal masked cross-attention (to verify the shortcut)."""
        if precompute_cross:
            return self.denoise(motion_feat, prev_motion_feat, step, self.encode_memory(audio_feat, prev_audio_feat))
        memory = torch.cat([prev_audio_feat, audio_feat], dim=1)
        n = memory.shape[1]
        mask = self.alignment_mask[:n, :n]
        h = self._embed(motion_feat, prev_motion_feat, step)
        for layer in self.transformer.layers:
            h = layer(h, memory=memory, mask=mask)
        return self.motion_dec(h)

    def _embed(
        self, motion_feat: torch.Tensor, prev_motion_feat: torch.Tensor, step: torch.Tensor | int
    ) -> torch.Tensor:
        tokens = torch.cat([prev_motion_feat, motion_feat], dim=1)
        h = self.feature_proj(tokens)
        return h + self.positional_term(tokens.shape[1]) + self.time_embedding(step, tokens.shape[0])
