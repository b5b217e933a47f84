import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

export interface MainProcess {
  child: ChildProcess;
  /** The URL of the first "orders service listening" line. */
  listening: Promise<string>;
  exited: Promise<number | null>;
  output(): { stdout: string; stderr: string };
}

/** Every process started here, for afterAll to kill whatever is left. */
export const mainProcesses = new Set<ChildProcess>();

/**
 * The process as a user runs it (src/main.ts, through tsx; `args` to run the compiled build instead),
 * with only `env` and PATH/HOME set: configuration comes from nothing else.
 */
export function startMain(env: Record<string, string>, args = ['--import', 'tsx', 'src/main.ts']): MainProcess {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  mainProcesses.add(child);
  child.once('exit', () => mainProcesses.delete(child));
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start within 30 s:\n${stdout}\n${stderr}`)), 30_000);
    child.stdout?.on('data', () => {
      const m = /"url":"(http:\/\/[^"]+)"/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}:\n${stdout}\n${stderr}`));
    });
  });
  listening.catch(() => undefined);
  return { child, listening, exited, output: () => ({ stdout, stderr }) };
}
