import net from "node:net";

/**
 * A TCP proxy a test owns, between a client and a server on 127.0.0.1. `stall()` stops
 * forwarding on every connection open now without closing any of them (a silently dead flow:
 * the client sees neither data nor an error); connections made afterwards are forwarded.
 */
export interface TcpProxy {
  port: number;
  /** Connections open now and forwarding. */
  open(): number;
  stall(): number;
  close(): Promise<void>;
}

export async function tcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const live = new Set<{ client: net.Socket; upstream: net.Socket; stalled: boolean }>();
  const stalled: net.Socket[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    const pair = { client, upstream, stalled: false };
    live.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      live.delete(pair);
      if (pair.stalled) return; // a stalled flow stays open until close()
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    open: () => [...live].filter((p) => !p.stalled).length,
    stall: () => {
      let n = 0;
      for (const p of live) {
        if (p.stalled) continue;
        p.stalled = true;
        p.client.unpipe(p.upstream);
        p.upstream.unpipe(p.client);
        p.client.pause();
        p.upstream.pause();
        stalled.push(p.client, p.upstream);
        n++;
      }
      return n;
    },
    close: async () => {
      for (const s of stalled) s.destroy();
      for (const p of live) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        setTimeout(resolve, 5_000).unref(); // a connection still closing does not hold the test
      });
    },
  };
}
