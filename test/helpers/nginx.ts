import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { waitFor } from './wait.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Debian's nginx, or NGINX_PATH. */
export const NGINX_PATH = process.env.NGINX_PATH ?? '/usr/sbin/nginx';

/**
 * deploy/nginx.conf as shipped, in front of two instances on these ports and listening on `port`,
 * run from `dir` (its pid and error log go there); resolves once /healthz answers through it.
 */
export async function startNginx(dir: string, upstreams: [number, number], port: number): Promise<{ proc: ChildProcess; url: string }> {
  const conf = (await readFile(path.join(root, 'deploy/nginx.conf'), 'utf8'))
    .replaceAll('127.0.0.1:3001', `127.0.0.1:${upstreams[0]}`)
    .replaceAll('127.0.0.1:3002', `127.0.0.1:${upstreams[1]}`)
    .replace('listen 127.0.0.1:8080', `listen 127.0.0.1:${port}`);
  await writeFile(path.join(dir, 'nginx.conf'), conf);
  const proc = spawn(
    NGINX_PATH,
    ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;`],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      try {
        return (await fetch(`${url}/healthz`)).status === 200;
      } catch {
        return false;
      }
    },
    { timeout: 15_000, message: 'nginx up' },
  );
  return { proc, url };
}
