import WebSocket from 'ws';

/** Opens a WebSocket and reports how the upgrade was answered: 101 with the socket, the refusal's status, or -1. */
export function openSocket(url: string, headers: Record<string, string> = {}): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
      ws.terminate();
    });
    ws.once('error', () => resolve({ status: -1 }));
  });
}
