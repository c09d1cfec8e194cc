"""The motion preview is a real plot: its size follows the layout, each curve lives in its own panel, changing one
part of the motion redraws that panel only, and the speech waveform adds a panel that follows the audio."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from fixture_support import fixture_path
from test_motion_edit import sampled_motion

from joyvasa_core.keypoints import LIP_KEYPOINTS
from joyvasa_core.motion.blinks import BlinkOptions, apply_blinks
from joyvasa_core.motion.edit import offset_pose, scale_parts
from joyvasa_core.motion.preview import AXIS_HEIGHT, PANEL_HEIGHT, PANELS, render_motion_preview


@pytest.fixture(scope="module")
def speech():
    return sampled_motion()


def _band(img: np.ndarray, panel: int) -> np.ndarray:
    return img[panel * PANEL_HEIGHT : (panel + 1) * PANEL_HEIGHT]


def _changed_panels(a: np.ndarray, b: np.ndarray) -> set[str]:
    names = [*PANELS, "speech"][: (a.shape[0] - AXIS_HEIGHT) // PANEL_HEIGHT]
    return {name for k, name in enumerate(names) if not np.array_equal(_band(a, k), _band(b, k))}


def test_size_and_curves(speech):
    img = render_motion_preview(speech, width=800)
    assert img.shape == (len(PANELS) * PANEL_HEIGHT + AXIS_HEIGHT, 800, 3) and img.dtype == np.uint8
    for k in range(len(PANELS)):
        band = _band(img, k).astype(int)
        coloured = (band.max(axis=2) - band.min(axis=2)) > 60  # curve pixels (grey grid and text are not)
        columns = np.flatnonzero(coloured[20:].any(axis=0))
        assert columns.size > 0.8 * (800 - 82), f"panel {PANELS[k]} has no curve across the plot"


def test_curves_follow_the_motion(speech):
    base = render_motion_preview(speech)
    assert _changed_panels(base, render_motion_preview(scale_parts(speech, rotation=3.0))) == {"rotation"}
    assert _changed_panels(base, render_motion_preview(scale_parts(speech, translation=0.2))) == {"translation"}
    lips = speech.exp.clone()
    lips[60:, list(LIP_KEYPOINTS), 1] *= 2.0
    assert "mouth" in _changed_panels(base, render_motion_preview(replace(speech, exp=lips)))
    blink = render_motion_preview(apply_blinks(speech, BlinkOptions(rate=40, seed=2)))
    assert _changed_panels(base, blink) == {"eyes"}
    # An offset moves every frame alike: the curve (change from frame 0) stays, only the legend's frame-0 value moves.
    turned = render_motion_preview(offset_pose(speech, yaw=10.0))
    assert _changed_panels(base, turned) == {"rotation"}
    assert np.array_equal(_band(base, 0)[20:], _band(turned, 0)[20:])


def test_waveform_panel(speech):
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="float32")
    img = render_motion_preview(speech, torch.from_numpy(wave), rate, width=640)
    assert img.shape == ((len(PANELS) + 1) * PANEL_HEIGHT + AXIS_HEIGHT, 640, 3)
    band = _band(img, len(PANELS))[20:-10]
    ink = (band < 200).any(axis=2).sum(axis=0)[70:-12]
    assert (ink > 5).mean() > 0.5, "speech is drawn along the panel"
    quiet = render_motion_preview(speech, torch.from_numpy(wave) * 0, rate, width=640)
    assert not np.array_equal(_band(img, len(PANELS)), _band(quiet, len(PANELS)))
    assert np.array_equal(img[: len(PANELS) * PANEL_HEIGHT], quiet[: len(PANELS) * PANEL_HEIGHT])
    stereo = render_motion_preview(speech, np.stack([wave, wave]), rate, width=640)
    assert np.array_equal(stereo, img), "channels are averaged"
    with pytest.raises(ValueError, match="at least 320"):
        render_motion_preview(speech, width=100)
