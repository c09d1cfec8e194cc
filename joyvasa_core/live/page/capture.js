// AudioWorklet: cuts the input (channel 0, the context's sample rate) into chunks of `chunk` samples and posts each
// to the page, which sends it up the WebSocket.
class JoyVASACapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.chunk = options.processorOptions.chunk;
    this.buffer = new Float32Array(this.chunk);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    let read = 0;
    while (read < input.length) {
      const n = Math.min(this.chunk - this.filled, input.length - read);
      this.buffer.set(input.subarray(read, read + n), this.filled);
      this.filled += n;
      read += n;
      if (this.filled === this.chunk) {
        this.port.postMessage(this.buffer, [this.buffer.buffer]);
        this.buffer = new Float32Array(this.chunk);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("joyvasa-capture", JoyVASACapture);
