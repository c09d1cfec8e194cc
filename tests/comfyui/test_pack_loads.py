"""The pack loads into a real ComfyUI 0.3.75 exactly as a Registry/Manager install does, and everything it exports
(nodes, web extension, shipped workflows) reaches the server's HTTP API."""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
from pathlib import Path

import pytest
import torch
from ui_to_api import FRONTEND_ONLY, convert

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")  # what ComfyUI scans

pytestmark = pytest.mark.comfyui


def test_server_runs_this_venvs_cpu_torch(comfyui):
    stats = comfyui.request("GET", "/system_stats")
    assert stats["system"]["comfyui_version"] == "0.3.75"
    assert stats["system"]["pytorch_version"] == torch.__version__
    assert stats["system"]["python_version"].split()[0] == sys.version.split()[0]
    assert [d["type"] for d in stats["devices"]] == ["cpu"]
    print(f"ComfyUI ready after {comfyui.startup_s:.1f} s")


def test_pack_imports_without_errors(comfyui):
    log = comfyui.log()
    pack = str(comfyui.pack_dir)
    failures = [ln for ln in log.splitlines() if pack in ln and ("IMPORT FAILED" in ln or "Cannot import" in ln)]
    assert failures == [], "the pack failed to import:\n" + comfyui.log_tail()
    startup = log.split("got prompt")[0]  # later tests provoke node errors on purpose; start-up must be clean
    assert "Traceback" not in startup, "a traceback while the server started:\n" + startup[-4000:]
    import_times = log.split("Import times for custom nodes:")[-1]
    loaded = re.findall(r"^\s*\d+\.\d seconds: (.+)$", import_times, re.MULTILINE)
    assert pack in loaded, f"{pack} not listed as loaded:\n{import_times[:2000]}"
    assert f"Skip {pack} module" not in log


def test_every_exported_node_is_registered(comfyui, pack_exports):
    # V3 only: a NODE_CLASS_MAPPINGS beside comfy_entrypoint would make ComfyUI load the V1 registry instead
    assert not pack_exports["v1_mappings"] and pack_exports["all_v3"]
    info = comfyui.object_info()
    module = f"custom_nodes.{comfyui.pack_name}"
    ours = sorted(name for name, spec in info.items() if spec.get("python_module") == module)
    assert ours == pack_exports["node_ids"], "the server registered a different node set than exported"
    assert len(ours) == 23 and pack_exports["hidden"] == ["JoyVASASampleMotion"]  # the old name: saved workflows
    assert [n for n in ours if info[n]["deprecated"]] == ["JoyVASASampleMotion"]
    for name, display in pack_exports["display_names"].items():
        assert name in ours, f"display name for unknown node {name}"
        assert info[name]["display_name"] == display
    for name in ours:
        assert comfyui.object_info(name)[name]["name"] == name


def test_custom_socket_types_have_ui_colours(comfyui, pack_exports):
    """Every JOYVASA_* type a node uses gets a colour from the web extension (and no colour is for a typo)."""
    info = comfyui.object_info()
    used = set()
    for name in pack_exports["node_ids"]:
        spec = info[name]
        for section in spec["input"].values():
            used.update(s[0] for s in section.values() if isinstance(s[0], str))
        used.update(t for t in spec["output"] if isinstance(t, str))
    js = (REPO / "web" / "js" / "joyvasa.js").read_text(encoding="utf-8")
    coloured = set(re.findall(r"^\s+(JOYVASA_[A-Z_]+):", js, re.MULTILINE))
    assert len(coloured) == 8
    assert {t for t in used if t.startswith("JOYVASA_")} <= coloured


def test_web_extension_is_served(comfyui, pack_exports):
    web_dir = (REPO / pack_exports["WEB_DIRECTORY"]).resolve()
    expected = sorted(
        f"/extensions/{urllib.parse.quote(comfyui.pack_name)}/{p.relative_to(web_dir).as_posix()}"
        for p in web_dir.rglob("*.js")
    )
    assert "/extensions/joyvasa/js/joyvasa.js" in expected
    prefix = f"/extensions/{comfyui.pack_name}/"
    listed = sorted(u for u in comfyui.request("GET", "/extensions") if u.startswith(prefix))
    assert listed == expected
    for url in listed:
        status, body = comfyui.get_bytes(url)
        assert status == 200, url
        assert body == (web_dir / url.split("/", 3)[3]).read_bytes()
        for spec in re.findall(r"""^\s*import\s[^"']*["']([^"']+)["']""", body.decode(), re.MULTILINE):
            target = urllib.parse.urljoin(url, spec)
            if target.startswith("/scripts/"):  # the frontend's modules
                assert target == "/scripts/app.js", f"{url} imports {spec} -> {target}"
                if comfyui.frontend:
                    assert comfyui.get_bytes(target)[0] == 200, f"the web UI does not serve {target}"
            else:
                assert comfyui.get_bytes(target)[0] == 200, f"{url} imports {spec} -> {target}: not served"


def test_shipped_workflows_are_listed_served_and_convertible(comfyui):
    shipped = sorted((folder, p.stem) for folder in WORKFLOW_FOLDERS for p in (REPO / folder).glob("*.json"))
    listing = comfyui.request("GET", "/api/workflow_templates")
    assert sorted(listing.get(comfyui.pack_name, [])) == sorted(stem for _, stem in shipped)
    info = comfyui.object_info() if shipped else {}
    for folder, stem in shipped:
        served = comfyui.request("GET", f"/api/workflow_templates/{comfyui.pack_name}/{urllib.parse.quote(stem)}.json")
        assert served == json.loads((REPO / folder / f"{stem}.json").read_text(encoding="utf-8"))
        unknown = {n["type"] for n in served["nodes"]} - set(info) - FRONTEND_ONLY
        assert not unknown, f"{folder}/{stem}.json uses node types the server does not have: {sorted(unknown)}"
        prompt = convert(served, info)
        assert prompt, f"{folder}/{stem}.json converts to an empty prompt"
