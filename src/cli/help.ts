/**
 * `--help` for every command: what it does, its options, examples. Kept in one place so the texts
 * read as a set, and so docs/cli.md can be checked against them.
 */

const CONNECTION = `Connection (otherwise the AWS SDK's usual environment: AWS_REGION, AWS_PROFILE,
AWS_ENDPOINT_URL_DYNAMODB, ~/.aws/config, ...):
  --endpoint URL        DynamoDB endpoint, e.g. http://127.0.0.1:8000 for \`dynamolock serve\`
                        (a local endpoint needs no credentials or region)
  --region REGION       AWS region, e.g. eu-west-1
  --profile NAME        profile from ~/.aws/config and ~/.aws/credentials
  --debug               print the full error (stack and causes) on failure
  -h, --help            show this help`;

const LOCK = `Lock:
  -t, --table TABLE     the DynamoDB table holding the locks (see \`dynamolock create-table\`)
  -i, --id ID           the lock's id: any string up to 2048 bytes
  --partition-key NAME  the table's partition key attribute (default: id)
  --sort-key NAME       the table's sort key attribute, for tables that have one
  --sort-key-value VAL  the sort key value lock items use (default: lock)
  --single-writer-region REGION
                        for a global table with eventually consistent replicas: the one
                        Region every locker writes through (refused otherwise; see
                        docs/global-tables.md)`;

const DURATIONS = "Durations take a unit: 1500ms, 30s, 5m, 1h.";

const EXIT_CODES = `Exit codes:
  0    success                     64   bad arguments (usage)
  69   DynamoDB unreachable/error  70   internal error (a bug: please report it with --debug)
  75   lock held, wait ran out     78   configuration: credentials, region, missing table,
                                        a global table where locks are not safe
  79   run: lock lost, command stopped
  126  run: command not executable 127  run: command not found
  128+N  interrupted by signal N (run: the command died of signal N)
  run otherwise exits with the command's own exit code.`;

const LISTING = `Table:
  -t, --table TABLE     the DynamoDB table holding the locks
  --held                only locks that have a holder (presumed-dead ones included)
  --prefix TEXT         only locks whose id starts with TEXT
  --page-size N         items per Scan request (default 100): bounds memory and each request's cost
  --partition-key NAME  the table's partition key attribute (default: id)
  --sort-key NAME       the table's sort key attribute, for tables that have one
  --sort-key-value VAL  the sort key value lock items use (default: lock); other items are skipped

Cost: a Scan of the whole table (strongly consistent), charged for every item examined, matching
or not: one read unit per 4 KB of items (a page of 100 small lock items: about 5). Needs the IAM
action dynamodb:Scan, which locking itself does not.`;

