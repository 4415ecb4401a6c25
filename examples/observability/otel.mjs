// dynamolock's diagnostics channels as OpenTelemetry spans and metrics (docs/observability.md).
// Only @opentelemetry/api here: register your SDK (exporters, resource) before calling instrument().
// Run the demo: cd examples/observability && npm install && node otel.mjs (prints spans and metrics).
import { subscribe, tracingChannel } from "node:diagnostics_channel";
import { metrics, SpanStatusCode, trace } from "@opentelemetry/api";

const OPERATIONS = ["acquire", "heartbeat", "update", "release", "transact"];

export function instrument() {
  const tracer = trace.getTracer("dynamolock");
  const meter = metrics.getMeter("dynamolock");
  const wait = meter.createHistogram("dynamolock.lock.wait", {
    unit: "ms",
    description: "acquire() time, waiting included",
  });
  const hold = meter.createHistogram("dynamolock.lock.hold", {
    unit: "ms",
    description: "from handed out to released or lost",
  });
  const takeovers = meter.createCounter("dynamolock.lock.takeovers");
  const losses = meter.createCounter("dynamolock.lock.losses");
  // One acquisition is (table, lock id, fence): the release and the loss name it the same way.
  const heldSince = new Map();
  const key = (m) => `${m.table}\u0000${m.lockId}\u0000${m.fence}`;
  const endHold = (m) => {
    const since = heldSince.get(key(m));
    if (since === undefined) return;
    heldSince.delete(key(m));
    hold.record(performance.now() - since, { "dynamolock.table": m.table });
  };

  for (const operation of OPERATIONS) {
    const spans = new WeakMap(); // the operation's context object -> its span
    tracingChannel(`dynamolock:${operation}`).subscribe({
      start(context) {
        context.startedAt = performance.now();
        const attributes = { "dynamolock.table": context.table, "dynamolock.lock_id": context.lockId };
        if (context.fence !== undefined) attributes["dynamolock.fence"] = context.fence;
        spans.set(context, tracer.startSpan(`dynamolock.${operation}`, { attributes }));
      },
      error(context) {
        const span = spans.get(context);
        span?.recordException(context.error);
        span?.setStatus({ code: SpanStatusCode.ERROR, message: context.error?.code ?? context.error?.name });
      },
      asyncEnd(context) {
        if (operation === "acquire") {
          const outcome = context.error?.code ?? "ok";
          wait.record(performance.now() - context.startedAt, { "dynamolock.table": context.table, outcome });
          if (context.result !== undefined) {
            spans.get(context)?.setAttribute("dynamolock.fence", context.result.fence);
            heldSince.set(key({ ...context, fence: context.result.fence }), performance.now());
          }
        }
        if (operation === "release" && context.error === undefined) endHold(context);
        spans.get(context)?.end();
      },
      end() {},
      asyncStart() {},
    });
  }
  subscribe("dynamolock:lock:takeover", (m) => takeovers.add(1, { "dynamolock.table": m.table }));
  subscribe("dynamolock:lock:lost", (m) => {
    losses.add(1, { "dynamolock.table": m.table, reason: m.reason });
    endHold(m);
  });
}

// The demo: console exporters, a local server, one acquire/update/release and one that has to wait.
if (import.meta.main ?? process.argv[1] === new URL(import.meta.url).pathname) {
  const { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } = await import(
    "@opentelemetry/sdk-trace-base"
  );
  const { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } = await import(
    "@opentelemetry/sdk-metrics"
  );
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] }),
  );
  const reader = new PeriodicExportingMetricReader({
    exporter: new ConsoleMetricExporter(),
    exportIntervalMillis: 60_000,
  });
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  instrument();

  const { LockClient } = await import("dynamolock");
  const { startLocalDynamoDB } = await import("dynamolock/testing");
  const db = await startLocalDynamoDB();
  try {
    const locks = new LockClient({ table: "locks", client: db.client });
    await locks.createTable();
    const lock = await locks.acquire("report");
    await lock.update({ step: 1 });
    setTimeout(() => lock.release(), 200);
    const next = await locks.acquire("report", { waitMs: 5_000 });
    await next.release();
    await locks.close();
    await reader.forceFlush();
    await reader.shutdown();
  } finally {
    await db.close();
  }
}
