"""Weights that arrive by themselves: the manifest, and downloads through the real huggingface_hub client against a
real HTTP server on 127.0.0.1 that answers like the hub (tests/hub_server.py), serving the small test networks in the
real repository layouts. First runs fetch exactly the missing files, second runs send no request, a hub that is
down, offline or serves broken files leaves the models folder as it was with one message naming every file, a
dropped connection resumes; the shared LivePortrait folder is filled the way ComfyUI-LivePortraitKJ expects it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest
import soundfile as sf
from fixture_support import REPO, fixture_path
from hub_server import shared_hub, width_configs
from model_folders import write_liveportrait

from joyvasa_core.download import DownloadError, download_missing, missing_files, user_models_dir
from joyvasa_core.loading import find_liveportrait_files, load_liveportrait
from joyvasa_core.model_catalog import (
    ANIMAL,
    HUMAN,
    KIJAI_REPO,
    MANIFEST,
    MOTION_GENERATOR,
    OFFICIAL_DETECTOR,
    files_for,
)

JOB = (HUMAN, MOTION_GENERATOR)
JOB_TARGETS = {f.target for f in files_for(*JOB)}
TOKEN = "hf_local_test_token"


@pytest.fixture()
def hub(monkeypatch):
    server = shared_hub()
    server.reset()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield server
    if server._server is None:
        server.start()


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def run_cli(args: list[str], env: dict[str, str], cwd: Path, script: bool = False) -> subprocess.CompletedProcess:
    cmd = ["bash", str(REPO / "scripts" / "run.sh")] if script else [sys.executable, "-m", "joyvasa_core"]
    full = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", **env}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "JOYVASA_MODELS"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run(cmd + args, cwd=cwd, env=full, capture_output=True, text=True, timeout=1500)


def n_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ---------------------------------------------------------------------------------------------------------------------
# The manifest


def test_manifest_lists_every_file_once_with_its_source_and_place():
    targets = [f.target for f in MANIFEST]
    assert len(targets) == len(set(targets))
    human = files_for(HUMAN)
    assert {f.target for f in human} == {f"liveportrait/{n}.safetensors" for n in (
        "appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator",
        "stitching_retargeting_module")}
    assert all(f.repo_id == KIJAI_REPO and f.repo_path == f.name for f in human)
    animal = files_for(ANIMAL)
    assert {f.target for f in animal} == {f"liveportrait/animal/{f.name}" for f in human}
    motion = {f.repo_path: f.target for f in files_for(MOTION_GENERATOR)}
    assert motion == {
        "motion_generator/motion_generator_hubert_chinese.pt": "joyvasa/motion_generator_hubert_chinese.pt",
        "motion_template/motion_template.pkl": "joyvasa/motion_template.pkl",
    }
    optional = files_for(OFFICIAL_DETECTOR)
    assert {f.name for f in optional} == {"det_10g.onnx", "2d106det.onnx", "landmark.onnx"}
    assert all(f.optional for f in optional) and not any(f.optional for f in human + animal)
    assert "non-commercial" in next(f for f in optional if f.name == "det_10g.onnx").licence
    assert files_for(HUMAN)[0].url() == (
        "https://huggingface.co/Kijai/LivePortrait_safetensors/resolve/main/appearance_feature_extractor.safetensors")
    with pytest.raises(ValueError, match="unknown model feature"):
        files_for("landmarks")


def test_planning_keeps_the_shared_liveportrait_folder_whole(tmp_path):
    """A LivePortraitKJ folder this pack creates holds every file that pack expects; one that exists is left as it
    is; optional files are never planned unless named; JoyVASA files never create the shared folder."""
    assert {f.target for f in missing_files(tmp_path, [MOTION_GENERATOR])} == {
        "joyvasa/motion_generator_hubert_chinese.pt", "joyvasa/motion_template.pkl"}
    animal_first = {f.target for f in missing_files(tmp_path, [ANIMAL])}
    assert animal_first == {f.target for f in files_for(ANIMAL) + files_for(HUMAN)}
    (tmp_path / "liveportrait").mkdir()
    assert {f.target for f in missing_files(tmp_path, [ANIMAL])} == {f.target for f in files_for(ANIMAL)}
    assert not any(f.optional for f in missing_files(tmp_path, [HUMAN, ANIMAL, MOTION_GENERATOR]))


def test_user_models_dir_is_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv("JOYVASA_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if os.name != "nt" and sys.platform != "darwin":
        assert user_models_dir() == tmp_path / "joyvasa" / "models"
    monkeypatch.setenv("JOYVASA_MODELS", str(tmp_path / "mine"))
    assert user_models_dir() == tmp_path / "mine"


# ---------------------------------------------------------------------------------------------------------------------
# Downloads through huggingface_hub


def test_download_fetches_exactly_the_missing_files_then_nothing(hub, tmp_path):
    models = tmp_path / "models"
    width_configs(models, tmp_path)
    shutil.copytree(tmp_path / "cfg" / "joyvasa", models / "joyvasa")
    (models / "joyvasa" / "joyvasa_config.json").unlink()
    # the JoyVASA files are already there: only the five LivePortrait files may travel
    seen: dict[str, list[tuple[int, int]]] = {}
    fetched = download_missing(models, JOB, progress=lambda f, done, total: seen.setdefault(f.target, []).append(
        (done, total)))
    lp = {f.target for f in files_for(HUMAN)}
    assert {f.target for f in fetched} == lp
    assert hub.fetched() == {f"{f.repo_id}/{f.repo_path}" for f in files_for(HUMAN)}
    for target, reports in seen.items():  # bytes per file, ending at the file's size
        size = (models / target).stat().st_size
        assert reports[-1] == (size, size) and all(t == size for _, t in reports)
    assert set(seen) == lp
    assert (models / "liveportrait" / "warping_module.safetensors").read_bytes() == hub.files[
        f"{KIJAI_REPO}/warping_module.safetensors"]
    assert not [p for p in tree(models) if ".joyvasa-download" in p or ".cache" in p]
    hub.reset()
    assert download_missing(models, JOB) == []
    assert hub.hub_requests() == []
    assert load_liveportrait(models, "human", "cpu").variant == "human"


def test_hub_down_lists_every_missing_file_and_changes_nothing(hub, tmp_path):
    models = tmp_path / "models"
    width_configs(models, tmp_path)
    before = tree(models)
    hub.stop()
    try:
        with pytest.raises(DownloadError) as err:
            download_missing(models, JOB)
    finally:
        hub.start()
    msg = str(err.value)
    assert "cannot reach" in msg and hub.url in msg
    for f in files_for(*JOB):
        assert f"{models / f.folder}{os.sep}{f.name}" in msg
        assert f.url(hub.url) in msg
    assert tree(models) == before


def test_offline_and_no_download_send_nothing(hub, tmp_path, monkeypatch):
    models = tmp_path / "models"
    with pytest.raises(DownloadError, match="downloads are turned off"):
        download_missing(models, JOB, allow=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE") as err:
        download_missing(models, JOB)
    assert all(t.split("/")[-1] in str(err.value) for t in JOB_TARGETS)
    assert hub.hub_requests() == [] and not models.exists()


@pytest.mark.parametrize("broken", ["truncated", "html"])
def test_a_broken_file_from_the_hub_is_deleted_and_named(hub, tmp_path, broken):
    models = tmp_path / "models"
    key = f"{KIJAI_REPO}/spade_generator.safetensors"
    good = hub.files[key]
    hub.files[key] = good[: len(good) // 2] if broken == "truncated" else (
        b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n" * 20)
    with pytest.raises(DownloadError) as err:
        download_missing(models, [HUMAN])
    msg = str(err.value)
    assert "liveportrait" + os.sep + "spade_generator.safetensors" in msg
    assert ("truncated" if broken == "truncated" else "web page") in msg
    assert msg.count(" <- ") == 1  # only the broken file is still missing
    assert not (models / "liveportrait" / "spade_generator.safetensors").exists()
    assert (models / "liveportrait" / "warping_module.safetensors").is_file()
    assert not [p for p in tree(models) if ".joyvasa-download" in p or "incomplete" in p]


def test_a_dropped_connection_resumes_where_it_stopped(hub, tmp_path):
    """The connection drops after the client has stored its first chunk (huggingface_hub keeps whole chunks): the
    next request asks only for the rest (Range), and the file is whole."""
    from huggingface_hub import constants

    models = tmp_path / "models"
    key = "jdh-algo/JoyVASA/motion_generator/motion_generator_hubert_chinese.pt"
    assert len(hub.files[key]) > constants.DOWNLOAD_CHUNK_SIZE + 100_000
    hub.cut_next_get[key] = constants.DOWNLOAD_CHUNK_SIZE + 100_000
    download_missing(models, [MOTION_GENERATOR])
    gets = [r for r in hub.hub_requests("GET") if hub.key_of(r.path) == key]
    assert [r.range for r in gets] == [None, f"bytes={constants.DOWNLOAD_CHUNK_SIZE}-"]
    assert (models / "joyvasa" / "motion_generator_hubert_chinese.pt").read_bytes() == hub.files[key]


def test_a_missing_repository_file_is_named_with_its_url(hub, tmp_path):
    models = tmp_path / "models"
    del hub.files["jdh-algo/JoyVASA/motion_template/motion_template.pkl"]
    with pytest.raises(DownloadError, match=r"not found on the hub \(404\)") as err:
        download_missing(models, [MOTION_GENERATOR])
    assert f"{hub.url}/jdh-algo/JoyVASA/resolve/main/motion_template/motion_template.pkl" in str(err.value)
    assert not models.exists()


# ---------------------------------------------------------------------------------------------------------------------
# The layouts people already have


def test_the_kijai_and_kwaivgi_layouts_load_and_need_no_download(hub, tmp_path):
    kj = tmp_path / "kj"  # models/liveportrait/*.safetensors + animal/ with the same five names
    write_liveportrait(kj, "community")
    write_liveportrait(kj, "community", animal=True)
    shutil.copy(kj / "liveportrait" / "stitching_retargeting_module.safetensors", kj / "liveportrait" / "animal")
    assert load_liveportrait(kj, "human", "cpu").variant == "human"
    assert load_liveportrait(kj, "animal", "cpu").variant == "animal_v1.0"
    # `hf download KwaiVGI/LivePortrait --local-dir models/liveportrait`: models/liveportrait/liveportrait/base_models
    kwai = tmp_path / "kwai"
    write_liveportrait(kwai / "liveportrait", "official")
    write_liveportrait(kwai / "liveportrait", "official", animal=True)
    files = find_liveportrait_files(kwai, "human")
    assert files.paths["warping_module"] == kwai / "liveportrait/liveportrait/base_models/warping_module.pth"
    assert load_liveportrait(kwai, "human", "cpu").variant == "human"
    assert load_liveportrait(kwai, "animal", "cpu").variant == "animal_v1.1"
    assert download_missing(kj, [HUMAN, ANIMAL]) == [] and download_missing(kwai, [HUMAN, ANIMAL]) == []
    assert hub.hub_requests() == []


# ---------------------------------------------------------------------------------------------------------------------
# The command line


def readme_first_command() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands on a fresh machine", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    assert command.startswith("bash scripts/run.sh"), command
    return command.split()[2:]


def test_readme_first_command_downloads_then_renders_and_reruns_offline(hub, tmp_path):
    """The README's first command as written, on a fresh per-user folder: every job file fetched (with the
    token), the shipped example rendered; again with an existing folder: not one request; with no weights and the
    hub offline: one message, exit 2, nothing written."""
    args = readme_first_command()
    data = tmp_path / "data"
    models = data / "joyvasa" / "models"
    width_configs(models, tmp_path)
    env = {"HF_ENDPOINT": hub.url, "XDG_DATA_HOME": str(data), "HF_TOKEN": TOKEN}
    proc = run_cli(args, env, tmp_path, script=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub.fetched() == {f"{f.repo_id}/{f.repo_path}" for f in files_for(*JOB)}
    assert {r.authorization for r in hub.hub_requests()} == {f"Bearer {TOKEN}"}
    assert {f.target for f in files_for(*JOB)} <= set(tree(models))
    example = REPO / "joyvasa_core" / "examples" / "speech.wav"
    info = sf.info(str(example))
    assert n_frames(tmp_path / "talking.mp4") == round(info.duration * 25)  # lips in sync: round(seconds x 25)
    assert "liveportrait/spade_generator.safetensors" in proc.stderr  # the per-file bar

    hub.reset()
    speech = tmp_path / "short.wav"
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    sf.write(str(speech), wave[: rate // 4], rate, subtype="PCM_16")
    again = run_cli(["--audio", str(speech), "--out", "again.mp4", "--quiet"], env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert hub.hub_requests() == []

    fresh, cwd = tmp_path / "fresh", tmp_path / "elsewhere"
    cwd.mkdir()
    offline = run_cli(args, {**env, "XDG_DATA_HOME": str(fresh), "HF_HUB_OFFLINE": "1"}, cwd, script=True)
    assert offline.returncode == 2
    (line,) = offline.stderr.strip().splitlines()
    assert line.startswith("error: --models JoyVASA model files: 7 missing") and "HF_HUB_OFFLINE" in line
    assert line.count(" <- ") == 7 and all(f.url(hub.url) in line for f in files_for(*JOB))
    assert not fresh.exists() and tree(cwd) == [] and hub.hub_requests() == []
