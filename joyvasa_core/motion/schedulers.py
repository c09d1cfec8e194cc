"""Diffusion schedule and samplers for x0-predicting JoyVASA motion diffusion (diffusers-style small objects).

The network is separate from the sampling rule: a scheduler only turns (x0 prediction, t, x_t) into x_{t-1}.
``DDPMAncestralScheduler`` is the reference's 50-step ancestral sampler; ``DDIMScheduler`` is a deterministic
shortcut over fewer steps of the same cosine schedule.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULE_KEYS = ("betas", "alphas", "alpha_bars", "sigmas_flex", "sigmas_inflex")


def cosine_schedule(n_steps: int, s: float = 0.008) -> dict[str, torch.Tensor]:
    """The cosine noise schedule as (N+1,) float32 tensors, in the reference's float32 operation order."""
    x = torch.linspace(0, n_steps, n_steps + 1)
    raw = torch.cos(((x / n_steps) + s) / (1 + s) * math.pi * 0.5) ** 2
    raw = raw / raw[0]
    betas = (1 - raw[1:] / raw[:-1]).clamp(0.0001, 0.999)
    betas = torch.cat([torch.zeros(1), betas])
    alphas = 1 - betas
    log_alphas = torch.log(alphas)
    for i in range(1, log_alphas.shape[0]):
        log_alphas[i] += log_alphas[i - 1]
    alpha_bars = log_alphas.exp()
    sigmas_flex = torch.sqrt(betas)
    sigmas_inflex = torch.zeros_like(sigmas_flex)
    for i in range(1, sigmas_flex.shape[0]):
        sigmas_inflex[i] = ((1 - alpha_bars[i - 1]) / (1 - alpha_bars[i])) * betas[i]
    sigmas_inflex = torch.sqrt(sigmas_inflex)
    return {
        "betas": betas,
        "alphas": alphas,
        "alpha_bars": alpha_bars,
        "sigmas_flex": sigmas_flex,
        "sigmas_inflex": sigmas_inflex,
    }


class DiffusionSchedule(nn.Module):
    """Buffer holder named like the checkpoint's ``diffusion_sched.*`` so the stored values load strictly."""

    def __init__(self, n_steps: int = 50, s: float = 0.008) -> None:
        super().__init__()
        for key, value in cosine_schedule(n_steps, s).items():
            self.register_buffer(key, value)

    @property
    def n_steps(self) -> int:
        return self.betas.shape[0] - 1

    def tensors(self) -> dict[str, torch.Tensor]:
        """Float32 CPU copies: schedulers do their scalar maths there whatever the model's dtype/device."""
        return {k: getattr(self, k).detach().to("cpu", torch.float32) for k in SCHEDULE_KEYS}