export const HELP = {
  main: `dynamolock: a distributed lock on Amazon DynamoDB, from the command line.

Usage: dynamolock <command> [options]

Commands:
  run          run a command while holding a lock (flock(1) for a fleet)
  status       show whether a lock is held, by whom, its fence, heartbeat and data
  list         every lock in a table: holder, fence, heartbeat, lease left (or --json)
  top          the same, refreshed live, takeovers and losses highlighted
  dashboard    a local web page with the live locks and each one's recent history
  release      force-release a lock someone else holds (--force)
  create-table create the lock table (on-demand billing)
  data         read (get) or write (set) the data stored with a lock
  serve        start a local DynamoDB-compatible server for development (dynalite or DynamoDB Local)
  demo         watch worker processes share a lock on an embedded server (nothing to set up)

Run \`dynamolock <command> --help\` for its options and examples.

Examples:
  dynamolock demo
  dynamolock create-table locks
  dynamolock run --table locks --id nightly-backup -- ./backup.sh
  dynamolock status --table locks --id nightly-backup

${DURATIONS}

${EXIT_CODES}

Other options:
  -V, --version         print the version
`,

  run: `Usage: dynamolock run --table TABLE --id ID [options] -- COMMAND [ARGS...]

Takes the lock (waiting up to --wait if someone holds it), runs COMMAND while the lock heartbeats,
releases the lock when COMMAND exits, and exits with COMMAND's exit code.

COMMAND's environment gets:
  DYNAMOLOCK_FENCE      the fencing token: increases with every acquisition of this lock; pass it
                        to what you protect so it can refuse a stale holder's late writes
  DYNAMOLOCK_ID, DYNAMOLOCK_TABLE, DYNAMOLOCK_HOLDER
  DYNAMOLOCK_DATA_FILE  a file holding the lock's data as JSON; write a new JSON object there to
                        store it with the release (e.g. the last item a job processed)

If the lock is held and the wait runs out: exits 75 with one line naming the holder.
If the lock is lost while COMMAND runs (its lease ran out, or \`dynamolock release --force\`):
sends COMMAND SIGTERM, then SIGKILL after --grace, and exits 79 once it is gone. A lock already
lost when COMMAND is about to start: exits 79 without starting it.

Process group: when stdin is not a terminal (cron, CI, scripts), COMMAND gets its own process
group and run treats the group as the command: on a lost lock, SIGTERM and then SIGKILL go to
every process in it, even after COMMAND itself exited; and if COMMAND exits leaving processes
running in it (\`sh -c 'job & exit'\`), run keeps the lock until they exit too, as flock(1) does.
On a terminal, COMMAND shares run's group (it can read the terminal) and only COMMAND itself is
signalled or waited for; redirect stdin (</dev/null) to get a group.

Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGUSR2 sent to run are passed on to COMMAND, also
on a terminal (so \`kill -INT\` from elsewhere reaches it; Ctrl-C then reaches it twice: from the
terminal and from run).

Options:
  --wait DURATION       how long to wait for a held lock (default: 0, do not wait)
  --lease DURATION      how long the lock outlives a crashed holder's last heartbeat (default: 30s)
  --heartbeat DURATION  how often to renew the lease; at most a third of it (default: lease / 6)
  --grace DURATION      after SIGTERM on a lost lock, wait this long before SIGKILL (default: 10s)
  --holder NAME         the name others see (default: hostname:pid)
  --record-exit         store the exit status, times and holder under "lastRun" in the lock's data
  --permits N           a semaphore: at most N runs hold the id at once (1 to 100); every run of
                        the id must give the same N
  --shared              a reader–writer lock's shared side: up to 100 --shared runs at once,
                        never with a run without it (the exclusive side, which waits for them and
                        keeps new --shared runs out while it waits). Not with --permits.
                        With --permits or --shared the data is read-only: what COMMAND writes to
                        DYNAMOLOCK_DATA_FILE is not stored, and --record-exit is refused
  -v, --verbose         log acquiring and releasing

${LOCK}

${CONNECTION}

${DURATIONS}

Examples:
  # at most one backup at a time across the fleet; skip this run if one is going
  dynamolock run --table locks --id nightly-backup -- ./backup.sh

  # wait up to 10 minutes for the current holder
  dynamolock run --table locks --id deploy --wait 10m -- ./deploy.sh production

  # crontab: every 5 minutes on every host, one runs at a time; 75 means "another host has it"
  */5 * * * * dynamolock run -t locks -i sync --lease 1m --record-exit -- /opt/sync.sh || [ $? -eq 75 ]

  # at most 4 exports at once across the fleet, waiting up to 5 minutes for a free permit
  dynamolock run -t locks -i exports --permits 4 --wait 5m -- ./export.sh

  # a shell pipeline needs a shell
  dynamolock run -t locks -i report -- sh -c 'make-report | gzip > report.gz'

${EXIT_CODES}
`,

  status: `Usage: dynamolock status --table TABLE --id ID [--json]

Shows whether the lock is held, by whom, how old its last heartbeat is, its lease, fence and data.
For a semaphore (run --permits) or a reader–writer lock (run --shared), lists every holder: mode
(exclusive, permit, shared), name, key (for \`release --force --holder\`), fence (a permit or
shared holder's from its first heartbeat or extend on) and heartbeat age, and a writer waiting behind shared holders.
Reads with one strongly consistent GetItem; takes no lock. Exits 0 whether held or free.

Options:
  --json                print one JSON object (fields below) instead of text

JSON fields: table, id, exists, held, stale, holder, fence, heartbeatAt (ms since epoch),
heartbeatAgeMs, leaseMs, expiresInMs, releasedAt, dataKeys, dataBytes (the data's top-level keys
and its size as JSON: never its values, which \`dynamolock data get\` prints), kind ("mutex",
"permits", "shared"), permits, holders (one object per holder: mode, holder, key, fence,
heartbeatAt, heartbeatAgeMs, leaseMs, stale), intent (a waiting writer: holder, heartbeatAgeMs,
stale). The top-level holder fields are the exclusive holder's. Absent values are null. "stale" means
held, but past its lease by this machine's clock: the holder is presumed dead. An acquire with
the default clock-skew bound takes it over at once; one that trusts no wall clock
(maxClockSkewMs Infinity) must watch it for one whole lease first.

${LOCK}

${CONNECTION}

Examples:
  dynamolock status --table locks --id nightly-backup
  dynamolock status -t locks -i nightly-backup --json | jq .holder
`,

  list: `Usage: dynamolock list --table TABLE [--held] [--prefix TEXT] [--json]

Shows every lock in the table, sorted by id and cut to the terminal's width: its holder, fence,
heartbeat age, lease left (until the holder is presumed dead), whether it is stale, waiters and
the size of its data. Waiters are not recorded in the table, so that column shows "-" (unknown).

Options:
  --json                one JSON object per line, unsorted, as the pages come (for jq): id,
                        held, stale, holder, fence, heartbeatAt, heartbeatAgeMs, leaseMs,
                        leaseLeftMs, releasedAt, waiters (always null), dataBytes,
                        holders (how many hold it: permits, shared)

${LISTING}

${CONNECTION}

Examples:
  dynamolock list --table locks
  dynamolock list -t locks --held --prefix deploy/
  dynamolock list -t locks --json | jq -r 'select(.stale) | .id'
`,

  top: `Usage: dynamolock top --table TABLE [--interval 1s] [--held] [--prefix TEXT]

\`list\`, refreshed in place until you press q or Ctrl-C. A lock taken over from a holder that
never released it, or lost by its holder, is highlighted for a few refreshes and listed under
the table. The header shows what each refresh costs, in Scan requests. Needs a terminal.

Options:
  -n, --interval DURATION  time between refreshes (default 1s); each one is a whole listing

${LISTING}

${CONNECTION}

Examples:
  dynamolock top --table locks
  dynamolock top -t locks --held --interval 5s
`,

  dashboard: `Usage: dynamolock dashboard --table TABLE [--port N] [--interval 1s] [--allow-release]

Serves a small web page on 127.0.0.1 (a free port unless --port is given; the address is
printed): the live table of locks, and for the lock you select its recent history drawn like the
demo's timeline (holders, fences, heartbeats, takeovers), updated by server-sent events. Nothing
is loaded from the internet. The history is what this process saw by polling since it started,
kept in its memory (the last 200 changes per lock); the table records no history.

Read-only unless --allow-release, which adds a force-release button (with a confirmation).
Stops on Ctrl-C (SIGINT) or SIGTERM.

Options:
  -p, --port N             port on 127.0.0.1 (default: a free one)
  -n, --interval DURATION  time between listings (default 1s), shared by every open page
  --allow-release          show a force-release button for held locks

${LISTING}

${CONNECTION}

Examples:
  dynamolock dashboard --table locks
  dynamolock dashboard -t locks --port 8080 --allow-release
`,

  release: `Usage: dynamolock release --force --table TABLE --id ID [--holder KEY|NAME]

Removes whoever holds the lock (keeping its data and fence). The holder finds out at its next
heartbeat: a \`dynamolock run\` holding it stops its command and exits 79. Use it for a lock whose
holder you know is gone and whose lease you do not want to wait out.

With --holder, removes ONE holder, named by its key or its name as \`dynamolock status\` lists
them: a permit or shared holder (the others keep theirs), or the exclusive one. A name that
several holders share (every holder of one process has the same default name) is refused (exit
64, listing their keys): give the key.

Options:
  --force               required: you are taking the lock away from its holder
  --holder KEY|NAME     remove only this holder (semaphores, reader–writer locks)
  --json                print what was released as JSON

${LOCK}

${CONNECTION}

Examples:
  dynamolock release --force --table locks --id nightly-backup
  dynamolock release --force -t locks -i exports --holder 3f9a61c2
`,

  "create-table": `Usage: dynamolock create-table --table TABLE [--sort-key NAME] [--partition-key NAME]
       dynamolock create-table TABLE ...

Creates the lock table with on-demand billing and waits until it is ACTIVE. An existing table with
the same key schema is fine (exit 0); one with another key schema is an error (exit 78), and so is
an existing global table whose replicas are only eventually consistent, where locks are not safe
(see docs/global-tables.md).

Options:
  -t, --table TABLE     the table to create (or give it as the first argument)
  --partition-key NAME  the partition key attribute, type S (default: id)
  --sort-key NAME       also a sort key attribute, type S, for sharing the table with other items
  --wait DURATION       how long to wait for ACTIVE (default: 5m)
  --single-writer-region REGION
                        accept an eventually consistent global table whose lockers all write
                        through REGION

${CONNECTION}

Examples:
  dynamolock create-table --table locks
  dynamolock create-table app-table --partition-key pk --sort-key sk --region eu-west-1
  dynamolock create-table locks --endpoint http://127.0.0.1:8000
`,

  data: `Usage: dynamolock data get --table TABLE --id ID
       dynamolock data set --table TABLE --id ID [--wait DURATION] (JSON | --file PATH)

get prints the data stored with the lock as JSON (null if none), without taking the lock.
set takes the lock (waiting up to --wait), stores the JSON object as its data and releases it, in
one request each. Exits 75 if the lock is held and the wait runs out.

The JSON view shows DynamoDB sets as arrays and binary as {"$base64": "..."}.

Options:
  --file PATH           read the JSON from a file (- for standard input)
  --wait DURATION       set: how long to wait for a held lock (default: 0)
  --lease DURATION      set: the lease while writing (default: 30s)

${LOCK}

${CONNECTION}

Examples:
  dynamolock data get --table locks --id nightly-backup
  dynamolock data set --table locks --id nightly-backup '{"lastProcessed": 1234}'
  echo '{"paused": true}' | dynamolock data set -t locks -i sync --wait 1m --file -
`,

  serve: `Usage: dynamolock serve [--engine dynalite|ddb-local] [--port 8000] [--path DIR]

Starts a local DynamoDB-compatible server on 127.0.0.1 for development and prints the endpoint to
use. In memory unless --path is given. Stops on Ctrl-C (SIGINT) or SIGTERM.
dynalite (the default) needs the dynalite package (npm install --save-dev dynalite) and has no
transactions or TTL. ddb-local is AWS's DynamoDB Local, with transactions (guarded writes) and
TTL: it needs Java 17+, and Maven (mvn) to fetch it on first use into $DYNAMOLOCK_CACHE_DIR, else
$XDG_CACHE_HOME/dynamolock, else ~/.cache/dynamolock.

Options:
  --engine NAME         dynalite (default) or ddb-local
  --port PORT           the port to listen on (default: 8000; 0 picks a free one)
  --path DIR            keep the data in DIR (LevelDB for dynalite, SQLite for ddb-local)
  -h, --help            show this help

Examples:
  dynamolock serve
  # in another terminal (dynamolock needs no credentials for a local endpoint):
  export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000
  dynamolock create-table locks
  dynamolock run --table locks --id try-me -- sleep 5
`,

  demo: `Usage: dynamolock demo [options]

Starts an embedded local server, creates a table, and runs several worker processes that contend
for one lock, each adding 1 to a counter kept in the lock's data inside its critical section. One
worker is killed with SIGKILL while it holds the lock, to show another taking over once its lease
runs out. Shows who holds, who waits, fences and the counter as it happens (a live view on a
terminal, plain lines otherwise), then verifies: the counter equals the completed critical
sections, fences increased with every acquisition, and the takeover came after the lease. Writes
a timeline picture (SVG) of who held the lock when. Exits 0 if the verification passes, 1 if not.

Options:
  --workers N           worker processes (default: 4, at most 8)
  --rounds N            critical sections per worker (default: 5)
  --lease DURATION      the lease (default: 3s); the takeover takes about this long
  --heartbeat DURATION  (default: lease / 6)
  --work DURATION       time spent inside each critical section (default: 300ms)
  --out PATH            where to write the timeline (default: dynamolock-demo.svg)
  --no-kill             do not kill a worker
  --plain               plain lines even on a terminal
  -h, --help            show this help

Examples:
  dynamolock demo
  dynamolock demo --workers 6 --lease 5s --out /tmp/timeline.svg
`,
} as const;

export type HelpTopic = keyof typeof HELP;
