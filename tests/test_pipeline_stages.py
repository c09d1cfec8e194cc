"""Pipeline stages: model folders in every layout, stage composition, chunked rendering, and the pipeline's wiring
checked against the reference's own keypoint and render values (``liveportrait_small`` fixture)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fixture_support import assert_close, fixture_path, load_fixture
from keypoint_support import options_from_flags
from model_folders import LP_SMALL, MOTION_SMALL, write_joyvasa, write_liveportrait
from motion_support import audio_config_from_meta, config_from_meta, options_from, template_from

from joyvasa_core.errors import AudioInputError, Cancelled, CheckpointError, FaceInputError
from joyvasa_core.face.pasteback import PictureArea
from joyvasa_core.face.reference import ReferenceOptions, prepare_reference
from joyvasa_core.keypoints import KeypointComposer, KeypointOptions, MotionFrames
from joyvasa_core.liveportrait.slots import STITCHING
from joyvasa_core.loading import find_joyvasa_files, find_liveportrait_files, load_liveportrait, load_motion_model
from joyvasa_core.motion.sequence import MotionSequence
from joyvasa_core.pipeline import (
    compute_target_keypoints,
    extract_appearance,
    paste_back_into_photo,
    pastes_back,
    prepare_speech,
    render_frames,
    sample_motion,
    warp_and_render,
)
from joyvasa_core.types import Appearance, Speech, TargetKeypoints

# Fixture README tolerances.
ATOL_KP = 5e-5
ATOL_G_CHAINED = 5e-4
ATOL_M_INFO = 3e-5


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_liveportrait(root, "official")
    write_joyvasa(root)
    return root


@pytest.fixture(scope="module")
def lp_models(models_dir):
    return load_liveportrait(models_dir, "human", device="cpu")


@pytest.fixture(scope="module")
def motion_model(models_dir):
    return load_motion_model(models_dir, device="cpu", pe_mode=load_fixture(MOTION_SMALL).meta["pe_modes"][0])


# ---------------------------------------------------------------------------------------------------------------------
# Folders


def test_models_folder_layouts_are_found(tmp_path):
    official = write_liveportrait(tmp_path / "a", "official")
    community = write_liveportrait(tmp_path / "b", "community")
    files = find_liveportrait_files(official, "human")
    assert {p.suffix for p in files.paths.values()} == {".pth"}
    assert files.paths[STITCHING].parent.name == "retargeting_models"
    assert files.config_path is not None and files.variant == "human"
    files = find_liveportrait_files(community, "human")
    assert {p.suffix for p in files.paths.values()} == {".safetensors"}
    # Animal weights: official v1.1 folder and the community animal/ subfolder; stitching is the human file.
    write_liveportrait(tmp_path / "a", "official", animal=True)
    animal = find_liveportrait_files(official, "animal")
    assert animal.variant == "animal_v1.1" and animal.paths["appearance_feature_extractor"].parent.name.endswith("1.1")
    assert animal.paths[STITCHING] == official / "liveportrait" / "retargeting_models" / f"{STITCHING}.pth"
    write_liveportrait(tmp_path / "b", "community", animal=True)
    animal = find_liveportrait_files(community, "animal")
    assert animal.variant == "animal_v1.0" and animal.paths["warping_module"].parent.name == "animal"
    # The reference's JoyVASA layout.
    ref = write_joyvasa(tmp_path / "c", reference_layout=True)
    motion, template = find_joyvasa_files(ref)
    assert motion.parent.name == "motion_generator" and template.parent.name == "motion_template"


def test_missing_files_name_what_is_expected_and_where(tmp_path):
    (tmp_path / "liveportrait").mkdir()
    with pytest.raises(CheckpointError) as err:
        find_liveportrait_files(tmp_path, "human")
    msg = str(err.value)
    for name in ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator"):
        assert name in msg
    assert str(tmp_path / "liveportrait") in msg
    # A partial official folder says which files are missing there.
    write_liveportrait(tmp_path, "official")
    (tmp_path / "liveportrait/base_models/spade_generator.pth").unlink()
    with pytest.raises(CheckpointError, match=r"missing there: spade_generator"):
        find_liveportrait_files(tmp_path, "human")
    with pytest.raises(CheckpointError, match=r"motion_generator_hubert_chinese\.pt and motion_template\.pkl"):
        find_joyvasa_files(tmp_path)
    with pytest.raises(CheckpointError, match="animal"):
        find_liveportrait_files(tmp_path, "animal")


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline's wiring against the reference's own values


def _fixture_appearance(lp_models) -> tuple[Appearance, object]:
    """ExtractAppearance on the fixture's 256 source (the reference's squeezed whole image = its plain resize)."""
    fx = load_fixture(LP_SMALL)
    img = fx["src.img256"].numpy()
    ref = prepare_reference(img, None, ReferenceOptions(mode="human", crop="squeeze"))
    assert np.array_equal(ref[0].crop256, img)
    return extract_appearance(lp_models, ref), fx


def _fixture_motion(fx) -> MotionSequence:
    """Motion frames [d_0, d_i...] from the fixture's driving inputs (d_0 first: it is the reference frame)."""
    def both(name):
        return torch.cat([fx[f"drv.ref.{name}"], fx[f"drv.{name}"]])

    n = both("exp").shape[0]
    return MotionSequence(
        coef=torch.zeros(n, 73), pose_raw=torch.zeros(n, 7), exp=both("exp"), scale=both("scale"), t=both("t"),
        pitch=both("pitch"), yaw=both("yaw"), roll=both("roll"), R=both("R"), fps=25,
    )


