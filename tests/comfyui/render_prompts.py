"""API-format prompts for the render tests and the ComfyUI memory benchmark: one portrait + one speech through the
stage nodes into either render node (Render Video streams into an mp4; Warp and Render's IMAGE frames go to core
Create Video + Save Video)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

RENDER_ID = "10"  # the render node's id in every prompt built here
SAVE_ID = "12"  # Save Video's, on the IMAGE path


def speech_frames(seconds: float) -> int:
    """Frames of a video in sync with ``seconds`` of speech: round(seconds x 25), halves up."""
    return math.floor(seconds * 25 + 0.5)


def write_speech(source: Path, seconds: float, out: Path) -> Path:
    """``seconds`` of 16 kHz speech: the source clip repeated (real speech throughout), cut exactly."""
    wave, rate = sf.read(str(source), dtype="float32")
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    n = int(round(seconds * rate))
    sf.write(str(out), np.resize(wave, n), rate, subtype="PCM_16")
    return out


def write_photo(source: Path, side: int, out: Path) -> Path:
    """The portrait scaled to ``side`` x ``side`` pixels (a large photo to paste back into)."""
    cv2.imwrite(str(out), cv2.resize(cv2.imread(str(source)), (side, side), interpolation=cv2.INTER_CUBIC))
    return out


def render_prompt(image: str, speech: str, streaming: bool = True, prefix: str = "joyvasa/test", seed: int = 0,
                  batch_size: int = 8, steps: int = 2, crop: str = "auto", paste_back: bool = True) -> dict:
    """Portrait + speech -> mp4 with the given input file names; ddim with few steps keeps CPU runs short."""
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "LoadAudio", "inputs": {"audio": speech}},
        "3": {"class_type": "JoyVASALivePortraitLoader",
              "inputs": {"variant": "human", "device": "auto", "dtype": "auto", "download": "never download"}},
        "4": {"class_type": "JoyVASAMotionModelLoader",
              "inputs": {"checkpoint": "motion_generator_hubert_chinese.pt", "template": "motion_template.pkl",
                         "device": "auto", "dtype": "fp32", "download": "never download"}},
        "5": {"class_type": "JoyVASALoadReferenceFace",
              "inputs": {"image": ["1", 0], "mode": "human", "crop": crop, "face_index": 0,
                         "face_order": "largest", "scale": 2.3, "vx_ratio": 0.0, "vy_ratio": -0.125,
                         "alpha": "drop"}},
        "6": {"class_type": "JoyVASAExtractAppearance",
              "inputs": {"liveportrait": ["3", 0], "face": ["5", 0], "image_index": 0}},
        "7": {"class_type": "JoyVASAEncodeAudio", "inputs": {"audio": ["2", 0], "motion_model": ["4", 0]}},
        "8": {"class_type": "JoyVASASampleMotionDiffusion",
              "inputs": {"motion_model": ["4", 0], "audio_features": ["7", 0], "seed": seed, "cfg_scale": 4.0,
                         "sampler": "ddim", "steps": steps, "smoothing": "ema", "smoothing_alpha": 0.01,
                         "leading_silence": True, "lag_compensation": True}},
        "9": {"class_type": "JoyVASAComputeTargetKeypoints",
              "inputs": {"liveportrait": ["3", 0], "appearance": ["6", 0], "motion": ["8", 0], "preset": "auto",
                         "relative_motion": "preset", "stitching": "preset", "lip_normalization": "preset",
                         "driving_multiplier": 0.0, "animation_region": "all"}},
    }
    common = {"liveportrait": ["3", 0], "appearance": ["6", 0], "keypoints": ["9", 0], "paste_back": paste_back,
              "batch_size": batch_size, "image_index": 0, "face": ["5", 0], "audio": ["2", 0]}
    if streaming:
        prompt[RENDER_ID] = {"class_type": "JoyVASARenderVideo",
                             "inputs": {**common, "filename_prefix": prefix, "format": "mp4", "crf": 23,
                                        "save_output": True}}
    else:
        prompt[RENDER_ID] = {"class_type": "JoyVASAWarpAndRender", "inputs": common}
        prompt["11"] = {"class_type": "CreateVideo",
                        "inputs": {"images": [RENDER_ID, 0], "fps": [RENDER_ID, 2], "audio": [RENDER_ID, 1]}}
        prompt[SAVE_ID] = {"class_type": "SaveVideo",
                           "inputs": {"video": ["11", 0], "filename_prefix": prefix, "format": "mp4",
                                      "codec": "h264"}}
    return prompt


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> None:
    """Start a new peak (Linux: writing 5 to clear_refs resets VmHWM to the current RSS)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
