"""The web extension runs in Node against a stand-in ``app`` laid out at the same URLs ComfyUI serves, so a wrong
relative import path, a syntax error or lost colours fail here without a browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
EXTENSION = REPO / "web" / "js" / "joyvasa.js"
SOCKET_TYPES = (
    "JOYVASA_FACE",
    "JOYVASA_APPEARANCE",
    "JOYVASA_AUDIO_FEATURES",
    "JOYVASA_MOTION",
    "JOYVASA_KEYPOINTS",
    "JOYVASA_LIVEPORTRAIT",
    "JOYVASA_MOTION_MODEL",
    "JOYVASA_FACE_DETECTOR",
)

STUB_APP = """
export const registered = [];
export const app = { canvas: null, registerExtension(ext) { registered.push(ext); } };
"""

# Mimics the frontend: a canvas class with the static wire-colour table, then what loading a palette does.
DRIVER = """
import { app, registered } from "./scripts/app.js";
class LGraphCanvas {
  static link_type_colors = { "-1": "#A86", number: "#AAA" };
  constructor() { this.default_connection_color_byType = {}; this.dirtied = 0; }
  setDirty() { this.dirtied += 1; }
}
globalThis.LGraphCanvas = LGraphCanvas;
app.canvas = new LGraphCanvas();
const types = JSON.parse(process.argv[2]);
const tables = () => [app.canvas.default_connection_color_byType, LGraphCanvas.link_type_colors];
const snapshot = () => tables().map((t) => Object.fromEntries(types.map((k) => [k, t[k] ?? null])));
const loadPalette = (slots) => {
  const blank = Object.fromEntries([...types, "IMAGE"].map((k) => [k, ""]));
  for (const t of tables()) Object.assign(t, blank, slots);
};
const out = {};
await import(process.argv[3]);
out.names = registered.map((e) => e.name);
out.before_setup = snapshot();
for (const ext of registered) await ext.setup?.(app);
out.after_setup = snapshot();
out.dirtied = app.canvas.dirtied;
loadPalette({ IMAGE: "#64B5F6" });
out.after_palette = snapshot();
loadPalette({ [types[0]]: "#123456" });
out.palette_override = snapshot();
loadPalette({});
out.after_switch_back = snapshot();
console.log(JSON.stringify(out));
"""


def run_extension_in_node(tmp_path: Path, source: str | None = None) -> dict:
    """Lays the extension out at its served URL path (/extensions/<pack>/js/...) beside a stub /scripts/app.js,
    runs it in Node and returns what it registered and the colour tables after each palette event."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed: the JS extension check needs `node`")
    served = tmp_path / "extensions" / PACK_NAME / EXTENSION.relative_to(REPO / "web")
    served.parent.mkdir(parents=True)
    served.write_text(EXTENSION.read_text(encoding="utf-8") if source is None else source, encoding="utf-8")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(STUB_APP, encoding="utf-8")
    (tmp_path / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    (tmp_path / "driver.js").write_text(DRIVER, encoding="utf-8")
    proc = subprocess.run(
        [node, "driver.js", json.dumps(SOCKET_TYPES), "./" + served.relative_to(tmp_path).as_posix()],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, f"extension failed in Node:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_web_extension_registers_distinct_socket_colours(tmp_path):
    out = run_extension_in_node(tmp_path)
    assert out["names"] == ["JoyVASA.Sockets", "JoyVASA.Outputs"]
    assert all(v is None for table in out["before_setup"] for v in table.values()), "colours must be set in setup()"
    slots, links = out["after_setup"]
    assert slots == links
    assert set(slots) == set(SOCKET_TYPES)
    for socket_type, colour in slots.items():
        assert isinstance(colour, str) and len(colour) == 7 and colour[0] == "#", (socket_type, colour)
        int(colour[1:], 16)
    assert len({c.lower() for c in slots.values()}) == len(SOCKET_TYPES), f"colours must be distinct: {slots}"
    assert out["dirtied"] >= 1, "the canvas must be redrawn with the new colours"


def test_web_extension_colours_survive_palette_changes(tmp_path):
    out = run_extension_in_node(tmp_path)
    ours = out["after_setup"]
    assert out["after_palette"] == ours, "loading a palette that does not name our types must keep our colours"
    first = SOCKET_TYPES[0]
    for table, original in zip(out["palette_override"], ours, strict=True):
        assert table[first] == "#123456", "a palette that names our type must win"
        assert {k: v for k, v in table.items() if k != first} == {k: v for k, v in original.items() if k != first}
    assert out["after_switch_back"] == ours


def test_web_extension_import_path_is_checked(tmp_path):
    """The Node layout resolves imports like the browser does: the two-level path to app.js fails there."""
    wrong = EXTENSION.read_text(encoding="utf-8").replace('"../../../scripts/app.js"', '"../../scripts/app.js"')
    assert wrong != EXTENSION.read_text(encoding="utf-8"), "the extension must import ../../../scripts/app.js"
    with pytest.raises(AssertionError, match="ERR_MODULE_NOT_FOUND"):
        run_extension_in_node(tmp_path, wrong)


# Drives the output helpers on stand-in nodes shaped like the frontend's (widgets with name/value/options/callback).
OUTPUTS_DRIVER = """
import { app } from "./scripts/app.js";
const ext = await import(process.argv[2]);
const revoked = [];
globalThis.URL.revokeObjectURL = (url) => revoked.push(url);
const widget = (name, value, extra = {}) => ({ name, value, options: {}, ...extra });
const makeNode = (id, widgets) => ({
  id, size: [280, 300], widgets, graph: { isRootGraph: true, setDirtyCanvas() {} },
  computeSize() { return [280, 40 + 24 * this.widgets.filter((w) => !w.hidden).length]; },
  setSize(size) { this.size = size; },
  addCustomWidget(w) { this.widgets.push(w); return w; },
  addWidget(type, name, value, cb, options) { return this.addCustomWidget(widget(name, value, { type, options })); },
});
const out = {};
const render = makeNode(10, [widget("crf", 18), widget("$$canvas-image-preview", null)]);
render.imgs = ["frame"];
app.nodePreviewImages = { 10: ["blob:frame-1"], 11: ["blob:other"] };
out.dropped = ext.dropLivePreviews(render, app.nodePreviewImages);
out.previews_left = Object.keys(app.nodePreviewImages);
out.revoked = revoked;
out.render_widgets = render.widgets.map((w) => w.name);
out.imgs = render.imgs ?? null;
out.dropped_again = ext.dropLivePreviews(render, app.nodePreviewImages);
ext.keepPreviewWidgetsOutOfPrompt(render);
render.addCustomWidget(widget("video-preview", "x"));
render.addCustomWidget(widget("$$comfy_animation_preview", "y"));
render.addCustomWidget(widget("other", "z"));
out.serialize = Object.fromEntries(render.widgets.map((w) => [w.name, w.options.serialize ?? null]));
const sample = makeNode(8, [widget("sampler", "ddpm", { callback() {} }), widget("steps", 50)]);
const specs = { sampler: ["COMBO", {}], steps: ["INT", { shown_when: { sampler: ["ddim"] } }] };
const update = ext.applyShownWhen(sample, specs);
const steps = sample.widgets[1];
out.ddpm = [!!steps.hidden, steps.computeSize?.()[1] ?? null, sample.size[1]];
sample.widgets[0].value = "ddim";
sample.widgets[0].callback("ddim");
out.ddim = [!!steps.hidden, steps.computeSize?.()[1] ?? null, sample.size[1]];
sample.widgets[0].value = "ddpm";
update();
out.back = [!!steps.hidden, sample.size[1]];
const save = makeNode(13, [widget("filename_prefix", "JoyVASA/motion")]);
out.saved = ext.showSavedFile(save, { motion: [{ filename: "motion_00002_.safetensors", subfolder: "JoyVASA" }] });
const line = save.widgets.at(-1);
line.value = "edited";
line.callback("edited");
out.saved_widget = save.widgets.map((w) => [w.name, w.value, w.options.serialize ?? null, !!w.disabled]);
out.no_file = ext.showSavedFile(save, { images: [] });
console.log(JSON.stringify(out));
"""


def test_web_extension_shows_outputs_and_keeps_displays_out_of_the_prompt(tmp_path):
    run_extension_in_node(tmp_path)  # lays the extension out beside the stub app
    (tmp_path / "outputs.js").write_text(OUTPUTS_DRIVER, encoding="utf-8")
    served = "./" + (Path("extensions") / PACK_NAME / EXTENSION.relative_to(REPO / "web")).as_posix()
    proc = subprocess.run([shutil.which("node"), "outputs.js", served], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["dropped"] is True and out["previews_left"] == ["11"] and out["revoked"] == ["blob:frame-1"]
    assert out["render_widgets"] == ["crf"] and out["imgs"] is None, "the preview frame must go with its widget"
    assert out["dropped_again"] is False
    assert out["serialize"] == {"crf": None, "video-preview": False, "$$comfy_animation_preview": False,
                                "other": None}
    assert out["ddpm"] == [True, -4, 40 + 24]  # hidden, no height, the node shrinks to its shown widgets
    assert out["ddim"] == [False, None, 40 + 48]
    assert out["back"] == [True, 40 + 24]
    assert out["saved"] == "motion_00002_.safetensors"
    assert out["saved_widget"][1:] == [["saved_file", "motion_00002_.safetensors", False, False]], "an edit goes back"
    assert out["no_file"] is None
