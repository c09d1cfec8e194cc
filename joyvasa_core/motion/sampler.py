"""Audio -> motion: classifier-free guidance and the reference's sliding windows.

Speech is padded (1280 leading + 640 trailing zeros), cut into whole windows of T frames without overlap, and each
window is sampled from the same x_T, conditioned on the previous window's last P motion frames and audio features
(learned start tokens for the first window). Audio is encoded window by window, so memory stays flat however long
the speech is; the cross-attention term is computed once per window and CFG branch.

A window's features depend only on its slice of the padded speech and the audio networks (HuBERT + feature map),
never on the seed, cfg or steps: ``encode_windows`` computes them once, and
``sample_coefficients(window_features=...)`` re-samples from them without running HuBERT again.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import AudioInputError, MotionError
from ..progress import Progress, ensure_progress
from ..validate import CLI_CFG_SCALE, WEB_CFG_SCALE, require_numbers
from .generator import MotionGenerator
from .schedulers import DDIMScheduler, DDPMAncestralScheduler
from .sequence import MotionSequence, non_finite_fields
from .smoothing import DEFAULT_EMA_ALPHA, SMOOTHING_METHODS, PoseSmoothing
from .template import MotionTemplate

LEADING_PAD_FRAMES = 2  # 1280 samples of silence before the speech (reference commit 8617607)
TRAILING_PAD_FRAMES = 1  # 640 samples after it
SCHEDULERS = ("ddpm", "ddim")


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample. The defaults are the web preset (:meth:`web`: cfg 4.0, 50-step ancestral DDPM, EMA 0.01), as
    ``KeypointOptions()``'s; :meth:`cli` is the reference command line's (cfg 2.8). ``lag_compensation`` is on by
    default: the frames of the leading silence are dropped so frame k shows the
    mouth for the speech at k/25 s and the video has round(seconds x 25) frames. Off keeps the reference's frames
    (two frames of silence first, the lips trailing the sound by 80 ms)."""

    cfg_scale: float = WEB_CFG_SCALE
    scheduler: str = "ddpm"
    num_steps: int | None = None
    flexibility: float = 0.0
    ddim_eta: float = 0.0
    seed: int | None = 0
    leading_silence: bool = True
    lag_compensation: bool = True
    smoothing: str = "ema"
    smoothing_alpha: float = DEFAULT_EMA_ALPHA
    smoothing_window: int | None = None

    @classmethod
    def web(cls, **changes: Any) -> SamplingOptions:
        """The web preset: the reference web demo's guidance (cfg 4.0), which made the published results."""
        return cls(**{"cfg_scale": WEB_CFG_SCALE, **changes})

    @classmethod
    def cli(cls, **changes: Any) -> SamplingOptions:
        """The cli preset: the reference command line's guidance (cfg 2.8)."""
        return cls(**{"cfg_scale": CLI_CFG_SCALE, **changes})

    @classmethod
    def animal(cls, **changes: Any) -> SamplingOptions:
        """Animal mode samples as the web demo's animal examples do (cfg 4.0)."""
        return cls.web(**changes)

    @property
    def pose_smoothing(self) -> PoseSmoothing:
        return PoseSmoothing(self.smoothing, self.smoothing_alpha, self.smoothing_window)

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"motion sampling: scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.smoothing not in SMOOTHING_METHODS:
            raise ValueError(f"motion sampling: smoothing must be one of {SMOOTHING_METHODS}, got {self.smoothing!r}")
        require_numbers({"cfg_scale": self.cfg_scale, "steps": self.num_steps, "seed": self.seed,
                         "smoothing_alpha": self.smoothing_alpha})


def steps_control(scheduler: str, steps: int | None) -> int | None:
    """What an always-shown steps control means for ``scheduler``: its value for ddim, None (all of the
    checkpoint's steps) for ddpm, whose ancestral steps are fixed by training."""
    return steps if scheduler == "ddim" else None


