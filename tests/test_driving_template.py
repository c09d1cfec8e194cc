"""LivePortrait driving templates (.pkl): exact round trip, the layouts LivePortrait and FasterLivePortrait write load,
damaged files get a clear error, and a hostile pickle is refused without running anything."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from test_motion_edit import other_motion, sampled_motion

from joyvasa_core.checkpoints.driving_template import read_driving_template, write_driving_template
from joyvasa_core.errors import CheckpointError
from joyvasa_core.keypoints import rotation_matrix, transform_keypoints
from joyvasa_core.motion.blinks import BlinkOptions, apply_blinks
from joyvasa_core.motion.edit import lips_absolute, mix
from joyvasa_core.motion.sequence import FRAME_FIELDS


def _same(a, b) -> None:
    for name in FRAME_FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.fps == b.fps and a.seed == b.seed and a.settings == b.settings
    assert (a.eye_open is None) == (b.eye_open is None)
    if a.eye_open is not None:
        assert torch.equal(a.eye_open, b.eye_open)


def test_round_trip_is_exact(tmp_path):
    speech = sampled_motion()
    edited = apply_blinks(mix(speech, head=other_motion(11)), BlinkOptions(rate=30, seed=4))
    for motion in (speech, edited):
        path = write_driving_template(motion, tmp_path / "m.pkl")
        assert not (tmp_path / "m.pkl.part").exists()
        _same(read_driving_template(path), motion)
    # The file is what LivePortrait reads: a plain dict, float32 arrays of the documented shapes.
    with open(path, "rb") as fh:
        raw = pickle.load(fh)  # our own file, just written by this test
    assert raw["n_frames"] == edited.n_frames == len(raw["motion"]) and raw["output_fps"] == 25
    frame = raw["motion"][5]
    shapes = {k: v.shape for k, v in frame.items()}
    assert shapes == {"scale": (1, 1), "R": (1, 3, 3), "exp": (1, 21, 3), "t": (1, 3), "pitch": (1, 1),
                      "yaw": (1, 1), "roll": (1, 1)}
    assert all(v.dtype == np.float32 for v in frame.values())
    assert np.array_equal(frame["R"][0], edited.R[5].numpy())


def _liveportrait_layout(n: int, old_names: bool = False) -> tuple[dict, dict]:
    """A template as LivePortrait's make_motion_template lays it out (R, exp, t, scale, kp, x_s per frame, the
    eye/lip ratio lists), from a known pose so the reader's result can be checked."""
    g = torch.Generator().manual_seed(1)
    angles = torch.randn(n, 3, generator=g) * 20
    exp = torch.randn(n, 21, 3, generator=g) * 0.03
    kp = torch.randn(n, 21, 3, generator=g) * 0.3
    scale = 1 + torch.rand(n, 1, generator=g)
    t = torch.randn(n, 3, generator=g) * 0.1
    R = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    x_s = transform_keypoints(kp, exp, scale, t, R)
    eyes = np.full((n, 2), 0.32, np.float32)
    eyes[n // 2] = 0.02  # a blink
    frames = [{"scale": scale[i : i + 1].numpy(), ("R_d" if old_names else "R"): R[i : i + 1].numpy(),
               "exp": exp[i : i + 1].numpy(), "t": t[i : i + 1].numpy(), "kp": kp[i : i + 1].numpy(),
               "x_s": x_s[i : i + 1].numpy()} for i in range(n)]
    suffix = "c_d_" if old_names else "c_"
    raw = {"n_frames": n, "output_fps": 30, "motion": frames,
           f"{suffix}eyes_lst": [eyes[i : i + 1] for i in range(n)],
           f"{suffix}lip_lst": [np.full((1, 1), 0.1, np.float32) for _ in range(n)]}
    return raw, {"angles": angles, "exp": exp, "scale": scale, "t": t, "R": R}


@pytest.mark.parametrize("old_names", [False, True])
def test_liveportrait_layout_loads(tmp_path, old_names):
    raw, want = _liveportrait_layout(8, old_names)
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=2))  # protocol 2: bytes travel through _codecs.encode
    m = read_driving_template(path)
    assert m.n_frames == 8 and m.fps == 30 and m.coef.shape == (8, 0)
    assert torch.equal(m.R, want["R"]) and torch.equal(m.exp, want["exp"]) and torch.equal(m.t, want["t"])
    got = torch.cat([m.pitch, m.yaw, m.roll], dim=1)
    assert torch.allclose(got, want["angles"], atol=1e-3), "angles recovered from R"
    assert not lips_absolute(m), "LivePortrait composes a template's lips relatively"
    assert m.eye_open is not None and float(m.eye_open[4]) < 0.1 and float(m.eye_open[0]) == pytest.approx(1.0)


def test_fasterliveportrait_joyvasa_layout_loads(tmp_path):
    """FasterLivePortrait's JoyVASA motion: per-frame exp, scale, R, t and angles, empty ratio lists."""
    speech = sampled_motion()
    frames = [{"exp": speech.exp[i : i + 1].numpy(), "scale": speech.scale[i : i + 1].numpy(),
               "R": speech.R[i : i + 1].numpy(), "t": speech.t[i : i + 1].numpy(),
               "pitch": speech.pitch[i : i + 1].numpy(), "yaw": speech.yaw[i : i + 1].numpy(),
               "roll": speech.roll[i : i + 1].numpy()} for i in range(speech.n_frames)]
    path = tmp_path / "f.pkl"
    path.write_bytes(pickle.dumps({"n_frames": len(frames), "output_fps": 25, "motion": frames, "c_eyes_lst": [],
                                   "c_lip_lst": []}))
    m = read_driving_template(path)
    for name in ("exp", "scale", "t", "pitch", "yaw", "roll", "R"):
        assert torch.equal(getattr(m, name), getattr(speech, name)), name
    assert m.eye_open is None


class _RunsCode:
    """Pickles as a call to os.system: loading it with plain pickle would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    raw, _ = _liveportrait_layout(4)
    raw["motion"][1]["exp"] = _RunsCode(f"touch {marker}")  # hidden deep inside a valid-looking template
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps(raw))
    with pytest.raises(CheckpointError, match=r"refused to unpickle it, it names the global (posix|os|nt)\.system"):
        read_driving_template(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # proof that the file is hostile: plain pickle runs the command
    assert marker.exists()


@pytest.mark.parametrize(("content", "match"), [
    ({"n_frames": 2}, "expected a dict with a 'motion' list"),
    ([1, 2, 3], "holds list"),
    ({"motion": []}, "the 'motion' list is empty"),
    ({"n_frames": 3, "motion": [{"scale": np.ones((1, 1))}]}, "n_frames says 3 but 'motion' holds 1 frames"),
    ({"motion": [{"scale": np.ones((1, 1)), "exp": np.zeros((1, 21, 3))}]}, r"lacks \['R', 't'\]"),
    ({"motion": [{"scale": np.ones((1, 1)), "R": np.eye(3), "exp": np.zeros((1, 20, 3)), "t": np.zeros(3)}]},
     r"motion\[0\]\['exp'\] has shape \(1, 20, 3\)"),
    ({"motion": [{"scale": np.ones((1, 1)), "R": np.eye(3) * np.nan, "exp": np.zeros((1, 21, 3)),
                  "t": np.zeros(3)}]}, "NaN or Inf"),
])
def test_damaged_templates_name_the_problem(tmp_path, content, match):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(CheckpointError, match=match):
        read_driving_template(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_driving_template(path)
    with pytest.raises(CheckpointError, match="no such file"):
        read_driving_template(tmp_path / "missing.pkl")
