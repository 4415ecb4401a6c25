// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the patches are source text, template literals included
/**
 * The mutation catalogue: realistic one-line protocol bugs, each a textual patch of src/ that
 * `npm run mutate` (test/sim/mutate.ts) applies to a copy of the tree before running a bounded
 * simulation on it. A patch must match exactly once, so a mutant whose line has changed fails
 * loudly instead of silently testing nothing. A mutant the simulation cannot kill is either a gap
 * to close or, when `harmless` says why, a change that breaks no promise (docs/safety.md).
 */

export type Area = "clocks" | "conditions" | "retries" | "adoption" | "data" | "guards";

export interface Mutant {
  readonly id: string;
  readonly area: Area;
  /** What the bug is, in a maintainer's words. */
  readonly what: string;
  readonly file: string;
  readonly from: string;
  readonly to: string;
  /** Why surviving it is fine: the promise it would break does not exist (docs/safety.md). */
  readonly harmless?: string;
  /** More search, after the default stages, for a mutant only a longer search finds (profile:n,...). */
  readonly extraStages?: string;
}

/** A condition part made to hold whenever the attribute exists: the part dropped, its value still bound. */
const always = (part: string, name: string, value: string) => `(${part} OR ${name} <> ${value})`;

export const MUTANTS: readonly Mutant[] = [
  // ---- clocks ----
  {
    id: "margin-halved",
    area: "clocks",
    what: "the drift margin counts one clock's drift instead of two",
    file: "src/lease.ts",
    from: "return Math.ceil(2 * drift * leaseMs) + 1;",
    to: "return Math.ceil(drift * leaseMs) + 1;",
    // Only a few milliseconds, and only for leases of 3 s and more: the margin profile finds it
    // after about 1 600 schedules.
    extraStages: "margin:2500",
  },
  {
    id: "valid-from-reply",
    area: "clocks",
    what: "a confirmed heartbeat extends validity from its reply instead of its send",
    file: "src/lock.ts",
    from: "      holderValidUntil(sentAt, this.leaseMs, this.#context.clockDrift),",
    to: "      holderValidUntil(now, this.leaseMs, this.#context.clockDrift),",
  },
  {
    id: "valid-from-last-attempt",
    area: "clocks",
    what: "a retried heartbeat counts its validity from the last attempt, not the first",
    file: "src/lock.ts",
    from: "          this.#confirm(version, firstSentAt);",
    to: "          this.#confirm(version, sentAt);",
  },
  {
    id: "extend-valid-from-reply",
    area: "clocks",
    what: "extend() counts the renewed lease from its reply instead of its send",
    // Only holders without heartbeats extend: the serverless profile, about a hundred schedules.
    extraStages: "serverless:600",
    file: "src/lock.ts",
    from: '          if (what === "extend" && this.#context.knobs?.extendCountsFromReply === true) {',
    to: '          if (what === "extend") {',
  },
  {
    id: "acquire-valid-from-reply",
    area: "clocks",
    what: "an acquisition's lease counts from its reply",
    // Only a slow reply lengthens the lease it grants: stormy's delay spikes, about 1 000 schedules.
    extraStages: "stormy:1200",
    file: "src/client.ts",
    from: "        const lock = this.#adopt<Data>(id, owner, record, sentAt, heartbeat, onSettled);",
    to: "        const lock = this.#adopt<Data>(id, owner, record, runtime.monotonicNow(), heartbeat, onSettled);",
  },
  {
    id: "found-own-write-from-latest",
    area: "clocks",
    what: "an earlier write of ours found in the item is timed from the latest write",
    file: "src/client.ts",
    from: "            const lock = adopt(record.owner, whole, ours);",
    to: "            const lock = adopt(record.owner, whole, sentAt);",
    extraStages: "forceful:1000",
  },
  {
    id: "wall-stamp-first",
    area: "clocks",
    what: "a heartbeat reads heartbeatAt before its monotonic send time",
    // It needs a stall of about a lease between the two reads, the shortcut on, and a waiter
    // polling in the window that leaves (the switch wall-stamp-before-send: 3 035 schedules since the
    // getters read the clock, which shifted every random stream; about 900 before).
    extraStages: "tight:3500",
    file: "src/lock.ts",
    from: "    const firstSentAt = runtime.monotonicNow();\n    const wallNow = wallFirst ?? runtime.wallNow();",
    to: "    const wallNow = wallFirst ?? runtime.wallNow();\n    const firstSentAt = runtime.monotonicNow();",
  },
  {
    id: "observation-restarts",
    area: "clocks",
    what: "a waiter restarts its observed-lease clock at every sighting",
    file: "src/lease.ts",
    from: "    return { ...seen, observedAt: Math.min(previous.observedAt, arrivedAt) };",
    to: "    return { ...seen, observedAt: arrivedAt };",
  },
  {
    id: "observation-ignores-version",
    area: "clocks",
    what: "a waiter keeps its observation across the holder's heartbeats",
    file: "src/lease.ts",
    from: "previous.owner === seen.owner && previous.version === seen.version",
    to: "previous.owner === seen.owner",
  },
  {
    id: "shortcut-ignores-skew",
    area: "clocks",
    what: "the wall-clock shortcut forgets maxClockSkewMs",
    file: "src/lease.ts",
    from: "observation.heartbeatAt + observation.leaseMs + maxClockSkewMs + 1 - wallNow",
    to: "observation.heartbeatAt + observation.leaseMs + 1 - wallNow",
  },
  {
    id: "waiter-uses-own-lease",
    area: "clocks",
    what: "a waiter judges the holder by its own leaseMs instead of the recorded one",
    file: "src/client.ts",
    from: "            leaseMs: record.leaseMs ?? leaseMs,",
    to: "            leaseMs,",
  },
  {
    id: "expiry-timer-late",
    area: "clocks",
    what: "the expiry timer is armed a heartbeat late",
    // Only the timer can tell a holder whose heartbeats stop, as during a refusal (stormy).
    extraStages: "stormy:600",
    file: "src/lock.ts",
    from: "      this.#validUntil - runtime.monotonicNow(),\n      false,",
    to: "      this.#validUntil - runtime.monotonicNow() + this.#context.heartbeatMs,\n      false,",
  },
  {
    id: "held-ignores-clock",
    area: "clocks",
    what: "`held` and `signal` trust the state alone, not the clock: only the expiry timer declares the loss",
    file: "src/lock.ts",
    from: "    if (now < this.#validUntil) return true;",
    to: "    return true;",
  },
  {
    id: "heartbeat-every-two-intervals",
    area: "clocks",
    what: "heartbeats are scheduled two intervals apart",
    file: "src/lock.ts",
    from: "this.#scheduleHeartbeat(this.#confirmedAt + heartbeatMs - runtime.monotonicNow());",
    to: "this.#scheduleHeartbeat(this.#confirmedAt + 2 * heartbeatMs - runtime.monotonicNow());",
  },
  {
    id: "recorded-lease-halved",
    area: "clocks",
    what: "an acquisition records half its lease",
    file: "src/requests.ts",
    from: '    ":leaseMs": N(p.leaseMs),',
    to: '    ":leaseMs": N(Math.ceil(p.leaseMs / 2)),',
  },
  {
    id: "stale-at-boundary-strict",
    area: "clocks",
    what: "the observed lease is stale only strictly after it ran out",
    file: "src/lease.ts",
    from: "if (observedStaleIn <= 0)",
    to: "if (observedStaleIn < 0)",
    harmless: "waiting one instant longer than necessary is more conservative, not less",
  },
  // ---- conditions ----
  {
    id: "takeover-drops-owner",
    area: "conditions",
    what: "a takeover checks the version it judged, not the owner",
    file: "src/requests.ts",
    from: 'leaseObservedStale: "(#owner = :staleOwner AND #version = :staleVersion)",',
    to: `leaseObservedStale: "(${always("#owner = :staleOwner", "#owner", ":staleOwner")} AND #version = :staleVersion)",`,
  },
  {
    id: "takeover-drops-version",
    area: "conditions",
    what: "a takeover checks the owner it judged, not the version",
    file: "src/requests.ts",
    from: 'leaseObservedStale: "(#owner = :staleOwner AND #version = :staleVersion)",',
    to: `leaseObservedStale: "(#owner = :staleOwner AND ${always("#version = :staleVersion", "#version", ":staleVersion")})",`,
  },
  {
    id: "acquire-reapplies-own",
    area: "conditions",
    what: "an acquire may be applied again over its own token",
    file: "src/requests.ts",
    from: 'lockIsFree: "attribute_not_exists(#owner)",',
    to: 'lockIsFree: "(attribute_not_exists(#owner) OR #owner = :owner)",',
  },
  {
    id: "renew-drops-owner",
    area: "conditions",
    what: "heartbeats and updates check the fence but not the owner",
    harmless:
      "while fences never repeat, the fence and the version decide everything the owner test would (condition coverage shows it never decides); it matters once TTL deletes an item and fences restart at 1, which the simulation does not model",
    file: "src/requests.ts",
    from: "    ConditionExpression: `${CONDITION.ownerIsMe}${fenced",
    to: `    ConditionExpression: \`${always("#owner = :owner", "#owner", ":owner")}\${fenced`,
  },
  {
    id: "renew-drops-fence",
    area: "conditions",
    what: "heartbeats and updates check the owner but not the fence",
    file: "src/requests.ts",
    from: '${fenced ? ` AND ${CONDITION.fenceIsOurs}` : ""}',
    to: `\${fenced ? " AND ${always("#fence = :fence", "#fence", ":fence")}" : ""}`,
  },
  {
    id: "renew-drops-version",
    area: "conditions",
    what: "heartbeats and updates may roll the version back",
    file: "src/requests.ts",
    from: 'notSuperseded: "#version <= :version",',
    to: `notSuperseded: "${always("#version <= :version", "#version", ":version")}",`,
  },
  {
    id: "release-drops-fence",
    area: "conditions",
    what: "a release checks the owner but not the fence",
    file: "src/requests.ts",
    from: "    condition += ` AND ${CONDITION.fenceIsOurs}`;",
    to: `    condition += " AND ${always("#fence = :fence", "#fence", ":fence")}";`,
  },
  {
    id: "force-release-any-owner",
    area: "conditions",
    what: "forceRelease removes whoever holds the lock when its write lands",
    file: "src/requests.ts",
    from: 'heldByTarget: "#owner = :target",',
    to: `heldByTarget: "${always("#owner = :target", "#owner", ":target")}",`,
  },
  // ---- guards ----
  {
    id: "guard-drops-fence",
    area: "guards",
    what: "a guarded write checks the owner but not the fence",
    file: "src/requests.ts",
    from: "      ConditionExpression: `${CONDITION.ownerIsMe} AND ${CONDITION.fenceIsOurs}`,",
    to: `      ConditionExpression: \`\${CONDITION.ownerIsMe} AND ${always("#fence = :fence", "#fence", ":fence")}\`,`,
  },
  {
    id: "guard-drops-owner",
    area: "guards",
    what: "a guarded write checks the fence but not the owner",
    file: "src/requests.ts",
    from: "      ConditionExpression: `${CONDITION.ownerIsMe} AND ${CONDITION.fenceIsOurs}`,",
    to: `      ConditionExpression: \`${always("#owner = :owner", "#owner", ":owner")} AND \${CONDITION.fenceIsOurs}\`,`,
  },
  {
    id: "transact-ignores-own-release",
    area: "guards",
    what: "a guarded write does not wait for a release of ours in flight before judging its failed guard",
    harmless:
      "the guard path reads the item's releasedBy: a guard failed by our own release is recognised from it whether the release has answered or not (ERELEASED), so the wait only orders the two calls' answers",
    file: "src/lock.ts",
    from: "      if (this.#release !== undefined) await this.#release.catch(() => undefined);\n",
    to: "",
  },
  // ---- retries ----
  {
    id: "renew-forgets-unanswered",
    area: "retries",
    what: "an unanswered heartbeat or update attempt is forgotten",
    file: "src/lock.ts",
    from: "          lastError = err;\n          if (mayHaveBeenApplied(err)) uncertain = true;\n          if (!isRetryable(err)) throw this.#cannotPass(what, err, uncertain);",
    to: "          lastError = err;\n          if (!isRetryable(err)) throw this.#cannotPass(what, err, uncertain);",
  },
  {
    id: "release-trusts-same-fence-only",
    area: "retries",
    what: "a failed release ignores that the lock may have changed hands after an attempt of ours",
    // Since throttling counts as "may have been applied", the schedules that show it are rarer:
    // about 2 100 stormy schedules.
    extraStages: "stormy:3000",
    file: "src/lock.ts",
    from: "if (record === undefined || record.fence !== this.fence) uncertain = true;",
    to: "if (record === undefined) uncertain = true;",
  },
  {
    id: "update-disproved-by-data-alone",
    area: "retries",
    what: "an update whose condition failed counts as unwritten whenever the data differs",
    // An attempt applied unanswered, a force-release, a new holder's data, then our retry: about
    // 2 700 stormy schedules.
    extraStages: "stormy:3000",
    file: "src/lock.ts",
    from: "(record !== undefined && record.fence === this.fence && !sameValue(record.data, data))",
    to: "(record !== undefined && !sameValue(record.data, data))",
  },
  {
    id: "release-forgets-own-token",
    area: "retries",
    what: "a failed release does not look for its own token in releasedBy",
    file: "src/lock.ts",
    from: "if (record?.releasedBy === this.#owner && this.#context.knobs?.releaseIgnoresReleasedBy !== true)",
    to: "if (record?.releasedBy === `${this.#owner}?` && this.#context.knobs?.releaseIgnoresReleasedBy !== true)",
  },
  {
    id: "acquire-reuses-token",
    area: "retries",
    what: "an acquire's retry writes its first token again",
    file: "src/client.ts",
    from: "this.#options.knobs?.reuseAcquireToken === true\n          ? ([...written.keys()][0] ?? runtime.token())\n          : runtime.token();",
    to: "([...written.keys()][0] ?? runtime.token());",
  },
  {
    id: "unanswered-acquire-not-freed",
    area: "retries",
    what: "an acquire that gives up does not free what its unanswered writes may have taken",
    file: "src/client.ts",
    from: "      for (const owner of unanswered) this.#cleanUp(id, owner);\n",
    to: "",
    harmless:
      "such a write makes nobody the holder: the lock is free again after a lease, as after a crash (liveness only, and not in calm runs)",
  },
  {
    id: "no-quiet-release-on-expiry",
    area: "retries",
    what: "a holder whose lease ran out does not free its record",
    file: "src/lock.ts",
    from: "      void this.#enqueue(() => this.#sendQuietRelease());\n",
    to: "",
    harmless:
      "an optimisation: waiters take the lock after the lease anyway (liveness is checked only in calm runs, where no lease runs out)",
  },
  // ---- adoption ----
  {
    id: "late-acquisition-handed-out",
    area: "adoption",
    what: "an acquisition answered after its lease is handed out",
    file: "src/client.ts",
    from: "if (!late || this.#options.knobs?.handOutLateAcquisitions === true) {",
    to: "if (true) {",
  },
  {
    id: "own-write-adopted-from-poll",
    area: "data",
    what: "an earlier write of ours found by a poll is adopted without reading its data",
    file: "src/client.ts",
    from: "const whole = record.data !== undefined ? record : await look(readRequest(schema, id));",
    to: "const whole = record;",
  },
  {
    id: "acquire-returns-updated-only",
    area: "data",
    what: "an acquire returns only the attributes it wrote",
    file: "src/requests.ts",
    // The acquire's, not the hand-off's: the acquire's names end in a block of their own.
    from: '    },\n    ExpressionAttributeValues: values,\n    ReturnValues: "ALL_NEW",',
    to: '    },\n    ExpressionAttributeValues: values,\n    ReturnValues: "UPDATED_NEW",',
  },
  // ---- several holders (src/holders.ts, test/sim/multi.ts) ----
  {
    id: "free-permit-off-by-one",
    area: "conditions",
    what: "a permit is taken while N are already in",
    file: "src/holders.ts",
    from: 'freePermit: "size(#holders) < :permits",',
    to: 'freePermit: "size(#holders) <= :permits",',
    extraStages: "permits:600",
  },
  {
    id: "reclaim-version-at-least",
    area: "conditions",
    what: "a stale entry is reclaimed at the version judged or any later one",
    file: "src/holders.ts",
    from: 'entryObservedStale: "#holders.#stale.#version = :staleVersion",',
    to: 'entryObservedStale: "#holders.#stale.#version >= :staleVersion",',
    extraStages: "permits:1500",
  },
  {
    id: "shared-intent-dropped",
    area: "conditions",
    what: "a shared take does not look for a writer's intent",
    file: "src/holders.ts",
    from: 'noIntent: "attribute_not_exists(#intent)",',
    to: 'noIntent: "(attribute_not_exists(#intent) OR attribute_exists(#intent))",',
    extraStages: "rw:600",
  },
  {
    id: "mutex-ignores-holders",
    area: "conditions",
    what: "the exclusive (mutex) acquire comes in while shared holders are in",
    file: "src/requests.ts",
    from: 'noHolders: "(attribute_not_exists(#holders) OR size(#holders) = :zero)",',
    to: 'noHolders: "(attribute_not_exists(#holders) OR size(#holders) >= :zero)",',
    extraStages: "rw:600",
  },
  {
    id: "force-remove-version-at-least",
    area: "conditions",
    what: "an administrator's removal of one entry applies at the version read or any later one",
    file: "src/holder-info.ts",
    from: ': "#holders.#target.#version = :version") + pin,',
    to: ': "#holders.#target.#version >= :version") + pin,',
    extraStages: "permits:600",
  },
];
