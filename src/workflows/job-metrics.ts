// Job counters and durations, emitted through the worker runtime's metrics exporter
// (Prometheus when the control worker is started with VMFERRY_METRICS_ADDRESS).
// The SDK drops workflow metrics during replay, so each job counts once.
import { metricMeter } from '@temporalio/workflow';

const jobs = metricMeter.createCounter('vmferry_jobs', 'jobs', 'Jobs finished, by job type and outcome');
const durations = metricMeter.createHistogram('vmferry_job_duration', 'int', 'ms', 'Job wall time from start to end, by job type and outcome');

export function recordJobEnd(jobType: string, outcome: 'completed' | 'failed' | 'cancelled', durationMs: number): void {
  const tags = { job_type: jobType, outcome };
  jobs.add(1, tags);
  durations.record(Math.max(0, Math.round(durationMs)), tags);
}
