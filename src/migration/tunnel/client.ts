// The source's way into a destination worker's tunnel listener: TLS with this
// host's certificate, the server checked by certificate name, then the greeting
// and the destination's answer (with the data connection's ticket). Resolves
// only once the channel is accepted.
import { connect, type TLSSocket } from 'node:tls';
import { ErrorType, vmError } from '../../common/errors.js';
import { clientOptions, parseEndpoint, type TunnelTls } from './tls.js';
import { parseAnswer, readLine, writeLine, type TunnelHello } from './wire.js';

/** One migration's way to its destination: the listener, the host its certificate must name, the job's identity and token. */
export interface TunnelJob {
  tls: TunnelTls;
  endpoint: string;
  destinationHost: string;
  jobId: string;
  /** The domain's name on the destination. */
  name: string;
  token: string;
}

// Inside Perform's 10 s heartbeat timeout, so a refusal is reported as such rather than as a lost worker.
const CONNECT_TIMEOUT_MS = 8_000;

export async function openChannel(
  tls: TunnelTls,
  endpoint: string,
  destinationHost: string,
  hello: TunnelHello,
): Promise<{ sock: TLSSocket; ticket?: string }> {
  const { host, port } = parseEndpoint(endpoint);
  const sock = connect(clientOptions(tls, host, port, destinationHost));
  const refused = (why: string): Error =>
    vmError(ErrorType.OperationFailed, `the tunnel to destination host '${destinationHost}' (${endpoint}) was refused: ${why}`, {
      host: destinationHost,
      endpoint,
    });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no TLS session within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      sock.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    writeLine(sock, hello);
    // In TLS 1.3 the server judges our certificate after we think we are connected: its refusal arrives here.
    const answer = parseAnswer(await readLine(sock, CONNECT_TIMEOUT_MS));
    if (!answer.ok) throw new Error(answer.error ?? 'no reason given');
    sock.on('error', () => undefined); // the session's owner watches 'close'
    return { sock, ...(answer.ticket !== undefined ? { ticket: answer.ticket } : {}) };
  } catch (err) {
    sock.destroy();
    throw refused((err as Error).message);
  }
}
