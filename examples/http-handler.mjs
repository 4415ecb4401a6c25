// withLock in an HTTP handler: the request's signal stops the wait (and the work) when the client
// goes away, and a lock held by another request turns into 409 after a short wait.
import { createServer } from "node:http";
import { LockClient } from "dynamolock";

const locks = new LockClient({ table: "locks" });

export const server = createServer(async (req, res) => {
  // Aborted when the client disconnects before we answered.
  const gone = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) gone.abort(new Error("client went away"));
  });
  const id = new URL(req.url ?? "/", "http://localhost").searchParams.get("account") ?? "default";
  try {
    const balance = await locks.withLock(
      `account-${id}`,
      async (lock) => {
        const signal = AbortSignal.any([lock.signal, gone.signal]);
        await new Promise((resolve) => setTimeout(resolve, 100)); // the guarded work
        signal.throwIfAborted();
        return lock.fence;
      },
      { waitMs: 20, signal: gone.signal },
    );
    res.writeHead(200).end(`updated (fence ${balance})\n`);
  } catch (err) {
    if (gone.signal.aborted) return; // nobody to answer
    if (err.code === "ELOCKHELD") res.writeHead(409).end("busy, try again\n");
    else res.writeHead(500).end(`${err.code ?? err.name}\n`);
  }
});

if (process.argv[1] === new URL(import.meta.url).pathname) {
  await locks.createTable();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/?account=42`;
  const statuses = await Promise.all([fetch(url), fetch(url)].map(async (r) => (await r).status));
  console.log(JSON.stringify(statuses.sort()));
  server.close();
  await locks.close();
}
