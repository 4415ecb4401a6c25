/**
 * One bounded search, for the mutation runner (test/sim/mutate.ts), which runs it in a child process
 * inside a mutated copy of the tree: `node --import tsx test/sim/hunt.ts <stages>`, where stages is
 * a list like `tight:200,stormy:200` (seeds 1..n of each profile in turn, "quick" for the quick
 * mode's rotation). Prints one JSON line: the first violation (invariant, seed, profile, schedules
 * it took in all) or none.
 */
import type { ProfileName } from "./scenario.js";
import { type Rotation, search } from "./search.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

export type Stage = { readonly profile: Rotation; readonly schedules: number };

export function parseStages(text: string): Stage[] {
  return text.split(",").map((part) => {
    const [profile, n] = part.split(":");
    return { profile: profile as ProfileName, schedules: Number(n) };
  });
}

async function main(): Promise<void> {
  let ran = 0;
  for (const stage of parseStages(process.argv[2] ?? "quick:500")) {
    const outcome = await search({ from: 1, count: stage.schedules, profile: stage.profile });
    const f = outcome.found;
    if (f !== undefined) {
      console.log(
        JSON.stringify({
          ran: ran + f.after,
          invariant: f.result.violation?.invariant,
          detail: f.result.violation?.detail.split("\n")[0],
          seed: f.name.seed,
          profile: f.name.profile,
          after: ran + f.after,
        }),
      );
      return;
    }
    ran += outcome.ran;
  }
  console.log(JSON.stringify({ ran }));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
