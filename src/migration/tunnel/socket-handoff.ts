// A connected TCP socket the worker set up, handed over to QEMU. Node keeps
// reading a socket ahead of its consumers, and a byte it reads after the
// greeting would be a byte of QEMU's TLS stream lost; so reading stops first,
// at a moment when the protocol guarantees nothing is in flight. QEMU gets a
// duplicate via SCM_RIGHTS, and the worker then closes its own.
import type { Socket } from 'node:net';
import { ErrorType, vmError } from '../../common/errors.js';

interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

/**
 * Stops all reading on `sock` and returns its descriptor. Anything Node had
 * already read and not consumed means the peer spoke out of turn: an error.
 */
export function detachForHandoff(sock: Socket): number {
  sock.pause();
  const h = (sock as unknown as { _handle?: StreamHandle })._handle;
  if (!h || typeof h.fd !== 'number' || h.fd < 0 || typeof h.readStop !== 'function') {
    throw vmError(ErrorType.OperationFailed, 'the tunnel data connection has no descriptor to hand to QEMU');
  }
  h.reading = false;
  h.readStop();
  if (sock.readableLength > 0) {
    throw vmError(ErrorType.OperationFailed, `the tunnel peer sent ${sock.readableLength} bytes before the stream was handed to QEMU`);
  }
  return h.fd;
}
