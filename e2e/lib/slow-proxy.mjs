// A forwarding HTTP proxy on 127.0.0.1 that can slow request bodies down: a slow uplink
// at the TCP level, so uploads take long enough to watch (and to interrupt) without any
// change to the app. When the browser drops a request (a reload), the proxy drops the
// request to medport at once, as a real network would.
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

const SLICE = 16 * 1024;

export class SlowProxy {
  constructor() {
    this.bytesPerSecond = 0;
    this.requests = 0;
    this.server = http.createServer((req, res) => {
      this.requests++;
      this.forward(req, res);
    });
    this.server.keepAliveTimeout = 1000;
  }

  /** Request bodies at this many bytes per second from now on; 0: full speed. */
  setUplink(bytesPerSecond) {
    this.bytesPerSecond = bytesPerSecond;
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  forward(req, res) {
    let target;
    try {
      target = new URL(req.url);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers["proxy-connection"];
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: target.pathname + target.search,
        headers,
        agent: false,
      },
      (answer) => {
        res.writeHead(answer.statusCode, answer.rawHeaders);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    // The browser gave up (reload, navigation): so does the request to the server.
    res.on("close", () => {
      if (!res.writableFinished) {
        upstream.destroy();
      }
    });
    this.pump(req, upstream).catch(() => upstream.destroy());
  }

  async pump(req, upstream) {
    for await (const chunk of req) {
      for (let at = 0; at < chunk.length; at += SLICE) {
        const slice = chunk.subarray(at, at + SLICE);
        if (this.bytesPerSecond > 0) {
          await sleep((slice.length / this.bytesPerSecond) * 1000);
        }
        if (upstream.destroyed) {
          return;
        }
        if (!upstream.write(slice)) {
          await new Promise((r) => upstream.once("drain", r));
        }
      }
    }
    upstream.end();
  }
}
