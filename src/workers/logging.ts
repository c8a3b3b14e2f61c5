// One pino instance per process: our events and the Temporal SDK's (through the
// Runtime logger) come out as the same one-JSON-line-per-event stream.
import { DefaultLogger, Runtime, makeTelemetryFilterString, type LogLevel, type LogMetadata } from '@temporalio/worker';
import { pino, type Logger } from 'pino';
import type { LogLevel as PinoLevel } from '../common/config-schema.js';

export function createLogger(bindings: Record<string, unknown>, level: PinoLevel): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } });
}

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Routes the SDK's logs through pino and, given a metrics address (host:port,
 * VMFERRY_METRICS_ADDRESS), serves the runtime's metrics, ours included, for Prometheus at /metrics.
 */
export function installTemporalLogging(log: Logger, metricsAddress: string | undefined): void {
  const sdkLog = log.child({ component: 'temporal-sdk' });
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => {
      const meta: LogMetadata = entry.meta ?? {};
      sdkLog[PINO_LEVEL[entry.level]](meta, entry.message);
    }),
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN' }) },
      ...(metricsAddress ? { metrics: { prometheus: { bindAddress: metricsAddress } } } : {}),
    },
  });
}
