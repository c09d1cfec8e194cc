// JoyVASA Live: streams the microphone (or a chosen audio file) up a WebSocket as 16 kHz float32 PCM and draws the
// talking face as its frames come back (wire format: joyvasa_core/live/wire.py).
const RATE = 16000;
const params = new URLSearchParams(location.search);
const source = params.get("source") || "default";
const chunkMs = Number(params.get("chunk_ms") || 40);
const query = `source=${encodeURIComponent(source)}`;
const $ = (id) => document.getElementById(id);
const canvas = $("face");
const ctx2d = canvas.getContext("2d");

// Everything the page measures, readable from the console (and by the tests) as window.joyvasaLive. Times are
// performance.now(): sends holds [samples sent so far, when] per chunk, drawnAt when each frame was drawn
// (drawnLastSecond: those of the last second, for the fps figure).
const live = (window.joyvasaLive = {
  status: "idle", error: "", fps: 0, frames: 0, sentSamples: 0, latencies: [], serverMs: [], done: false,
  socket: null, sends: [], drawnLastSecond: [], drawnAt: [], lastSeq: -1, outOfOrder: 0,
});
let capture = null;
let drawing = Promise.resolve();

function setStatus(text) {
  live.status = text;
  $("status").textContent = text;
}

function showError(text) {
  live.error = text;
  $("message").textContent = text;
  $("message").hidden = false;
}

function median(values) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function refreshStats() {
  const now = performance.now();
  live.fps = live.drawnLastSecond.filter((t) => now - t <= 1000).length;
  live.drawnLastSecond = live.drawnLastSecond.filter((t) => now - t <= 1000);
  const recent = live.latencies.slice(-50);
  $("latency").textContent = recent.length ? `${Math.round(median(recent))} ms` : "\u2013";
  const server = live.serverMs.slice(-50);
  $("server").textContent = server.length ? `${Math.round(median(server))} ms` : "\u2013";
  $("fps").textContent = live.frames ? String(live.fps) : "\u2013";
  $("frames").textContent = String(live.frames);
  $("sent").textContent = `${(live.sentSamples / RATE).toFixed(1)} s`;
}
setInterval(refreshStats, 250);

async function showPortrait() {
  const reply = await fetch(`portrait.jpg?${query}`);
  if (!reply.ok) {
    showError(await reply.text());
    $("start").disabled = true;
    $("file").disabled = true;
    return;
  }
  const image = await createImageBitmap(await reply.blob());
  canvas.width = image.width;
  canvas.height = image.height;
  ctx2d.drawImage(image, 0, 0);
  setStatus("ready");
}

// When the audio that completed a frame left this page: the first chunk that reached the server's count of samples
// received when the frame's speech was complete (the header's "upto").
function sentTime(need) {
  const sends = live.sends;
  let lo = 0, hi = sends.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sends[mid][0] >= need) hi = mid; else lo = mid + 1;
  }
  return lo < sends.length ? sends[lo][1] : null;
}

function onFrame(buffer) {
  const view = new DataView(buffer);
  const size = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, size)));
  const jpeg = new Blob([new Uint8Array(buffer, 4 + size)], { type: "image/jpeg" });
  drawing = drawing.then(async () => {
    const image = await createImageBitmap(jpeg);
    if (canvas.width !== image.width || canvas.height !== image.height) {
      canvas.width = image.width;
      canvas.height = image.height;
    }
    ctx2d.drawImage(image, 0, 0);
    image.close();
    const now = performance.now();
    if (header.seq !== live.lastSeq + 1) live.outOfOrder += 1;
    live.lastSeq = header.seq;
    live.frames += 1;
    live.drawnLastSecond.push(now);
    live.drawnAt.push(now);
    const sent = sentTime(header.upto);
    if (sent !== null) live.latencies.push(now - sent);
    if (header.server_ms !== null) live.serverMs.push(header.server_ms);
  });
}

function connect() {
  return new Promise((resolve, reject) => {
    const url = new URL(`ws?${query}`, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return onFrame(event.data);
      const message = JSON.parse(event.data);
      if (message.type === "ready") {
        resolve(ws);
      } else if (message.type === "done") {
        drawing.then(() => {
          live.done = true;
          refreshStats();
          setStatus(`done: ${message.frames} frames`);
          ws.close(1000);
        });
      } else if (message.type === "error") {
        showError(message.message);
      }
    };
    ws.onclose = (event) => {
      stopCapture();
      if (!live.done && !live.error) showError(`connection closed (${event.code}${event.reason ? ": " + event.reason : ""})`);
      if (!live.done) setStatus("closed");
      reject(new Error(live.error || "connection closed"));
      $("start").disabled = false;
      $("file").disabled = false;
      $("stop").disabled = true;
    };
  });
}

function send(chunk) {
  const ws = live.socket;
  if (!ws || ws.readyState !== WebSocket.OPEN || !capture) return;
  ws.send(chunk.buffer);
  live.sentSamples += chunk.length;
  live.sends.push([live.sentSamples, performance.now()]);
}

async function startCapture(feed) {
  const audio = new AudioContext({ sampleRate: RATE });
  await audio.audioWorklet.addModule("capture.js");
  const node = new AudioWorkletNode(audio, "joyvasa-capture", {
    numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: "explicit",
    processorOptions: { chunk: Math.round((RATE * chunkMs) / 1000) },
  });
  node.port.onmessage = (event) => send(event.data);
  const mute = audio.createGain();
  mute.gain.value = 0;
  node.connect(mute).connect(audio.destination);
  capture = { audio, node, stream: null };
  await feed(audio, node);
}

function stopCapture() {
  if (!capture) return;
  const { audio, stream } = capture;
  capture = null;
  if (stream) stream.getTracks().forEach((track) => track.stop());
  audio.close();
}

async function start(feed, label) {
  $("message").hidden = true;
  Object.assign(live, { error: "", done: false, frames: 0, sentSamples: 0, latencies: [], serverMs: [], sends: [],
                        drawnLastSecond: [], drawnAt: [], lastSeq: -1, outOfOrder: 0 });
  $("start").disabled = true;
  $("file").disabled = true;
  setStatus("connecting");
  try {
    live.socket = await connect();
    live.socket.send(JSON.stringify({ type: "start", sample_rate: RATE, format: "f32le" }));
    await startCapture(feed);
    $("stop").disabled = false;
    setStatus(label);
  } catch (err) {
    stopCapture();
    if (!live.error) showError(String(err.message || err));
    if (live.socket) live.socket.close();
  }
}

function stop() {
  stopCapture();
  $("stop").disabled = true;
  if (live.socket && live.socket.readyState === WebSocket.OPEN) {
    live.socket.send(JSON.stringify({ type: "stop" }));
    setStatus("finishing");
  }
}

async function microphone(audio, node) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  capture.stream = stream;
  audio.createMediaStreamSource(stream).connect(node);
}

function speechFile(file) {
  return async (audio, node) => {
    const buffer = await audio.decodeAudioData(await file.arrayBuffer());
    const player = audio.createBufferSource();
    player.buffer = buffer;
    player.connect(node);
    player.connect(audio.destination);
    player.onended = () => setTimeout(stop, chunkMs * 2);  // the worklet's last chunk goes first
    player.start();
  };
}

$("start").addEventListener("click", () => start(microphone, "live: microphone"));
$("stop").addEventListener("click", stop);
$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) start(speechFile(file), `live: ${file.name}`);
  event.target.value = "";
});
showPortrait();