@dataclass(frozen=True)
class WindowPlan:
    """Where the padded speech is cut (all counts in samples unless named frames)."""

    n_samples: int
    samples_per_frame: int
    window_frames: int
    leading_pad: int
    trailing_pad: int
    n_windows: int
    n_frames: int
    last_window_frames: int

    @property
    def window_samples(self) -> int:
        return self.samples_per_frame * self.window_frames

    @property
    def lag_frames(self) -> int:
        """Frames the leading silence delays the motion by (2 = 80 ms with the reference padding)."""
        return self.leading_pad // self.samples_per_frame

    @property
    def speech_frames(self) -> int:
        """round(speech seconds x 25), halves up: the length of a video in sync with the speech (at least 1)."""
        return max(1, (self.n_samples + self.samples_per_frame // 2) // self.samples_per_frame)

    def kept_frames(self, lag_compensation: bool = True) -> slice:
        """The sampled frames that make the video. With ``lag_compensation`` the leading silence's frames go and the
        count is ``speech_frames``, so output frame k is conditioned on the speech from k x 40 ms; without it every
        sampled frame stays, as in the reference."""
        if not lag_compensation:
            return slice(0, self.n_frames)
        start = self.lag_frames
        return slice(start, start + min(self.n_frames - start, self.speech_frames))


def plan_windows(
    n_samples: int, samples_per_frame: int, window_frames: int, leading_silence: bool = True
) -> WindowPlan:
    """Windows and frame count: n_frames = floor(L / 640) with L the padded length (whole windows)."""
    lead = LEADING_PAD_FRAMES * samples_per_frame if leading_silence else 0
    trail = TRAILING_PAD_FRAMES * samples_per_frame if leading_silence else 0
    length = n_samples + lead + trail
    clip_frames = length // samples_per_frame
    if clip_frames < 1:
        raise AudioInputError(
            f"motion sampling: audio of {n_samples} samples is shorter than one motion frame "
            f"({samples_per_frame} samples at 16 kHz); give longer speech"
        )
    n_windows = 1 if clip_frames <= window_frames else math.ceil(clip_frames / window_frames)
    last = clip_frames - (n_windows - 1) * window_frames
    return WindowPlan(n_samples, samples_per_frame, window_frames, lead, trail, n_windows, clip_frames, last)


def window_audio(waveform: torch.Tensor, plan: WindowPlan, index: int) -> torch.Tensor:
    """Window ``index`` of the zero-padded speech, (B, 640*T), built without padding the whole waveform."""
    size = plan.window_samples
    start = index * size - plan.leading_pad
    lo, hi = max(start, 0), min(start + size, plan.n_samples)
    chunk = waveform.new_zeros(waveform.shape[0], size)
    if hi > lo:
        chunk[:, lo - start : hi - start] = waveform[:, lo:hi]
    return chunk


class NoiseStream:
    """All sampling noise in the reference's draw order: x_T once, then one z per stochastic step, window-major.

    Draws come from ``torch.Generator().manual_seed(seed)`` on the CPU (same numbers on every device); tests can
    inject stored ``x_T``/``z`` tensors instead.
    """

    def __init__(
        self,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
    ) -> None:
        if generator is None and (x_T is None or z is None):
            generator = torch.Generator().manual_seed(int(seed if seed is not None else secrets.randbits(63)))
        self.generator = generator
        self.x_T = x_T
        self.z = z
        self.n_steps_drawn = 0

    def _draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, dtype=torch.float32)

    def initial(self, shape: tuple[int, ...]) -> torch.Tensor:
        """x_T, the start of every window."""
        x = self.x_T if self.x_T is not None else self._draw(shape)
        if tuple(x.shape) != tuple(shape):
            raise ValueError(f"noise: x_T has shape {tuple(x.shape)}, expected {tuple(shape)}")
        return x

    def step(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The next per-step z."""
        if self.z is not None:
            z = self.z[self.n_steps_drawn].reshape(shape)
        else:
            z = self._draw(shape)
        self.n_steps_drawn += 1
        return z


def make_scheduler(model: MotionGenerator, options: SamplingOptions) -> DDPMAncestralScheduler | DDIMScheduler:
    """The scheduler named by ``options`` on the model's stored schedule, with its timesteps set."""
    schedule = model.diffusion_sched.tensors()
    if options.scheduler == "ddpm":
        scheduler = DDPMAncestralScheduler(schedule, flexibility=options.flexibility)
    else:
        scheduler = DDIMScheduler(schedule, eta=options.ddim_eta)
    scheduler.set_timesteps(options.num_steps)
    return scheduler


def _check_waveform(waveform: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(waveform):
        raise AudioInputError(f"motion sampling: audio must be a tensor of 16 kHz samples, got {type(waveform)}")
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2 or waveform.shape[-1] == 0:
        raise AudioInputError(
            f"motion sampling: audio must be (samples,) or (batch, samples) mono 16 kHz, got {tuple(waveform.shape)}"
        )
    if not waveform.is_floating_point():
        raise AudioInputError(f"motion sampling: audio must be float in [-1, 1], got {waveform.dtype}")
    if not bool(torch.isfinite(waveform).all()):
        raise AudioInputError("motion sampling: audio contains NaN or Inf samples; re-encode or clean the file")
    return waveform


def encode_chunk(model: MotionGenerator, chunk: torch.Tensor) -> torch.Tensor:
    """Features (B, T, D) of one window of padded 16 kHz speech (B, 640*T), on the model's device and dtype: the one
    place HuBERT runs, for the offline windows and the live session's steps alike."""
    return model.encode_audio_window(chunk.to(device=model.device, dtype=model.dtype))[1]


def _encode_window(model: MotionGenerator, waveform: torch.Tensor, plan: WindowPlan, index: int) -> torch.Tensor:
    """Features (B, T, D) of window ``index`` of the padded speech."""
    return encode_chunk(model, window_audio(waveform, plan, index))


def audio_model_fingerprint(model: MotionGenerator) -> str:
    """A short id of what window features depend on besides the audio, so features are never fed to another model.

    Hashes the feature map's weights (unique to a checkpoint and cheap: 768 x D values), the HuBERT output norm,
    the window geometry and the compute dtype (the bytes hashed are the stored ones, so fp16/bf16 differ too).
    """
    cfg = model.config
    digest = hashlib.sha1(
        f"{cfg.samples_per_frame}/{cfg.n_motions}/{cfg.feature_dim}/{cfg.audio_hidden_dim}/{model.dtype}".encode()
    )
    norm = model.audio_encoder.encoder.layer_norm
    for tensor in (model.audio_feature_map.weight, model.audio_feature_map.bias, norm.weight, norm.bias):
        digest.update(tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_windows(
    model: MotionGenerator,
    waveform: torch.Tensor,
    leading_silence: bool = True,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Audio features of every window, (B, W, T, D) on the CPU in the model's dtype (B = 1 for a 1-D waveform).

    Exactly what ``sample_coefficients`` computes window by window (same slices, same batch, same kernels), so
    passing the result as ``window_features`` gives bit-identical motion. ``leading_silence`` must match the sampling
    options.
    """
    progress = ensure_progress(progress)
    waveform = _check_waveform(waveform)
    cfg = model.config
    plan = plan_windows(waveform.shape[-1], cfg.samples_per_frame, cfg.n_motions, leading_silence)
    out: torch.Tensor | None = None
    for index in range(plan.n_windows):
        progress.check_cancel()
        feat = _encode_window(model, waveform, plan, index)
        if out is None:
            out = feat.new_empty((feat.shape[0], plan.n_windows, *feat.shape[1:]), device="cpu")
        out[:, index] = feat
        progress.update(index + 1, plan.n_windows)
    return out


def _check_window_features(features: torch.Tensor, plan: WindowPlan, batch: int, dim: int) -> torch.Tensor:
    if not torch.is_tensor(features) or not features.is_floating_point():
        raise AudioInputError(
            f"motion sampling: window_features must be a float tensor from encode_windows, got {type(features)}"
        )
    if features.dim() == 3:
        features = features.unsqueeze(0)
    expected = (batch, plan.n_windows, plan.window_frames, dim)
    if tuple(features.shape) != expected:
        raise AudioInputError(
            f"motion sampling: the precomputed audio features are (batch, windows, frames, dim) = "
            f"{tuple(features.shape)}, but this audio and motion model need {expected} ({plan.n_windows} window(s) of "
            f"{plan.window_frames} frames, {dim}-d). Encode the audio again with this motion model and padding."
        )
    return features


@dataclass(frozen=True)
class WindowContext:
    """What a window is conditioned on besides its own audio: the last P motion frames (B, P, 73) and audio
    features (B, P, D) before it (the model's learned start tokens before the first window)."""

    motion: torch.Tensor
    audio: torch.Tensor

    @classmethod
    def start(cls, model: MotionGenerator, batch: int = 1) -> WindowContext:
        return cls(model.start_motion_feat.expand(batch, -1, -1), model.start_audio_feat.expand(batch, -1, -1))

    def after(self, motion: torch.Tensor, audio: torch.Tensor, keep: int) -> WindowContext:
        """The context of the window that starts ``keep`` frames into a window sampled from this one: the last P of
        (this context, the window's first ``keep`` frames). ``keep`` = T is the offline stride; a live session keeps
        fewer frames per step and slides by that."""
        p = self.motion.shape[1]
        if keep >= p:
            return WindowContext(motion[:, keep - p : keep], audio[:, keep - p : keep])
        return WindowContext(torch.cat([self.motion, motion[:, :keep]], dim=1)[:, -p:],
                             torch.cat([self.audio, audio[:, :keep]], dim=1)[:, -p:])


class WindowSampler:
    """Denoises one window at a time with classifier-free guidance: every window starts from the same x_T and is
    conditioned on its audio features and a :class:`WindowContext`. The one window step of the offline sampler and
    of the live session (``joyvasa_core.motion.streaming``)."""

    def __init__(
        self, model: MotionGenerator, options: SamplingOptions, noise: NoiseStream, batch: int = 1,
        n_windows: int | None = None, progress: Progress | None = None,
    ) -> None:
        cfg = model.config
        self.net = model.denoising_net
        self.scheduler = make_scheduler(model, options)
        self.noise = noise
        self.scale = float(options.cfg_scale)
        self.progress = ensure_progress(progress)
        self.n_motions = cfg.n_motions
        self.device, self.dtype = model.device, model.dtype
        self.shape = (batch, cfg.n_motions, cfg.motion_feat_dim)
        self.x_T = noise.initial(self.shape).to(device=self.device, dtype=self.dtype)
        # cfg 1 needs only the conditional branch, cfg 0 only the unconditional one.
        self.branches = ("cond",) if self.scale == 1.0 else ("uncond",) if self.scale == 0.0 else ("uncond", "cond")
        self.null_audio = model.null_audio_feat.expand(batch, cfg.n_motions, -1)
        self.total = None if n_windows is None else n_windows * len(self.scheduler.timesteps)
        self.done = 0

    @torch.no_grad()
    def __call__(self, audio_feat: torch.Tensor, context: WindowContext) -> torch.Tensor:
        """The window's normalised motion (B, T, 73)."""
        n_branches = len(self.branches)
        cond = {"uncond": self.null_audio, "cond": audio_feat}
        prev_in = context.motion.repeat(n_branches, 1, 1)
        memory = self.net.encode_memory(torch.cat([cond[b] for b in self.branches]),
                                        context.audio.repeat(n_branches, 1, 1))
        x = self.x_T
        for t in self.scheduler.timesteps.tolist():
            self.progress.check_cancel()
            z = self.noise.step(self.shape) if self.scheduler.noise_needed(t) else None
            out = self.net.denoise(x.repeat(n_branches, 1, 1), prev_in, t, memory)[:, -self.n_motions :]
            if n_branches == 2:
                uncond, cond_out = out.chunk(2)
                x0 = uncond + self.scale * (cond_out - uncond)
            else:
                x0 = out
            x = self.scheduler.step(x0, t, x, noise=None if z is None else z.to(device=self.device, dtype=self.dtype))
            self.done += 1
            if self.total is not None:
                self.progress.update(self.done, self.total)
        return x


@torch.no_grad()
def sample_coefficients(
    model: MotionGenerator,
    waveform: torch.Tensor,
    options: SamplingOptions | None = None,
    noise: NoiseStream | None = None,
    progress: Progress | None = None,
    on_window: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    window_features: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised motion (B, n_frames, 73) for 16 kHz mono speech (L0,) or (B, L0), window by window.

    ``on_window(index, motion (B,T,73), audio_feat (B,T,D))`` sees every window as soon as it is sampled (all T
    frames, padded ones included), for streaming consumers and per-window checks. ``window_features`` (B, W, T, D)
    or (W, T, D) from :func:`encode_windows` (same waveform, same ``leading_silence``) skips HuBERT; without them
    each window is encoded just before it is sampled.
    """
    options = options or SamplingOptions()
    progress = ensure_progress(progress)
    waveform = _check_waveform(waveform)
    cfg = model.config
    batch, n_samples = waveform.shape
    plan = plan_windows(n_samples, cfg.samples_per_frame, cfg.n_motions, options.leading_silence)
    if window_features is not None:
        window_features = _check_window_features(window_features, plan, batch, cfg.feature_dim)
    sampler = WindowSampler(model, options, noise or NoiseStream(seed=options.seed), batch, plan.n_windows, progress)
    context = WindowContext.start(model, batch)
    pieces: list[torch.Tensor] = []
    for index in range(plan.n_windows):
        progress.check_cancel()
        if window_features is None:
            audio_feat = _encode_window(model, waveform, plan, index)
        else:
            audio_feat = window_features[:, index].to(device=model.device, dtype=model.dtype).contiguous()
        x = sampler(audio_feat, context)
        if on_window is not None:
            on_window(index, x, audio_feat)
        context = context.after(x, audio_feat, cfg.n_motions)
        keep = plan.last_window_frames if index == plan.n_windows - 1 else cfg.n_motions
        pieces.append(x[:, :keep].float().cpu())
    return torch.cat(pieces, dim=1)[:, plan.kept_frames(options.lag_compensation)]


def _check_finite(coef: torch.Tensor, options: SamplingOptions, steps: int) -> None:
    """The sampler's output must be numbers: NaN or Inf (huge guidance, broken weights) is named with the settings
    that made it, before it becomes a black face."""
    bad = non_finite_fields({"motion": coef.reshape(-1, coef.shape[-1])})
    if not bad:
        return
    made = f"{options.scheduler} {steps} steps, seed {options.seed}"
    tail = (f"it cannot be rendered; lower the guidance ({CLI_CFG_SCALE}-{WEB_CFG_SCALE} is the model's) or check "
            "the motion checkpoint (a NaN in its weights does this).")
    raise MotionError(f"motion sampling: cfg_scale {options.cfg_scale:g} ({made}) made NaN or Inf ({bad}); {tail}",
                      cli=f"motion sampling: --cfg-scale {options.cfg_scale:g} ({made}) made NaN or Inf ({bad}); "
                          f"{tail}")


def generate_motion(
    model: MotionGenerator,
    waveform: torch.Tensor,
    template: MotionTemplate,
    options: SamplingOptions | None = None,
    noise: NoiseStream | None = None,
    progress: Progress | None = None,
    window_features: torch.Tensor | None = None,
) -> MotionSequence | list[MotionSequence]:
    """Sample, de-normalise and smooth: one ``MotionSequence`` per clip (a list when ``waveform`` is batched).

    ``window_features`` from :func:`encode_windows` skip HuBERT (see :func:`sample_coefficients`)."""
    options = options or SamplingOptions()
    if options.seed is None and noise is None:
        options = SamplingOptions(**{**asdict(options), "seed": secrets.randbits(63)})
    batched = torch.is_tensor(waveform) and waveform.dim() == 2
    coef = sample_coefficients(model, waveform, options, noise=noise, progress=progress,
                               window_features=window_features)
    steps = options.num_steps or model.config.n_diff_steps
    _check_finite(coef, options, steps)
    settings = {
        "scheduler": options.scheduler,
        "num_steps": steps,
        "cfg_scale": options.cfg_scale,
        "flexibility": options.flexibility,
        "ddim_eta": options.ddim_eta,
        "pe_mode": model.pe_mode,
        "leading_silence": options.leading_silence,
        "lag_compensation": options.lag_compensation,
        "audio_samples": int(waveform.shape[-1]),
        "noise": "injected" if noise is not None and noise.generator is None else "seed",
    }
    sequences = [
        MotionSequence.from_coef(
            c,
            template,
            smoothing=options.pose_smoothing,
            fps=model.config.fps,
            seed=options.seed,
            settings=settings,
        )
        for c in coef
    ]
    return sequences if batched else sequences[0]