def test_pipeline_keypoints_match_reference_recipes(lp_models):
    """Appearance -> ComputeTargetKeypoints reproduces the reference's x_d for both recipes (web and CLI paths)."""
    appearance, fx = _fixture_appearance(lp_models)
    assert_close(appearance.x_s, fx["M.x_s"], atol=ATOL_M_INFO, name="appearance.x_s")
    motion = _fixture_motion(fx)
    meta = fx.meta
    recipe_b = options_from_flags(meta["recipe_b"], KeypointOptions.web())
    recipe_a = options_from_flags(meta["recipe_a"], KeypointOptions.cli())
    with_lip = replace(appearance, lip_ratio=torch.tensor([[meta["recipe_b"]["lip_ratio_c_s"]]]))
    kp_b = compute_target_keypoints(lp_models, with_lip, motion, recipe_b)
    kp_a = compute_target_keypoints(lp_models, appearance, motion, recipe_a)
    assert isinstance(kp_b, TargetKeypoints) and kp_b.n_frames == motion.n_frames
    assert_close(kp_b.x_d[1:], fx["kp.b.x_d"], atol=ATOL_KP, name="pipeline recipe b x_d")
    assert_close(kp_a.x_d[1:], fx["kp.a.x_d"], atol=ATOL_KP, name="pipeline recipe a x_d")
    # The web path maps frame 0 (the reference frame) to the source keypoints plus the stitching/lip offsets only.
    composer = KeypointComposer(
        with_lip.info, MotionFrames(fx["drv.ref.exp"], fx["drv.ref.scale"], fx["drv.ref.t"], fx["drv.ref.R"]),
        recipe_b, lp_models.stitching, source_lip_ratio=with_lip.lip_ratio,
    )
    assert_close(kp_b.x_d[:1], composer(MotionFrames(fx["drv.ref.exp"], fx["drv.ref.scale"], fx["drv.ref.t"],
                                                     fx["drv.ref.R"])).x_d, atol=ATOL_KP, name="frame 0")


def test_render_stage_matches_reference_frame(lp_models):
    """WarpAndRender (cached source compression, chunked W+G, no paste-back) on the reference's x_d gives G.out."""
    appearance, fx = _fixture_appearance(lp_models)
    i = int(fx.meta["warp_frame_index"])
    kp = TargetKeypoints(x_d=fx["kp.b.x_d"][i : i + 1], x_s=appearance.x_s, options=KeypointOptions())
    frames = warp_and_render(lp_models, appearance, kp, reference=None, paste_back=False)
    assert frames.shape == (1, lp_models.crop_size, lp_models.crop_size, 3)
    assert_close(frames.permute(0, 3, 1, 2), fx["G.out"], atol=ATOL_G_CHAINED, name="rendered frame vs G.out")


