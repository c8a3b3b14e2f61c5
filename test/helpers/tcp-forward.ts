// A plain TCP relay in the test process: lets a worker inside a network
// namespace reach a server that listens on the root namespace's 127.0.0.1 (the
// run's shared Temporal dev server) through a management address. Backpressure
// through pipe(); close() drops every relayed connection.
import { connect, createServer, type Socket } from 'node:net';

export interface TcpForward {
  port: number;
  close(): Promise<void>;
}

export async function forwardTcp(listenHosts: string[], target: { host: string; port: number }): Promise<TcpForward> {
  const socks = new Set<Socket>();
  const servers = listenHosts.map(() =>
    createServer((inbound) => {
      const outbound = connect(target);
      for (const s of [inbound, outbound]) {
        socks.add(s);
        s.on('close', () => socks.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).on('error', () => undefined);
      outbound.pipe(inbound).on('error', () => undefined);
    }),
  );
  let port = 0;
  for (const [i, server] of servers.entries()) {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: listenHosts[i], port }, () => resolve());
    });
    const a = server.address();
    if (typeof a === 'object' && a) port = a.port;
  }
  return {
    port,
    close: async () => {
      for (const s of socks) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