def _draw(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    return noise.to(device=like.device, dtype=like.dtype)


class _Scheduler:
    """Shared bits: the schedule tensors and the diffusers-like ``timesteps`` attribute."""

    def __init__(self, schedule: dict[str, torch.Tensor] | DiffusionSchedule | None = None, n_steps: int = 50) -> None:
        if isinstance(schedule, DiffusionSchedule):
            schedule = schedule.tensors()
        if schedule is None:
            schedule = cosine_schedule(n_steps)
        missing = [k for k in ("alphas", "alpha_bars") if k not in schedule]
        if missing:
            raise ValueError(f"scheduler: schedule lacks {missing}")
        self.schedule = {k: v.detach().to("cpu", torch.float32) for k, v in schedule.items()}
        self.num_train_timesteps = self.schedule["alpha_bars"].shape[0] - 1
        self.timesteps = torch.arange(self.num_train_timesteps, 0, -1)

    def noise_needed(self, t: int) -> bool:
        """Whether ``step`` at ``t`` consumes one noise draw (the sampler draws it before the network call)."""
        raise NotImplementedError

    @staticmethod
    def _add_noise(
        prev: torch.Tensor,
        sigma: float,
        sample: torch.Tensor,
        generator: torch.Generator | None,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        """``prev + sigma * z`` with the given ``noise`` or a fresh draw from ``generator``."""
        if noise is None:
            noise = _draw(sample.shape, sample, generator)
        return prev + sigma * noise.to(sample)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={len(self.timesteps)}, train_steps={self.num_train_timesteps})"


class DDPMAncestralScheduler(_Scheduler):
    """Ancestral DDPM for x0-prediction over every training step (the reference sampler).

    ``x_{t-1} = c0 x_t + c1 x0 + sigma_t z`` with the posterior-mean coefficients and
    ``sigma_t = flexibility * sigma_flex + (1 - flexibility) * sigma_inflex`` (reference default flexibility 0).
    """

    def __init__(
        self,
        schedule: dict[str, torch.Tensor] | DiffusionSchedule | None = None,
        flexibility: float = 0.0,
        n_steps: int = 50,
    ) -> None:
        super().__init__(schedule, n_steps)
        if not 0.0 <= flexibility <= 1.0:
            raise ValueError(f"DDPMAncestralScheduler: flexibility must be in [0, 1], got {flexibility}")
        self.flexibility = flexibility
        sched = self.schedule
        self.sigmas = sched["sigmas_flex"] * flexibility + sched["sigmas_inflex"] * (1 - flexibility)

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        """Ancestral DDPM walks every training step; other counts need a different sampler (e.g. DDIM)."""
        n = self.num_train_timesteps if num_inference_steps is None else int(num_inference_steps)
        if n != self.num_train_timesteps:
            raise ValueError(
                f"DDPMAncestralScheduler runs all {self.num_train_timesteps} steps, got {n}; use DDIMScheduler "
                "for fewer steps"
            )
        self.timesteps = torch.arange(n, 0, -1)

    def noise_needed(self, t: int) -> bool:
        return int(t) > 1

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x_{t-1} from the x0 prediction ``model_output`` and x_t ``sample``; noise is zero at t = 1."""
        t = int(t)
        alpha = self.schedule["alphas"][t]
        alpha_bar = self.schedule["alpha_bars"][t]
        alpha_bar_prev = self.schedule["alpha_bars"][t - 1]
        c0 = float((1 - alpha_bar_prev) * torch.sqrt(alpha) / (1 - alpha_bar))
        c1 = float((1 - alpha) * torch.sqrt(alpha_bar_prev) / (1 - alpha_bar))
        prev = c0 * sample + c1 * model_output
        if self.noise_needed(t):
            prev = self._add_noise(prev, float(self.sigmas[t]), sample, generator, noise)
        return prev


class DDIMScheduler(_Scheduler):
    """DDIM (eta = 0 by default: deterministic) for x0-prediction, on an evenly strided subset of the N steps.

    The x0 prediction gives the implied noise eps = (x_t - sqrt(a_t) x0) / sqrt(1 - a_t); the update jumps straight
    to the previous kept timestep, ending at t = 0 where a_0 = 1 returns x0 itself.
    """

    def __init__(
        self,
        schedule: dict[str, torch.Tensor] | DiffusionSchedule | None = None,
        eta: float = 0.0,
        n_steps: int = 50,
    ) -> None:
        super().__init__(schedule, n_steps)
        if eta < 0:
            raise ValueError(f"DDIMScheduler: eta must be >= 0, got {eta}")
        self.eta = eta

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        """Keep ``n`` timesteps from N down to 1 (always including both ends)."""
        n_train = self.num_train_timesteps
        n = n_train if num_inference_steps is None else int(num_inference_steps)
        if not 1 <= n <= n_train:
            raise ValueError(f"DDIMScheduler: steps must be in 1..{n_train}, got {n}")
        if n == 1:
            self.timesteps = torch.tensor([n_train])
            return
        steps = torch.linspace(n_train, 1, n, dtype=torch.float64).round().long()
        self.timesteps = torch.unique_consecutive(steps)

    def previous_timestep(self, t: int) -> int:
        later = self.timesteps[self.timesteps < int(t)]
        return int(later[0]) if later.numel() else 0

    def noise_needed(self, t: int) -> bool:
        return self.eta > 0 and self.previous_timestep(t) > 0

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Jump from x_t to x_{t_prev} given the x0 prediction."""
        t = int(t)
        t_prev = self.previous_timestep(t)
        if t_prev == 0:
            return model_output.clone()
        a_t = float(self.schedule["alpha_bars"][t].double())
        a_prev = float(self.schedule["alpha_bars"][t_prev].double())
        eps = (sample - math.sqrt(a_t) * model_output) / math.sqrt(1 - a_t)
        sigma = self.eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        prev = math.sqrt(a_prev) * model_output + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            prev = self._add_noise(prev, sigma, sample, generator, noise)
        return prev
