/**
 * AWS DynamoDB Local, fetched with Maven and run with Java, on 127.0.0.1. Used by
 * `dynamolock/testing` (`startLocalDynamoDB({ engine: "ddb-local" })`), `dynamolock serve --engine
 * ddb-local` and the project's own scripts/ddb-local.mjs, so there is one implementation. Only node:
 * built-ins: the main `dynamolock` entry never loads this module.
 *
 * DynamoDB Local's licence forbids redistributing it, so it is never bundled: it is fetched from
 * Maven Central into a cache folder on first use.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The DynamoDB Local version fetched, pinned so every run tests the same server (newest 3.x on
 * Maven Central when pinned).
 */
export const DDB_LOCAL_VERSION = "3.3.1";

/** What is missing or went wrong when DynamoDB Local cannot be fetched or started. */
export type LocalServerErrorCode =
  /** No `java` (JAVA_HOME/bin/java or on PATH), or one older than 17. */
  | "ENOJAVA"
  /** DynamoDB Local is not in the cache and there is no `mvn` to fetch it. */
  | "ENOMAVEN"
  /** Maven ran but did not fetch DynamoDB Local (offline, proxy, ...): see `output`. */
  | "EFETCH"
  /** DynamoDB Local exited during start or did not answer in time: see `output`. */
  | "ESTART";

/** Thrown when DynamoDB Local cannot be fetched or started; `code` says why. */
export class LocalServerError extends Error {
  override readonly name = "LocalServerError";
  readonly code: LocalServerErrorCode;
  /** The tool's last output (Maven's or DynamoDB Local's), when there is any. */
  readonly output: string;
  constructor(code: LocalServerErrorCode, message: string, options?: ErrorOptions & { output?: string }) {
    super(message, options);
    this.code = code;
    this.output = options?.output ?? "";
  }
}

/** How long a start may take before we give up (a cold JVM on a busy 2-core machine: seconds). */
const START_TIMEOUT_MS = 120_000;
/** How long a stopping server gets for its shutdown hooks before SIGKILL. */
const STOP_GRACE_MS = 5_000;

