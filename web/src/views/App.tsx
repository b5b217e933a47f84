import { useCallback, useState } from 'preact/hooks';
import type { Order } from '../../../src/protocol.ts';
import type { Dashboard } from '../dashboard.ts';
import { ActivityFeed } from './ActivityFeed.tsx';
import { ConnectionIndicator } from './ConnectionIndicator.tsx';
import { useDashboard } from './hooks.ts';
import { Notices } from './Notices.tsx';
import { ConfirmDelete, OrderDialog } from './OrderDialog.tsx';
import { OrdersTable } from './OrdersTable.tsx';
import { Summary } from './Summary.tsx';

export function App({ dashboard }: { dashboard: Dashboard }) {
  useDashboard(dashboard);
  const [editing, setEditing] = useState<Order | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Order | null>(null);
  const onEdit = useCallback((o: Order) => setEditing(o), []);
  const onDelete = useCallback((o: Order) => setDeleting(o), []);
  return (
    <>
      <a class="skip" href="#orders-title">
        Skip to orders
      </a>
      <header class="top">
        <h1>Orders</h1>
        <ConnectionIndicator dashboard={dashboard} />
        <button type="button" class="primary new-order" onClick={() => setEditing('new')}>
          New order
        </button>
      </header>
      <main>
        <Notices dashboard={dashboard} />
        <Summary dashboard={dashboard} />
        <div class="layout">
          <OrdersTable dashboard={dashboard} onEdit={onEdit} onDelete={onDelete} />
          <ActivityFeed dashboard={dashboard} />
        </div>
      </main>
      <OrderDialog dashboard={dashboard} target={editing} onClose={() => setEditing(null)} />
      <ConfirmDelete order={deleting} onConfirm={(o) => void dashboard.remove(o)} onClose={() => setDeleting(null)} />
    </>
  );
}