# ---------------------------------------------------------------------------------------------------------------------
# Composition, chunking, streaming, cancellation


@pytest.fixture(scope="module")
def composed(models_dir, lp_models, motion_model):
    """Every stage chained on the real photo and the trimmed real speech (web preset with paste-back)."""
    from joyvasa_core.audio.io import load_audio
    from joyvasa_core.face.detectors.bundled import BundledFaceDetector

    motion_fx = load_fixture(MOTION_SMALL)
    wave = load_audio(fixture_path(motion_fx.meta["audio"]["source"]))[: motion_fx.meta["audio"]["samples_used"]]
    assert torch.equal(wave, motion_fx["seq.in.wave"]), "the fixture's waveform is the start of its speech file"
    import cv2

    img = cv2.cvtColor(cv2.imread(str(fixture_path("astronaut.png"))), cv2.COLOR_BGR2RGB)
    ref = prepare_reference(img, BundledFaceDetector(), ReferenceOptions(mode="human", crop="face"))
    appearance = extract_appearance(lp_models, ref)
    audio = prepare_speech(wave, motion_model)
    motion = sample_motion(motion_model, audio, options_from(motion_fx.meta))
    keypoints = compute_target_keypoints(lp_models, appearance, motion, KeypointOptions.web())
    return ref, appearance, audio, motion, keypoints, motion_fx.meta["audio"]


