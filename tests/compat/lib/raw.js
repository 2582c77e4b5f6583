'use strict';
// Raw TCP connections to the broker, for robustness tests and the RSS flood.
const net = require('node:net');
const { FrameReader, TYPE, cmd } = require('./frames');

// One raw connection. Every frame received is kept in `frames`; `closed` resolves
// (never rejects) when the socket is fully closed. Socket errors such as
// ECONNRESET/EPIPE are recorded in `errors`, never thrown.
class RawConn {
  // onFrame(frame): if given, frames are handed to it instead of being kept in `frames`
  // (for long floods).
  constructor(socket, { onFrame } = {}) {
    this.onFrame = onFrame;
    this.socket = socket;
    this.frames = [];
    this.errors = [];
    this.bytesIn = 0;
    this.isClosed = false;
    this.decodeError = null;
    this.openedAt = Date.now();
    this.closedAt = null;
    this._reader = new FrameReader();
    this._waiters = new Set();
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        this.closedAt = Date.now();
        resolve();
        this._notify();
      });
    });
    socket.on('error', (e) => this.errors.push(e));
    socket.on('data', (chunk) => {
      this.bytesIn += chunk.length;
      if (this.decodeError) return;
      try {
        for (const f of this._reader.push(chunk)) {
          if (this.onFrame) this.onFrame(f);
          else this.frames.push(f);
          if (f.type === TYPE.PING && !socket.destroyed && socket.writable) socket.write(cmd.pong());
        }
      } catch (e) {
        this.decodeError = e;
      }
      this._notify();
    });
  }

  static connect({ host, port, timeoutMs = 5000, onFrame }) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`raw connect to ${host}:${port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        resolve(new RawConn(socket, { onFrame }));
      });
    });
  }

  _notify() {
    for (const w of [...this._waiters]) w();
  }

  write(buf) {
    if (this.socket.destroyed || !this.socket.writable) return false;
    try {
      this.socket.write(buf);
      return true;
    } catch (e) {
      this.errors.push(e);
      return false;
    }
  }

  // Resolves with the first received frame matching pred; rejects on timeout or if the
  // connection closes first (with what was received, for diagnosis).
  waitFrame(pred, timeoutMs, what = 'frame') {
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = this.frames.find(pred);
        if (f) return done(null, f);
        if (this.isClosed) return done(new Error(`connection closed before ${what}; got [${this.frameNames()}]`));
        if (this.decodeError) return done(new Error(`undecodable data before ${what}: ${this.decodeError.message}`));
        return undefined;
      };
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got [${this.frameNames()}]`)),
        timeoutMs
      );
      const done = (err, f) => {
        clearTimeout(timer);
        this._waiters.delete(check);
        if (err) reject(err);
        else resolve(f);
      };
      this._waiters.add(check);
      check();
    });
  }

  frameNames() {
    return this.frames.map((f) => f.typeName).join(',');
  }

  // Resolves true if the peer closed the connection within timeoutMs, false otherwise.
  async waitClosed(timeoutMs) {
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const r = await Promise.race([this.closed.then(() => true), timeout]);
    clearTimeout(timer);
    return r;
  }

  end() {
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy() {
    if (!this.socket.destroyed) this.socket.destroy();
  }
}

module.exports = { RawConn };
