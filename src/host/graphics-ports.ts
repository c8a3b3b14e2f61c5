import { canBind } from '../migration/port-allocator.js';

/** First port in [min, max] that binds on every address, skipping ones already promised (SPICE autoport). */
export async function findFreePort(min: number, max: number, taken: number[] = []): Promise<number> {
  for (let port = min; port <= max; port++) {
    if (!taken.includes(port) && (await canBind(port))) return port;
  }
  throw new Error(`no free port in ${min}-${max}`);
}