def test_stages_compose(composed):
    ref, appearance, audio, motion, keypoints, audio_meta = composed
    assert isinstance(audio, Speech)
    padded = audio_meta["samples_used"] + audio_meta["leading_pad"] + audio_meta["trailing_pad"]
    frames = math.floor(padded / (audio_meta["sample_rate"] // load_fixture(MOTION_SMALL).meta["model"]["fps"]))
    assert audio.plan.n_frames == frames == motion.n_frames == keypoints.n_frames  # the reference's timing
    assert audio.n_frames == math.floor(audio_meta["samples_used"] / 640 + 0.5)  # the default, in sync
    assert appearance.lip_ratio is not None and appearance.compressed is not None
    assert torch.isfinite(keypoints.x_d).all()
    for obj in (appearance, audio, motion, keypoints):
        text = repr(obj)
        assert "\n" not in text and len(text) < 300 and type(obj).__name__ in text


def test_chunked_rendering_is_batch_size_independent(lp_models, composed):
    """W and G on a chunk of 4 frames give the frames of 4 single-frame passes (source feature shared, batch 1).

    CPU convolutions pick other kernels for another batch size: W differs by ~1e-5 (as in the network test) and G
    amplifies that to ~3e-5, so the frames are held to the README's chained G.out tolerance and the uint8 frames
    the video gets to one grey level.
    """
    _, appearance, _, _, keypoints, _ = composed
    short = replace(keypoints, x_d=keypoints.x_d[:4])
    one = warp_and_render(lp_models, appearance, short, None, paste_back=False, batch_size=1)
    four = warp_and_render(lp_models, appearance, short, None, paste_back=False, batch_size=4)
    assert one.shape == (4, lp_models.crop_size, lp_models.crop_size, 3)
    assert_close(four, one, atol=ATOL_G_CHAINED, name="batch 4 vs batch 1")
    u8_one, u8_four = (one * 255).to(torch.uint8).int(), (four * 255).to(torch.uint8).int()
    assert int((u8_one - u8_four).abs().max()) <= 1 and float((u8_one != u8_four).float().mean()) < 1e-3
    assert float((one[1:] - one[:1]).abs().max()) > 1e-3, "different keypoints must give different frames"


def test_paste_back_only_with_stitching(composed, caplog):
    """One rule, in paste_back_into_photo, for every caller: no paste-back without stitching (logged), none when not
    asked, and an image index outside the face is an error that names the input."""
    ref, _, _, _, keypoints, _ = composed
    assert keypoints.options.stitching
    assert paste_back_into_photo(ref, keypoints.options.stitching) is not None
    assert paste_back_into_photo(ref, keypoints.options.stitching, wanted=False) is None
    assert paste_back_into_photo(None, keypoints.options.stitching) is None
    plain = replace(keypoints, options=replace(keypoints.options, stitching=False))
    with caplog.at_level("WARNING"):
        assert paste_back_into_photo(ref, plain.options.stitching) is None
        assert paste_back_into_photo(ref, stitching=False, index=0, crop_size=512) is None
    assert sum("stitching is off" in r.getMessage() for r in caplog.records) == 2
    with pytest.raises(FaceInputError, match="image_index 3"):
        paste_back_into_photo(ref, keypoints.options.stitching, index=3)


def test_whole_image_crop_renders_at_the_photos_size_stitching_or_not():
    """A whole-image crop holds the whole picture: its frames come back at the photo's size even without stitching
    (the animal path), unless the 512 crop is asked for."""
    cat = cv2.cvtColor(cv2.imread(str(fixture_path("chelsea.png"))), cv2.COLOR_BGR2RGB)
    ref = prepare_reference(cat, None, ReferenceOptions(mode="animal"))
    area = paste_back_into_photo(ref, stitching=False)
    assert isinstance(area, PictureArea) and (area.width, area.height) == (450, 300)
    assert paste_back_into_photo(ref, stitching=False, wanted=False) is None
    assert pastes_back(True, False, True) and not pastes_back(True, False, False) and not pastes_back(False, True, True)


class _CheapRenderer(torch.nn.Module):
    """Stand-in W and G (a frame whose pixels encode x_d), so the streaming mechanics are tested in milliseconds."""

    config = None

    def forward(self, feature, kp_source=None, kp_driving=None, compressed=None):
        if kp_driving is None:  # G: (n, 1, 1, 1) -> (n, 3, 512, 512)
            return feature.expand(-1, 3, 512, 512)
        value = torch.sigmoid(kp_driving.sum(dim=(1, 2)))
        return {"out": value.reshape(-1, 1, 1, 1)}


def test_streaming_chunks_paste_back_and_uint8(lp_models, composed):
    ref, appearance, _, _, keypoints, _ = composed
    fast = replace(lp_models, warping=_CheapRenderer(), spade=_CheapRenderer())
    short = replace(keypoints, x_d=keypoints.x_d[:5])
    pb = paste_back_into_photo(ref, True, index=0, crop_size=fast.crop_size)
    h, w = ref[0].image.shape[:2]
    chunks = list(render_frames(fast, appearance, short, pb, batch_size=2))
    assert [tuple(c.shape) for c in chunks] == [(2, h, w, 3), (2, h, w, 3), (1, h, w, 3)]
    full = warp_and_render(fast, appearance, short, ref, paste_back=True, batch_size=5)
    assert torch.equal(torch.cat(chunks), full)
    as_u8 = torch.cat(list(render_frames(fast, appearance, short, pb, batch_size=3, as_uint8=True)))
    assert as_u8.dtype == torch.uint8 and torch.equal(as_u8.float() / 255, full)
    # Outside the paste-back mask the original photo is untouched; inside, the rendered value is blended in.
    assert torch.equal(full[0, 0, 0], torch.from_numpy(ref[0].image[0, 0]).float() / 255)
    raw = torch.cat(list(render_frames(fast, appearance, short, None, batch_size=2, as_uint8=True)))
    assert raw.shape == (5, 512, 512, 3)
    expected = (torch.sigmoid(short.x_d.sum(dim=(1, 2))) * 255).to(torch.uint8)
    assert torch.equal(raw[:, 0, 0, 0], expected)


def test_rendering_stops_when_cancelled(lp_models, composed):
    _, appearance, _, _, keypoints, _ = composed
    fast = replace(lp_models, warping=_CheapRenderer(), spade=_CheapRenderer())

    class StopAfterFirst:
        calls = 0

        def update(self, done, total, preview=None):
            self.calls += 1

        def check_cancel(self):
            if self.calls:
                raise Cancelled("stop")

    progress = StopAfterFirst()
    stream = render_frames(fast, appearance, keypoints, None, batch_size=2, progress=progress)
    assert next(stream).shape[0] == 2
    with pytest.raises(Cancelled):
        next(stream)
    assert progress.calls == 1


def test_encode_audio_runs_hubert_once_for_every_sample(motion_model):
    """EncodeAudio runs HuBERT once per window; SampleMotion with other seeds reuses the features (identical motion
    to encoding while sampling), re-planning with the same model keeps them, and another model refuses them."""
    fx = load_fixture(MOTION_SMALL)
    meta = fx.meta
    wave = fx["seq.in.wave"]
    options = options_from(meta)
    gen, cfg = motion_model.generator, motion_model.config
    calls: list[int] = []
    handle = gen.audio_encoder.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        audio = prepare_speech(wave, motion_model, leading_silence=options.leading_silence)
        n = audio.plan.n_windows
        assert len(calls) == n
        first = sample_motion(motion_model, audio, options)
        other = sample_motion(motion_model, audio, replace(options, seed=options.seed + 1))
        kept = prepare_speech(audio, motion_model, leading_silence=options.leading_silence)
        assert len(calls) == n
        plain = sample_motion(motion_model, replace(audio, window_features=None, model_fingerprint=None), options)
        assert len(calls) == 2 * n
    finally:
        handle.remove()
    assert audio.window_features.shape == (n, cfg.n_motions, cfg.feature_dim) and "features" in repr(audio)
    assert torch.equal(first.coef, plain.coef)
    assert not torch.equal(first.coef, other.coef)
    assert kept.window_features is audio.window_features and kept.plan == audio.plan
    replanned = prepare_speech(audio, motion_model, leading_silence=not options.leading_silence)
    assert replanned.plan != audio.plan and replanned.window_features is not None
    assert prepare_speech(audio, None, leading_silence=options.leading_silence).window_features is audio.window_features
    foreign = copy.deepcopy(gen)
    with torch.no_grad():
        foreign.audio_feature_map.bias.add_(1e-3)
    with pytest.raises(AudioInputError, match="another motion model"):
        sample_motion(replace(motion_model, generator=foreign), audio, options)


def test_fixture_models_config_round_trip(motion_model):
    """The JSON widths rebuild exactly the fixture's motion generator (the folder loader reads them)."""
    meta = load_fixture(MOTION_SMALL).meta
    assert motion_model.generator.config == config_from_meta(meta, meta["pe_modes"][0])
    hub = audio_config_from_meta(meta)
    assert motion_model.generator.audio_encoder.config.num_hidden_layers == hub.num_hidden_layers
    tpl = template_from(load_fixture(MOTION_SMALL))
    assert torch.equal(motion_model.template.mean_exp, tpl.mean_exp)


def test_motion_model_loads_from_explicit_files_with_any_name(models_dir, motion_model, tmp_path):
    """A checkpoint and template picked by name (as the loader node does) load whatever they are called."""
    import shutil

    motion, template = find_joyvasa_files(models_dir)
    renamed = tmp_path / "my_finetune.pt"
    shutil.copy(motion, renamed)
    shutil.copy(motion.parent / "joyvasa_config.json", tmp_path / "joyvasa_config.json")
    stats = tmp_path / "stats.pkl"
    shutil.copy(template, stats)
    loaded = load_motion_model(None, device="cpu", pe_mode=motion_model.generator.pe_mode, generator_path=renamed,
                               template_path=stats)
    assert loaded.paths == {"motion_generator": str(renamed), "motion_template": str(stats)}
    ours, theirs = loaded.generator.state_dict(), motion_model.generator.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    with pytest.raises(CheckpointError, match="motion_template"):
        load_motion_model(tmp_path / "nowhere", device="cpu", generator_path=renamed)
