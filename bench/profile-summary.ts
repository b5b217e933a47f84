import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * `tsx bench/profile-summary.ts <file.cpuprofile>`: where a service process spent its CPU, from a
 * profile taken with `BENCH_CPU_PROFILE=<dir> npm run bench -- --only …` (node --cpu-prof): self time
 * by area (our modules by folder, libraries by package, Node internals, idle, GC) and the top functions.
 */
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (!file) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile>');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
profile.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);

function area(n: Node): string {
  const { functionName, url } = n.callFrame;
  if (functionName === '(idle)') return '(idle)';
  if (functionName === '(garbage collector)') return '(gc)';
  if (functionName === '(program)') return '(program)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  const ours = /\/(src\/[^/]+)\//.exec(url) ?? /\/(src)\/[^/]+$/.exec(url);
  if (ours) return ours[1] as string;
  if (url.startsWith('node:') || url === '') return 'node internals';
  return path.basename(url);
}

const areas = new Map<string, number>();
const functions = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id) as Node;
  const a = area(n);
  areas.set(a, (areas.get(a) ?? 0) + us);
  const name = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
  functions.set(name, (functions.get(name) ?? 0) + us);
}
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
const busy = total - (areas.get('(idle)') ?? 0);
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy`);
console.log('\nself time by area:');
for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1]).slice(0, 15)) console.log(`  ${pct(us)}  ${a}`);
console.log('\ntop functions (self):');
for (const [f, us] of [...functions].sort((x, y) => y[1] - x[1]).slice(0, 20)) {
  if (!f.startsWith('(idle)')) console.log(`  ${pct(us)}  ${f}`);
}
