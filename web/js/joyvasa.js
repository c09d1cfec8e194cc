// JoyVASA UI extension: distinct link and slot colours for the pack's own socket types (a graph shows at a glance
// which wire carries a face, audio features, motion or a loaded model), and how the pack's nodes show their
// outputs: the player of the file a run just wrote, the saved motion's name, only the widgets that apply.
//
// ComfyUI serves this file at /extensions/joyvasa/js/joyvasa.js (WEB_DIRECTORY = "./web"), so the frontend's
// scripts/app.js is three levels up. "../../scripts/app.js" would 404 and the extension would silently not load.
import { app } from "../../../scripts/app.js";

// Hues picked away from the built-in palettes' IMAGE/LATENT/MASK/MODEL/VAE/CLIP colours.
export const SOCKET_COLORS = Object.freeze({
  JOYVASA_FACE: "#E8603C",
  JOYVASA_APPEARANCE: "#D4479B",
  JOYVASA_AUDIO_FEATURES: "#1FA2C8",
  JOYVASA_MOTION: "#8C52E0",
  JOYVASA_KEYPOINTS: "#B5D33D",
  JOYVASA_LIVEPORTRAIT: "#4F6BD8",
  JOYVASA_MOTION_MODEL: "#B23CC8",
  JOYVASA_FACE_DETECTOR: "#16A596",
});

// Loading a colour palette does Object.assign(table, {<every known type>: ""}, palette.node_slot), which would
// blank our colours at start-up and on every palette switch. An accessor keeps our colour when a palette says
// nothing about the type, and still lets a palette that names the type win.
function keepColour(table, type, colour) {
  let current = colour;
  Object.defineProperty(table, type, {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (value) => {
      current = value || colour;
    },
  });
}

app.registerExtension({
  name: "JoyVASA.Sockets",
  async setup() {
    const canvasClass = globalThis.LGraphCanvas ?? app.canvas.constructor;
    for (const [type, colour] of Object.entries(SOCKET_COLORS)) {
      keepColour(app.canvas.default_connection_color_byType, type, colour); // slot dots
      keepColour(canvasClass.link_type_colors, type, colour); // wires
    }
    app.canvas.setDirty?.(true, true);
  },
});

// The pack's nodes: every class name the pack registers starts with this.
const OURS = "JoyVASA";
// The frontend's player widget on a node whose output is a video, and the start of its image-preview widgets' names.
const PLAYER_WIDGET = "video-preview";
const PREVIEW_WIDGETS = "$$";
// The read-only line where Save Motion shows the file it wrote.
export const SAVED_WIDGET = "saved_file";

// Where the frontend keeps a node's live preview images (app.nodePreviewImages): "<subgraph id>:<node id>" inside
// a subgraph, the node id on the root graph.
function locatorId(node) {
  const graph = node.graph;
  return graph && graph.isRootGraph === false ? `${graph.id}:${node.id}` : String(node.id);
}

// The frontend shows a node's live preview images in preference to its outputs for as long as they exist, and
// only redraws the output when the output changes. Our nodes stream preview frames while they work, so when the
// run's output arrives the player would load the last preview frame instead of the file the run wrote (and keep
// the older file on the next run). Dropping this node's previews as its output arrives shows the output.
export function dropLivePreviews(node, previews = app.nodePreviewImages) {
  const id = locatorId(node);
  const urls = previews?.[id];
  if (!urls) return false;
  for (const url of urls) if (typeof url === "string" && url.startsWith("blob:")) URL.revokeObjectURL(url);
  delete previews[id];
  // the preview frames the node drew, and the widgets that drew them, go with them
  node.imgs = undefined;
  node.imageIndex = null;
  for (const widget of node.widgets?.filter((w) => w.name?.startsWith(PREVIEW_WIDGETS)) ?? []) {
    widget.onRemove?.();
    node.widgets.splice(node.widgets.indexOf(widget), 1);
  }
  return true;
}

// The player and the preview images are displays of the last run, not inputs: left in the prompt, their values
// change the node's cache key in ComfyUI, so the next run with nothing changed would render again.
export function keepPreviewWidgetsOutOfPrompt(node) {
  const add = node.addCustomWidget;
  node.addCustomWidget = function (widget) {
    if (widget?.name === PLAYER_WIDGET || widget?.name?.startsWith(PREVIEW_WIDGETS)) {
      widget.options ??= {};
      widget.options.serialize = false;
    }
    return add.call(this, widget);
  };
}

// A widget whose input spec carries {shown_when: {<other widget>: [values]}} is offered only while the other
// widget holds one of those values (the node decides which, from joyvasa_core: e.g. steps only for ddim). Returns
// the function that re-applies the rule (after a workflow sets the values); wraps the controls' callbacks once.
export function applyShownWhen(node, specs) {
  const rules = Object.entries(specs)
    .map(([name, spec]) => [node.widgets?.find((w) => w.name === name), spec?.[1]?.shown_when])
    .filter(([widget, rule]) => widget && rule);
  const update = () => {
    let changed = false;
    for (const [widget, rule] of rules) {
      const shown = Object.entries(rule).every(([other, values]) => {
        const control = node.widgets.find((w) => w.name === other);
        return !control || values.includes(control.value);
      });
      if (!!widget.hidden !== shown) continue;
      changed = true;
      widget.hidden = !shown;
      // the frontend lays widgets out hidden or not: a hidden one must also take no height
      if (shown) widget.computeSize = widget.joyvasaComputeSize;
      else [widget.joyvasaComputeSize, widget.computeSize] = [widget.computeSize, () => [0, -4]];
    }
    if (!changed) return;
    node.setSize?.([node.size[0], node.computeSize()[1]]);
    node.graph?.setDirtyCanvas?.(true, true);
  };
  const controls = new Set(rules.flatMap(([, rule]) => Object.keys(rule)));
  for (const control of node.widgets?.filter((w) => controls.has(w.name)) ?? []) {
    const callback = control.callback;
    control.callback = function (...args) {
      const result = callback?.apply(this, args);
      update();
      return result;
    };
  }
  update();
  return update;
}

// A node whose output names a file it wrote (Save Motion: ui.motion) shows that file's name on the node.
export function showSavedFile(node, output) {
  const entry = output?.motion?.[0];
  if (!entry?.filename) return null;
  const text = entry.filename; // the folder is the filename_prefix's, on the line above
  let widget = node.widgets?.find((w) => w.name === SAVED_WIDGET);
  if (!widget) {
    // not disabled: the frontend draws a disabled widget's value blank. An edit is put back: it names a file.
    widget = node.addWidget("text", SAVED_WIDGET, text, () => {}, { serialize: false });
    widget.label = "saved";
    widget.serialize = false;
    widget.callback = () => {
      widget.value = widget.joyvasaSaved;
    };
    node.setSize?.([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  }
  widget.joyvasaSaved = text;
  widget.value = text;
  node.graph?.setDirtyCanvas?.(true, true);
  return text;
}

app.registerExtension({
  name: "JoyVASA.Outputs",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith(OURS)) return;
    const specs = { ...nodeData.input?.required, ...nodeData.input?.optional };
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = created?.apply(this, args);
      keepPreviewWidgetsOutOfPrompt(this);
      this.joyvasaShownWhen = applyShownWhen(this, specs);
      return result;
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (...args) {
      const result = configured?.apply(this, args);
      this.joyvasaShownWhen?.();
      return result;
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const result = executed?.apply(this, [output]);
      dropLivePreviews(this);
      showSavedFile(this, output);
      return result;
    };
  },
});