/**
 * Where fetched DynamoDB Local versions are kept for users: DYNAMOLOCK_CACHE_DIR, else
 * $XDG_CACHE_HOME/dynamolock, else ~/.cache/dynamolock (%LOCALAPPDATA%\dynamolock on Windows). A
 * per-user folder rather than node_modules/.cache, so the ~60 MB download is shared by projects and
 * survives a clean install.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DYNAMOLOCK_CACHE_DIR) return env.DYNAMOLOCK_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "dynamolock");
  if (process.platform === "win32" && env.LOCALAPPDATA) return join(env.LOCALAPPDATA, "dynamolock");
  return join(homedir(), ".cache", "dynamolock");
}

/** A pom whose only job is to copy DynamoDB Local and its native sqlite4java libraries into `dir`. */
function pomXml(version: string, dir: string): string {
  const escaped = dir.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by dynamolock to fetch DynamoDB Local with: mvn -f this-file dependency:copy-dependencies -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dynamolock.cache</groupId>
  <artifactId>ddb-local-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>software.amazon.dynamodb</groupId>
      <artifactId>DynamoDBLocal</artifactId>
      <version>${version}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
        <configuration>
          <outputDirectory>${escaped}</outputDirectory>
          <includeScope>runtime</includeScope>
          <!-- sqlite4java finds its native library by its versioned file name in java.library.path. -->
          <stripVersion>false</stripVersion>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
`;
}

export interface FetchOptions {
  /** The folder holding `ddb-local/<version>/`. @default defaultCacheDir() */
  readonly cacheDir?: string | undefined;
  /** Called with a line for people (e.g. "fetching ..."), if given. */
  readonly log?: ((message: string) => void) | undefined;
}

/**
 * Fetches DynamoDB Local with Maven unless it is in the cache already; returns its folder.
 * @throws {LocalServerError} `ENOMAVEN` without `mvn`, `EFETCH` when Maven fails.
 */
export function fetchDynamoDBLocal(options: FetchOptions = {}): string {
  const dir = join(options.cacheDir ?? defaultCacheDir(), "ddb-local", DDB_LOCAL_VERSION);
  const jar = join(dir, `DynamoDBLocal-${DDB_LOCAL_VERSION}.jar`);
  if (existsSync(jar)) return dir;
  options.log?.(`fetching DynamoDB Local ${DDB_LOCAL_VERSION} from Maven Central into ${dir} ...`);
  mkdirSync(dir, { recursive: true });
  // The pom sits beside the jars rather than in the package: the package ships only dist/.
  const pom = join(dir, "..", `fetch-${DDB_LOCAL_VERSION}.pom.xml`);
  writeFileSync(pom, pomXml(DDB_LOCAL_VERSION, dir));
  const mvn = spawnSync(
    process.platform === "win32" ? "mvn.cmd" : "mvn",
    ["-q", "-B", "-f", pom, "dependency:copy-dependencies"],
    // Maven's own output (even quiet, it prints terminal escapes) is kept for the error only.
    { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  if (mvn.error !== undefined) {
    throw new LocalServerError(
      "ENOMAVEN",
      `DynamoDB Local is not in ${dir} and Maven (mvn) could not be run to fetch it (${mvn.error.message}): install Maven and Java 17+, or run DynamoDB Local yourself and use its endpoint`,
      { cause: mvn.error },
    );
  }
  if (mvn.status !== 0 || !existsSync(jar)) {
    const output = `${mvn.stdout ?? ""}${mvn.stderr ?? ""}`.slice(-8_000);
    throw new LocalServerError(
      "EFETCH",
      `fetching DynamoDB Local with Maven failed (exit ${mvn.status}): ${lastLine(output)}`,
      { output },
    );
  }
  return dir;
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return lines[lines.length - 1]?.trim() ?? "";
}

/** The java to run: JAVA_HOME's if set, else the one on PATH. */
function javaCommand(): string {
  const home = process.env.JAVA_HOME;
  return home ? join(home, "bin", process.platform === "win32" ? "java.exe" : "java") : "java";
}

/**
 * Checks that Java 17+ is there before anything is fetched, so a missing Java is named as such
 * rather than as a failed start after a long download.
 * @throws {LocalServerError} `ENOJAVA`
 */
export function checkJava(): void {
  const java = javaCommand();
  const probe = spawnSync(java, ["-version"], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new LocalServerError(
      "ENOJAVA",
      `DynamoDB Local needs Java 17+, and ${java} could not be run (${probe.error?.message ?? `exit ${probe.status}`}): install a JDK or JRE 17+, or set JAVA_HOME`,
      probe.error === undefined ? {} : { cause: probe.error },
    );
  }
  // `java -version` prints e.g. `openjdk version "17.0.15"` or, before Java 9, `"1.8.0_392"`.
  const found = /version "(\d+)(?:\.(\d+))?/.exec(`${probe.stderr}${probe.stdout}`);
  if (found !== null) {
    const major = found[1] === "1" ? Number(found[2]) : Number(found[1]);
    if (major < 17) {
      throw new LocalServerError(
        "ENOJAVA",
        `DynamoDB Local needs Java 17+, and ${java} is Java ${major}: install a newer one, or set JAVA_HOME to it`,
      );
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether anything answers HTTP on the port (DynamoDB Local answers a bare GET with 400). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/", method: "GET", timeout: 1_000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once("timeout", () => req.destroy());
    req.once("error", () => resolve(false));
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Servers this process started, killed on exit so that a crash or process.exit() leaves none behind. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
}

export interface DynamoDBLocalProcessOptions extends FetchOptions {
  /** Port on 127.0.0.1. @default 0 (a free port) */
  readonly port?: number | undefined;
  /** A folder for a persistent store (DynamoDB Local's -dbPath). @default undefined (in memory) */
  readonly path?: string | undefined;
}

export interface DynamoDBLocalProcess {
  readonly endpoint: string;
  readonly port: number;
  /** The java process's id. */
  readonly pid: number;
  /** How long the start took, in ms (from spawning java to its first answer). */
  readonly startMs: number;
  /** Settles when the process has ended, for whatever reason. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Checks Java, fetches DynamoDB Local if needed, starts it on 127.0.0.1 and waits until it answers.
 * @throws {LocalServerError}
 */
export async function startDynamoDBLocalProcess(
  options: DynamoDBLocalProcessOptions = {},
): Promise<DynamoDBLocalProcess> {
  checkJava();
  const dir = fetchDynamoDBLocal(options);
  const store = options.path === undefined ? ["-inMemory"] : ["-dbPath", options.path];
  // A free port is chosen before java binds it, and another process could take it in between:
  // retry a few times when the port was picked for us.
  for (let attempt = 1; ; attempt++) {
    const port = options.port === undefined || options.port === 0 ? await freePort() : options.port;
    const started = performance.now();
    const child = spawn(
      javaCommand(),
      [
        `-Djava.library.path=${dir}`,
        "-cp",
        join(dir, "*"),
        "software.amazon.dynamodb.services.local.main.ServerRunner",
        ...store,
        "-sharedDb",
        "-port",
        String(port),
        "-disableTelemetry",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    running.add(child);
    killAllOnExit();
    let ended = false;
    let spawnError: Error | undefined;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("exit", (code, signal) => {
        ended = true;
        running.delete(child);
        resolve({ code, signal });
      });
      child.once("error", (error) => {
        ended = true;
        spawnError = error;
        running.delete(child);
        resolve({ code: null, signal: null });
      });
    });
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        if (ended) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    };

    while (!ended && performance.now() - started < START_TIMEOUT_MS) {
      if (await answers(port)) {
        // After the start, its output is no longer needed: stop buffering it.
        child.stdout?.off("data", keep);
        child.stderr?.off("data", keep);
        child.stdout?.resume();
        child.stderr?.resume();
        const startMs = Math.round(performance.now() - started);
        return {
          endpoint: `http://127.0.0.1:${port}`,
          port,
          pid: child.pid as number,
          startMs,
          exited,
          stop,
        };
      }
      await sleep(100);
    }
    if (!ended) {
      await stop();
      throw new LocalServerError("ESTART", `DynamoDB Local did not answer within ${START_TIMEOUT_MS} ms`, {
        output,
      });
    }
    const result = await exited;
    if (spawnError !== undefined) {
      throw new LocalServerError(
        "ENOJAVA",
        `could not start Java (${spawnError.message}): DynamoDB Local needs Java 17+`,
        {
          cause: spawnError,
        },
      );
    }
    const portPicked = options.port === undefined || options.port === 0;
    if (portPicked && attempt < 3 && /address already in use|BindException/i.test(output)) continue;
    throw new LocalServerError(
      "ESTART",
      `DynamoDB Local exited during start (code ${result.code}, signal ${result.signal}): ${lastLine(output)}`,
      { output },
    );
  }
}
