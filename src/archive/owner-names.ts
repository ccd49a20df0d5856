import { readFileSync } from 'node:fs';

/**
 * User and group names by id, from /etc/passwd and /etc/group (Node has no
 * getpwuid); read once. Names are recorded beside ids so that a restore on
 * another machine can tell who was meant.
 */
export class OwnerNames {
  private readonly users = OwnerNames.read('/etc/passwd');
  private readonly groups = OwnerNames.read('/etc/group');
  private readonly userIds = new Map([...this.users].map(([id, name]) => [name, id]));
  private readonly groupIds = new Map([...this.groups].map(([id, name]) => [name, id]));
  private fingerprintText: string | null = null;

  /**
   * The names by id, as text (for the directory memo: other names, other
   * entries). Only what entries take from the files: a new login shell or
   * home directory changes nothing.
   */
  get fingerprint(): string {
    this.fingerprintText ??= JSON.stringify([[...this.users], [...this.groups]]);
    return this.fingerprintText;
  }

  private static read(file: string): Map<number, string> {
    const map = new Map<number, string>();
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return map;
    }
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
