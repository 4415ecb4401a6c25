/**
 * Waiting for an event in a test that talks to a real server. Bounded by a count of checks, so a
 * missing event fails the test instead of hanging it; never used to assert how long anything took.
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  checks = 2_000,
): Promise<void> {
  for (let i = 0; i < checks; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`Timed out waiting for: ${what}`);
}
