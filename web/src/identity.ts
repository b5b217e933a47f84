import { allows, type Role } from '../../src/contract/roles.ts';
import * as api from './api.ts';
import type { NoticeBoard } from './notices.ts';

/**
 * Who the page acts as (GET /me). Views offer only what its role may do; a 403 (the role was lowered
 * while the page was open) asks /me again, and the page adapts to the answer. A 401 is not handled
 * here: the session (session.ts) stops the dashboard and asks for a token.
 */
export class Identity {
  constructor(
    public me: api.Me,
    private readonly notices: NoticeBoard,
    private readonly onChange: (me: api.Me) => void,
  ) {}

  /** Whether the signed-in role may do what needs `role`. */
  can(role: Role): boolean {
    return allows(this.me.role, role);
  }

  /** True (and says why) when the role may not do `what`, so the request is not even sent. */
  refuseLocally(need: Role, what: string): boolean {
    if (this.can(need)) return false;
    this.notices.notify('error', `You cannot ${what}: it needs the ${need} role, and you are signed in as ${this.me.role}.`);
    return true;
  }

  /** Asks /me again; when the role changed, the page adapts (and the queue follows the new identity). */
  async refresh(stopped: () => boolean): Promise<void> {
    let me: api.Me;
    try {
      me = await api.whoAmI();
    } catch {
      return;
    }
    if (stopped() || (me.role === this.me.role && me.name === this.me.name)) return;
    this.me = me;
    this.onChange(me);
    this.notices.notify('info', `You are now signed in as ${me.role}; the page shows only what that role may do.`);
  }
}
