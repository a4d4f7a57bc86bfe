// A console's websocket (/ws/agent, /ws/supervisor): hello, events numbered
// by epoch and seq, and reconnecting by itself without losing any.
//
// The server numbers every event of its feed; we remember the last (epoch,
// seq) we handled and send it in the hello of the next connection, so the
// server replays what we missed, or says "resync" and sends a fresh snapshot
// when it cannot. Messages we send carry a "ref" and are answered with ok or
// error; send() returns a promise of that answer.

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
const PING_MS = 20000;

export class LiveSocket {
  /**
   * @param {string} path        "/ws/agent" or "/ws/supervisor"
   * @param {() => string} csrf  the session's CSRF token
   * @param {(event) => void} onEvent  every server message but ok/error/pong
   * @param {(state) => void} onState  "connecting", "online", "offline", "closed"
   */
  constructor(path, csrf, onEvent, onState) {
    this.path = path;
    this.csrf = csrf;
    this.onEvent = onEvent;
    this.onState = onState;
    this.epoch = null;
    this.seq = 0;
    this.attempt = 0;
    this.refs = 0;
    this.pending = new Map();
    this.ws = null;
    this.stopped = false;
    this.pinger = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Close for good (logout); no reconnecting. */
  stop() {
    this.stopped = true;
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
    this.onState("closed");
  }

  /** Drop the connection as a network fault would (it reconnects by itself). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped");
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}`);
    this.ws = ws;
    this.onState("connecting");
    ws.addEventListener("open", () => {
      const hello = { type: "hello", csrf_token: this.csrf() };
      if (this.epoch) Object.assign(hello, { epoch: this.epoch, seq: this.seq });
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener("message", (message) => this.receive(JSON.parse(message.data)));
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  receive(message) {
    if (message.epoch && typeof message.seq === "number" && message.type !== "welcome") {
      // A snapshot carries the position the welcome just gave: it is new all the same.
      const seen = message.epoch === this.epoch && message.seq <= this.seq;
      if (seen && message.type !== "snapshot") return;
      this.epoch = message.epoch;
      this.seq = message.seq;
    }
    switch (message.type) {
      case "welcome":
        this.attempt = 0;
        if (message.epoch !== this.epoch) {
          this.epoch = message.epoch;
          this.seq = message.seq;
        }
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.raw({ type: "ping" }), PING_MS);
        this.onState("online");
        break;
      case "ok":
      case "error": {
        const waiter = this.pending.get(message.ref);
        if (waiter) {
          this.pending.delete(message.ref);
          if (message.type === "ok") waiter.resolve(message);
          else waiter.reject(message);
          return;
        }
        break;
      }
      case "pong":
        return;
      default:
        break;
    }
    this.onEvent(message);
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    clearInterval(this.pinger);
    for (const waiter of this.pending.values()) {
      waiter.reject({ type: "error", code: "disconnected", message: "connection lost" });
    }
    this.pending.clear();
    // 4001: logged out or the session ended; reconnecting would not help.
    if (this.stopped || event.code === 4001 || event.code === 4003) {
      this.onState("closed");
      return;
    }
    this.onState("offline");
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    setTimeout(() => this.connect(), delay);
  }

  raw(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** Send a command; resolves with the server's ok, rejects with its error. */
  send(message) {
    const ref = `r${++this.refs}`;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject({ type: "error", code: "disconnected", message: "not connected" });
        return;
      }
      this.pending.set(ref, { resolve, reject });
      this.ws.send(JSON.stringify({ ...message, ref }));
    });
  }
}
