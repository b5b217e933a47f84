import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * GET /metrics when WORKERS > 1. A scrape reaches whichever worker node:cluster hands the connection
 * to, so that worker asks the primary for every worker's metrics (prom-client's AggregatorRegistry
 * collects them over IPC) and answers with all of them. Each worker's series carry a `worker` label
 * (its cluster id), so nothing is summed away: `sum without (worker)` gives the process-wide figure.
 */
const REQUEST = 'orders:metrics-request';
const RESPONSE = 'orders:metrics-response';

interface Reply {
  type: typeof RESPONSE;
  id: number;
  text?: string;
  error?: string;
}

/** In a worker: report `registry` to the primary's aggregation, labelled with this worker's id. */
export function joinClusterMetrics(registry: Registry): void {
  registry.setDefaultLabels({ worker: String(cluster.worker?.id ?? 0) });
  AggregatorRegistry.setRegistries([registry]);
  // The constructor installs prom-client's answer to the primary's requests in this process.
  new AggregatorRegistry();
}

let nextId = 0;

/** In a worker: every worker's metrics, in Prometheus text format, from the primary. */
export function clusterMetrics(timeoutMs = 6000): Promise<string> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMessage = (m: Reply) => {
      if (m?.type !== RESPONSE || m.id !== id) return;
      done();
      if (m.text !== undefined) resolve(m.text);
      else reject(new Error(m.error ?? 'no metrics from the primary'));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error('the primary did not answer with metrics'));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      process.off('message', onMessage);
    };
    process.on('message', onMessage);
    process.send?.({ type: REQUEST, id });
  });
}

/** In the primary: answer workers' requests with the aggregate. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, m: { type?: string; id?: number }) => {
    if (m?.type !== REQUEST) return;
    aggregator.clusterMetrics().then(
      (text) => worker.isConnected() && worker.send({ type: RESPONSE, id: m.id, text }),
      (err: Error) => worker.isConnected() && worker.send({ type: RESPONSE, id: m.id, error: err.message }),
    );
  });
}
