import { afterAll, expect } from 'vitest';

/**
 * Every test file must leave nothing running: no pool, socket, server, child process or timer of its
 * own once its afterAll hooks are done (vitest runs this one last: hooks of setup files go first on
 * the way in and last on the way out). What is left is named, so the leak can be found. Vitest's own
 * channel to the worker (PipeWrap) and a stdio TTY are not the file's.
 */
const OURS_NOT = new Set(['PipeWrap', 'TTYWrap', 'FSReqCallback']);

/**
 * Sockets that Node's fetch (undici) keeps for reuse: its pool, not the test's, closed by undici
 * itself (a service closed under one does not always reach it at once).
 */
function fetchPoolSockets(): number {
  const handles = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles();
  return handles.filter((h) =>
    Object.getOwnPropertySymbols(h).some((s) => s.description === 'client' || s.description === 'socket request counter'),
  ).length;
}

function leftOver(): string[] {
  const left = process.getActiveResourcesInfo().filter((r) => !OURS_NOT.has(r));
  for (let pooled = fetchPoolSockets(); pooled > 0; pooled--) {
    const at = left.indexOf('TCPSocketWrap');
    if (at >= 0) left.splice(at, 1);
  }
  return left;
}

afterAll(async () => {
  // Sockets and pools close over a few ticks after their end() promises resolve.
  for (let i = 0; i < 40 && leftOver().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  const left = leftOver();
  expect(left, `${expect.getState().testPath ?? 'this file'} left these running`).toEqual([]);
});
