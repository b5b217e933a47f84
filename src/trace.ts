import diagnostics_channel from 'node:diagnostics_channel';

/**
 * Trace points along the live path, for the benchmark's per-stage breakdown (`npm run bench -- --only
 * naive --trace`, bench/trace-hook.ts): when a notification arrived, when its batch was handed out,
 * and when a broadcast started, wrote its first frame and its last. Nothing is measured or published
 * unless something subscribes (node:diagnostics_channel), so the path pays one property read each.
 * Times are wall-clock milliseconds with sub-millisecond resolution, comparable across processes.
 */
export const traceNotification = diagnostics_channel.channel('orders:listener:notification');
export const traceBatch = diagnostics_channel.channel('orders:feed:batch');
export const traceBroadcast = diagnostics_channel.channel('orders:realtime:broadcast');

export const traceNow = () => performance.timeOrigin + performance.now();
