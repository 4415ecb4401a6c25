// A cron job that must run on one host at a time. dynamolock runs it under a lock:
//
//   */5 * * * * dynamolock run -t locks -i nightly-sync --lease 1m -- node cron-job.mjs || [ $? -eq 75 ]
//
// Exit code 75 means another host holds the lock (this run is skipped, and cron's mail stays quiet);
// the job receives the lock's fence in DYNAMOLOCK_FENCE, to pass on to what it writes.
const fence = Number(process.env.DYNAMOLOCK_FENCE);
if (!Number.isSafeInteger(fence)) {
  console.error("run me under `dynamolock run`, which sets DYNAMOLOCK_FENCE");
  process.exit(2);
}
// The job's work: anything it writes carries the fence, so a late write of an older run loses.
await new Promise((resolve) => setTimeout(resolve, Number(process.env.JOB_MS ?? 50)));
console.log(`synced with fence ${fence}`);
