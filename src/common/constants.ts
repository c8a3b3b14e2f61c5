export const CONTROL_TASK_QUEUE = 'vmferry-control';

export function hostTaskQueue(host: string): string {
  return `host/${host}`;
}

export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const TEMPORAL_CLI_VERSION = '1.5.1';

/** Host names become task-queue names and directory names: keep them boring. */
export const HOST_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
