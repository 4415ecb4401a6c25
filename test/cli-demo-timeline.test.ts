/**
 * The demo's timeline picture keeps every hold's fence readable, narrow holds included: as a label
 * (inside the bar or above it) or as the bar's tooltip (`<title>`, shown on hover in the HTML view).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DemoModel } from "../src/cli/demo/model.js";
import { renderTimeline } from "../src/cli/demo/timeline.js";

describe("demo timeline", () => {
  it("names every hold's fence in the lock lane, however narrow the hold", () => {
    const t0 = 1_000_000;
    const model = new DemoModel(["w1", "w2", "w3"], t0);
    let at = t0;
    let fence = 0;
    // Long holds around a run of very short ones (a few ms on a 10 s axis: under a pixel wide).
    const holds = [3_000, 2, 3, 1, 2, 4_000, 1, 2_000];
    for (const [i, ms] of holds.entries()) {
      const worker = `w${(i % 3) + 1}`;
      fence += 1;
      model.apply({
        type: "acquired",
        worker,
        round: i,
        at,
        waitedMs: 0,
        fence,
        counter: i,
        previousFence: fence - 1,
        victim: false,
      });
      at += ms;
      model.apply({ type: "released", worker, round: i, at, fence, counter: i + 1 });
    }
    model.end(at);
    const svg = renderTimeline(model, { lockId: "demo", leaseMs: 2_000, heartbeatMs: 500 });
    for (let f = 1; f <= fence; f++) {
      const asTitle = svg.includes(`<title>fence ${f}: `);
      const asText = new RegExp(`class="fence(?:-above)?">${f}</text>`).test(svg);
      assert.ok(asTitle || asText, `fence ${f} appears as text or a tooltip`);
      assert.ok(asTitle, `fence ${f}'s bar has a tooltip`);
    }
    // The narrow ones that have room get a label above the bar; labels above never repeat a place.
    const above = [...svg.matchAll(/<text x="([\d.]+)" y="[\d.-]+" class="fence-above">(\d+)<\/text>/g)];
    assert.ok(above.length >= 1, "at least one narrow hold is labelled above its bar");
    const xs = above.map((m) => Number(m[1]));
    assert.deepEqual(
      xs,
      [...xs].sort((a, b) => a - b),
    );
    for (let i = 1; i < xs.length; i++) assert.ok((xs[i] as number) - (xs[i - 1] as number) >= 7);
  });
});
