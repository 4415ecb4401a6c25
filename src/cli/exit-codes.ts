/**
 * The CLI's exit codes. Borrowed from sysexits(3) where one fits, so that cron, systemd and shell
 * scripts can tell "try again later" from "fix your configuration". Documented in docs/cli.md.
 */
export const EXIT = {
  ok: 0,
  /** `demo`: the final verification failed. */
  failed: 1,
  /** Bad or missing argument, unknown command or option, bad duration (EX_USAGE). */
  usage: 64,
  /** DynamoDB could not be reached, or answered with an error (EX_UNAVAILABLE). */
  unavailable: 69,
  /** A bug in dynamolock (EX_SOFTWARE). */
  internal: 70,
  /** The lock is held by someone else and the wait ran out (EX_TEMPFAIL: try again later). */
  held: 75,
  /** No credentials, no region, missing table or wrong key schema (EX_CONFIG). */
  config: 78,
  /** `run`: the lock was lost while the command ran; the command was stopped. */
  lost: 79,
  /** `run`: the command exists but could not be executed (as in shells). */
  cannotExecute: 126,
  /** `run`: the command was not found (as in shells). */
  notFound: 127,
} as const;

/** A failure the CLI reports as one line and an exit code. */
export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: number;

  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

export const usageError = (message: string): CliError => new CliError(message, EXIT.usage);
