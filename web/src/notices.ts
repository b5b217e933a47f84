import type { Order } from '../../src/contract/protocol.ts';
import type * as api from './api.ts';

/**
 * What the page tells the operator besides the data: messages (the last five; a refused create is
 * dropped once a create succeeds, so an old refusal does not outlive the fix) and 412 conflicts, each
 * with the newer order the server sent and the change the operator wanted.
 */
export interface Notice {
  id: number;
  tone: 'error' | 'info';
  /** A refused create: dropped once a create succeeds, so an old refusal does not outlive the fix. */
  topic?: 'create';
  text: string;
}

export interface Conflict {
  id: number;
  /** What the user wanted; null for a delete. */
  patch: api.OrderPatch | null;
  newer: Order | null;
  detail: string;
}

export class NoticeBoard {
  notices: Notice[] = [];
  conflicts: Conflict[] = [];
  private seq = 0;

  constructor(private readonly emit: () => void) {}

  notify(tone: Notice['tone'], text: string, topic?: Notice['topic']): void {
    const notice: Notice = topic ? { id: ++this.seq, tone, text, topic } : { id: ++this.seq, tone, text };
    this.notices = [...this.notices.slice(-4), notice];
    this.emit();
  }

  dismiss(id: number): void {
    this.notices = this.notices.filter((n) => n.id !== id);
    this.emit();
  }

  /** A create went through: an earlier create's refusal no longer applies. */
  dropTopic(topic: NonNullable<Notice['topic']>): void {
    if (this.notices.some((n) => n.topic === topic)) this.notices = this.notices.filter((n) => n.topic !== topic);
  }

  addConflict(conflict: Conflict): void {
    this.conflicts = [...this.conflicts, conflict];
    this.emit();
  }

  dismissConflict(conflict: Conflict): void {
    this.conflicts = this.conflicts.filter((c) => c !== conflict);
    this.emit();
  }
}
