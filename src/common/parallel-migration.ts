// libvirt's parallel migration (VIR_MIGRATE_PARALLEL, virsh migrate --parallel
// [--parallel-connections N]): QEMU's multifd, the memory pages sent over N connections
// besides the main one, each with its own thread (and its own TLS session under --tls).
// Both ends need the `multifd` capability (migration-needs.ts) and the same channel count;
// the destination gets it in its Prepare arguments, as libvirt passes it to Prepare.
// What multifd cannot carry is refused here, before anything changes.
import { ErrorType, vmError } from './errors.js';
import type { MigrateFlag } from './migration-types.js';

/** QEMU's multifd-channels default, which libvirt leaves in place when no count is given. */
export const DEFAULT_PARALLEL_CONNECTIONS = 2;
/** QEMU takes multifd-channels from 1 to 255 (a uint8, 0 refused). */
export const MAX_PARALLEL_CONNECTIONS = 255;

/**
 * Why a tunnelled stream cannot be parallel, as measured on QEMU 10.0.2: the tunnel hands each
 * QEMU one connected descriptor (`fd:`), and multifd dials (or accepts) its channels itself.
 */
export const TUNNELLED_PARALLEL_REFUSAL =
  "'parallel' (multifd) with 'tunnelled' is not built: the tunnel hands each QEMU one connected descriptor (migrate fd: / migrate-incoming fd:), " +
  "and QEMU 10.0.2 refuses multifd on it at both ends ('Migration requires multi-channel URIs (e.g. tcp)'); its 'channels' argument takes " +
  "one main channel only ('Channel list has more than one main entry'), so no QEMU takes several handed-over connections. Relaying QEMU's own " +
  'N+1 connections through the workers would copy every byte in both workers, which the tunnel is built never to do; use --parallel with --tls';

function invalid(message: string): Error {
  return vmError(ErrorType.OperationInvalid, message);
}

function unsupported(message: string): Error {
  return vmError(ErrorType.ConfigUnsupported, message);
}

/**
 * The connection count a migration runs with: undefined when it is not parallel. `flags` are the
 * migration's final flags (a convergence policy may have added some): what multifd cannot combine
 * with is refused, QEMU's and libvirt's reasons given.
 */
export function checkParallel(connections: unknown, flags: readonly MigrateFlag[]): number | undefined {
  const parallel = flags.includes('parallel');
  if (connections !== undefined) {
    if (typeof connections !== 'number' || !Number.isInteger(connections) || connections < 1 || connections > MAX_PARALLEL_CONNECTIONS) {
      throw invalid(
        `parallelConnections must be a whole number from 1 to ${MAX_PARALLEL_CONNECTIONS}, got ${JSON.stringify(connections) ?? String(connections)}`,
      );
    }
    // libvirt: "Turn parallel migration on to tune it".
    if (!parallel) throw invalid("parallelConnections (--parallel-connections) needs 'parallel' (--parallel)");
  }
  if (!parallel) return undefined;
  if (flags.includes('offline')) throw invalid("flags 'parallel' and 'offline' are mutually exclusive: an offline migration has no stream");
  if (flags.includes('tunnelled')) throw unsupported(TUNNELLED_PARALLEL_REFUSAL);
  if (flags.includes('postcopy')) {
    throw unsupported(
      "'parallel' (multifd) with 'postcopy' is not built: QEMU refuses the two capabilities together ('Postcopy is not yet compatible with multifd')",
    );
  }
  if (flags.includes('compressed')) {
    throw unsupported(
      "'parallel' (multifd) with 'compressed' (XBZRLE, also a policy's xbzrle cache) is not built: QEMU refuses the pair ('Multifd is not compatible with xbzrle'), and libvirt refuses xbzrle with parallel migration",
    );
  }
  return (connections as number | undefined) ?? DEFAULT_PARALLEL_CONNECTIONS;
}
