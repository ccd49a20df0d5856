/**
 * A TCP proxy on 127.0.0.1 that adds latency: every chunk is forwarded
 * `rttMs / 2` after it arrives, in each direction, so a round trip through
 * it takes `rttMs` longer (this kernel has no netem). Order is kept; the
 * bandwidth is not limited.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class DelayProxy {
  private constructor(private readonly server: Server, readonly port: number, private readonly sockets: Set<Socket>) {}

  static async start(targetPort: number, rttMs: number): Promise<DelayProxy> {
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
      for (const s of [client, upstream]) {
        s.setNoDelay(true);
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
        s.on('error', () => undefined);
      }
      pipeDelayed(client, upstream, rttMs / 2);
      pipeDelayed(upstream, client, rttMs / 2);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    return new DelayProxy(server, typeof address === 'object' && address !== null ? address.port : 0, sockets);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Forwards `from` to `to`, each chunk `delayMs` after it arrived; ends `to` after the last one. */
function pipeDelayed(from: Socket, to: Socket, delayMs: number): void {
  let pending = 0;
  let ended = false;
  from.on('data', (chunk: Buffer) => {
    pending += 1;
    setTimeout(() => {
      pending -= 1;
      if (!to.destroyed) to.write(chunk);
      if (ended && pending === 0) to.end();
    }, delayMs);
  });
  from.once('end', () => {
    ended = true;
    if (pending === 0) setTimeout(() => to.end(), delayMs);
  });
  from.once('close', () => {
    setTimeout(() => to.destroy(), delayMs + 10);
  });
}
