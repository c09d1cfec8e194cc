// JoyVASA UI extension: gives the pack's own socket types distinct link and slot colours, so a graph shows at a
// glance which wire carries a face, audio features, motion or a loaded model.
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
