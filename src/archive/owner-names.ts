import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * User and group names by id, from /etc/passwd and /etc/group (Node has no
 * getpwuid); read once. Names are recorded beside ids so that a restore on
 * another machine can tell who was meant.
 */
export class OwnerNames {
  private readonly users: Map<number, string>;
  private readonly groups: Map<number, string>;
  private readonly userIds: Map<string, number>;
  private readonly groupIds: Map<string, number>;
  /** What the names were read from (for the directory memo: names changed, entries changed). */
  readonly fingerprint: string;

  constructor() {
    const passwd = OwnerNames.text('/etc/passwd');
    const group = OwnerNames.text('/etc/group');
    this.users = OwnerNames.parse(passwd);
    this.groups = OwnerNames.parse(group);
    this.userIds = new Map([...this.users].map(([id, name]) => [name, id]));
    this.groupIds = new Map([...this.groups].map(([id, name]) => [name, id]));
    this.fingerprint = createHash('sha256').update(passwd).update('\0').update(group).digest('hex');
  }

  private static text(file: string): string {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  }

  private static parse(text: string): Map<number, string> {
    const map = new Map<number, string>();
    for (const line of text.split('\n')) {
      const fields = line.split(':');
      const id = Number(fields[2]);
      if (fields.length >= 3 && fields[0] !== '' && Number.isInteger(id) && !map.has(id)) map.set(id, fields[0] as string);
    }
    return map;
  }

  user(uid: number): string | undefined {
    return this.users.get(uid);
  }

  group(gid: number): string | undefined {
    return this.groups.get(gid);
  }

  uidOf(name: string | undefined): number | undefined {
    return name === undefined ? undefined : this.userIds.get(name);
  }

  gidOf(name: string | undefined): number | undefined {
    return name === undefined ? undefined : this.groupIds.get(name);
  }
}
