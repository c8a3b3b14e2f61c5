import { createServer } from 'node:net';

async function canBind(port: number, host: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** First port in [min, max] that binds on every address, skipping ones already promised. */
export async function findFreePort(min: number, max: number, taken: number[] = [], host = '0.0.0.0'): Promise<number> {
  for (let port = min; port <= max; port++) {
    if (!taken.includes(port) && (await canBind(port, host))) return port;
  }
  throw new Error(`no free port in ${min}-${max}`);
}
