// JoyVASA Live node: once the node has run, an "open live page" button on it opens the live page that ComfyUI's
// own server now offers for the node's face (/joyvasa/live/?source=...), in a new tab.
import { app } from "../../../scripts/app.js";

export const LIVE_NODE = "JoyVASALive";
export const BUTTON = "open live page";

// The page's address on this server, also when ComfyUI is served under a sub-path behind a proxy.
export function livePageUrl(path, here = window.location) {
  return new URL("." + path, here.origin + here.pathname.replace(/[^/]*$/, "")).href;
}

app.registerExtension({
  name: "JoyVASA.Live",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== LIVE_NODE) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      const live = output?.joyvasa_live?.[0];
      if (!live) return;
      this.joyvasaLiveUrl = livePageUrl(live.path);
      if (!this.widgets?.some((w) => w.name === BUTTON)) {
        this.addWidget("button", BUTTON, null, () => window.open(this.joyvasaLiveUrl, "_blank"));
      }
      this.setDirtyCanvas?.(true, true);
    };
  },
});
