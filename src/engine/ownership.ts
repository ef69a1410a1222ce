/**
 * Ownership across stacks (src/host/owners.ts holds the record format): what each resource kind
 * owns on its host, and how the lifecycle reads, checks, writes and removes its record without
 * a round trip of its own.
 *
 *   check, create, update  the records are read by the probe's own round trip (a few shell
 *                          lines before its commands); a setting another stack's resource owns
 *                          fails the check, naming the field, the owner and the setting
 *   create, update         the record is written by the apply's first round trip, before its
 *                          commands; put back as it was when the apply fails
 *   delete                 the record is removed by the release's first round trip; written
 *                          again when the release fails
 *
 * A round trip of its own is paid only when the probe, apply or release ran no command. What each
 * kind owns is src/specs/owned.ts.
 */
import { isScript, renderCommand } from "../transport/quote";
import type { Command, ExecOptions, Transport } from "../transport/types";
import {
  overlapReason,
  overlaps,
  recordPath,
  renderRecordRemove,
  renderRecordsRead,
  renderRecordClaim,
  renderRecordWrite,
  takeRecords,
  takeRefusal,
  type OwnedSetting,
  type OwnerRecord,
} from "../host/owners";
import type { Failure } from "./lifecycle";
import { CommandError } from "../transport/errors";

/**
 * An apply refused at its first command: another stack's resource claimed one of its settings
 * after this one's check passed (two stacks ran `up` at once). Nothing was changed.
 */
export class OwnershipConflict extends Error {}

/** The check's failures: every setting another stack's resource owns, by field. */
export function ownershipFailures(
  owner: string,
  settings: readonly OwnedSetting[],
  records: readonly OwnerRecord[],
  target: string,
): Failure[] {
  return overlaps(owner, settings, records).map((o) => ({
    property: o.setting.input,
    reason: overlapReason(o, target),
  }));
}

/** A command with shell run before it, in the same round trip; its own output is unchanged. */
function prefixed(prefix: string, command: Command): Command {
  const text = isScript(command) ? command.script : renderCommand(command);
  return { script: `${prefix}\n${text}` };
}

/**
 * A transport that runs `prefix` before the first command it is given (in the same round
 * trip) and hands `read` what the prefix printed; later commands pass through.
 */
export function prefixFirst(
  t: Transport,
  prefix: string,
  read?: (stdout: string) => string,
): Transport & { readonly used: boolean } {
  let used = false;
  return {
    target: t.target,
    stats: t.stats,
    get used() {
      return used;
    },
    async exec(command: Command, options?: ExecOptions) {
      if (used) return t.exec(command, options);
      used = true;
      let res;
      try {
        res = await t.exec(prefixed(prefix, command), options);
      } catch (err) {
        // A failed command's output is read too: the prefix may have ended the script.
        if (read && err instanceof CommandError) read(err.stdout);
        throw err;
      }
      return read ? { ...res, stdout: read(res.stdout) } : res;
    },
    close: () => t.close(),
  };
}

/**
 * How long a failed operation waits to put its record back. A failure from a cut path would
 * otherwise wait out every dial retry (minutes) before the error reaches the user; a record
 * left behind names this resource's own identity and is rewritten by its next `up`.
 */
const RESTORE_WAIT_MS = 10_000;

/** Waits for `p` (its failure ignored) at most `ms`. */
function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    p.catch(() => undefined).finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The ownership side of one operation of one resource. */
export class Ownership {
  private records: OwnerRecord[] | undefined;
  readonly settings: readonly OwnedSetting[];

  constructor(
    private readonly t: Transport,
    readonly owner: string,
    settings: readonly OwnedSetting[],
  ) {
    this.settings = settings;
  }

  /** The transport a probe runs on: its first command also reads the records. */
  reading(): Transport {
    return prefixFirst(this.t, renderRecordsRead(), (stdout) => {
      const got = takeRecords(stdout);
      if (!got) return stdout;
      this.records = got.records;
      return got.rest;
    });
  }

  /** The records, read by the probe or else now. */
  async read(): Promise<OwnerRecord[]> {
    if (this.records) return this.records;
    const res = await this.t.exec({ script: renderRecordsRead() });
    this.records = takeRecords(res.stdout)?.records ?? [];
    return this.records;
  }

  /** Settings another stack's resource owns, by field. */
  async failures(): Promise<Failure[]> {
    return ownershipFailures(this.owner, this.settings, await this.read(), this.t.target);
  }

  /** This resource's record as it was before the operation, if any. */
  private before(): OwnerRecord | undefined {
    const p = recordPath(this.owner);
    return this.records?.find((r) => r.path === p);
  }

  /**
   * Runs `apply` on a transport whose first command also writes the record (and removes the
   * record of `previous`, an identity the resource had before); on failure the record is put
   * back as it was (waiting at most RESTORE_WAIT_MS for the host).
   */
  async writing<T>(apply: (t: Transport) => Promise<T>, previous?: string): Promise<T> {
    const claim = renderRecordClaim(this.owner, this.settings, previous);
    const refused = (stdout: string) => {
      const got = takeRefusal(stdout);
      if (got) throw this.conflict(got);
      return stdout;
    };
    const t = prefixFirst(this.t, claim, refused);
    let result: T;
    try {
      result = await apply(t);
    } catch (err) {
      // A refused claim wrote nothing and changed nothing: there is no record to put back.
      if (t.used && !(err instanceof OwnershipConflict))
        await bounded(this.restore(this.before()), RESTORE_WAIT_MS);
      throw err;
    }
    if (!t.used) refused((await this.t.exec({ script: claim }, { allowFailure: true })).stdout);
    return result;
  }

  /** The error of a refused claim, naming each field, its setting and the owner. */
  private conflict(got: readonly { id: string; owner: string; path: string }[]): Error {
    const lines = got.map((g) => {
      const input = this.settings.find((s) => s.id === g.id)?.input ?? g.id;
      return `${input}: ${overlapReason({ setting: { id: g.id, input }, other: { path: g.path, owner: g.owner, settings: [] } }, this.t.target)}`;
    });
    return new OwnershipConflict(
      `${lines.join("\n")}\n(claimed by the other stack after this preview's check passed: two stacks ran up at once; nothing was changed)`,
    );
  }

  /** Runs `release` on a transport whose first command also removes the record. */
  async removing(release: (t: Transport) => Promise<void>): Promise<void> {
    const remove = `( ${renderRecordRemove(this.owner)} ) >/dev/null 2>&1`;
    const t = prefixFirst(this.t, remove);
    try {
      await release(t);
    } catch (err) {
      if (t.used)
        await bounded(
          this.restore({ path: "", owner: this.owner, settings: this.settings }),
          RESTORE_WAIT_MS,
        );
      throw err;
    }
    if (!t.used) await this.t.exec({ script: remove });
  }

  private async restore(record: OwnerRecord | undefined): Promise<void> {
    await this.t.exec({
      script: record
        ? renderRecordWrite(this.owner, record.settings)
        : renderRecordRemove(this.owner),
    });
  }
}
