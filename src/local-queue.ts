/**
 * One poller per lock id per LockClient (issue 10): waiting acquires of the same id in one client
 * line up locally, first come first served, and only the head talks to the server. The others wait
 * until the head is done with the lock: its acquire failed, or the lock it got was released or lost.
 * A follower keeps its place among the other processes' waiters: its wait counts from the moment it
 * called acquire (turn.ts), not from the moment it reached the head.
 */
export class LocalQueues {
  readonly #tails = new Map<string, Promise<void>>();

  /**
   * Joins the queue of `id`. `ready` resolves when everyone before has called `done`; `done` must be
   * called exactly when this acquire is done with the lock (calling it again does nothing).
   */
  enter(id: string): { readonly ready: Promise<void>; readonly done: () => void; readonly behind: boolean } {
    const behind = this.#tails.has(id);
    const before = this.#tails.get(id) ?? Promise.resolve();
    let finish: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const tail = before.then(() => mine);
    this.#tails.set(id, tail);
    let called = false;
    return {
      /** Whether anyone was in the queue before us (else `ready` resolves at once). */
      behind,
      ready: before,
      done: () => {
        if (called) return;
        called = true;
        finish();
        // Forget the id once nobody queued after us.
        void tail.then(() => {
          if (this.#tails.get(id) === tail) this.#tails.delete(id);
        });
      },
    };
  }
}
