import { useCallback, useEffect, useState } from 'preact/hooks';
import type { Order } from '../../../src/protocol.ts';
import type { Dashboard } from '../dashboard.ts';
import { useActivityNames } from '../history-activity.ts';
import { useOrderRoute } from '../history-route.ts';
import { watchTitle } from '../title-alerts.ts';
import { ActivityFeed } from './ActivityFeed.tsx';
import { AlertSettings } from './AlertSettings.tsx';
import { ConfirmCancel } from './ConfirmCancel.tsx';
import { ConnectionIndicator } from './ConnectionIndicator.tsx';
import { useDashboard } from './hooks.ts';
import { Notices } from './Notices.tsx';
import { ConfirmDelete, OrderDialog } from './OrderDialog.tsx';
import { OrderPage } from './OrderPage.tsx';
import { OrdersTable } from './OrdersTable.tsx';
import { type Panel, PanelTabs } from './PanelTabs.tsx';
import { Shortcuts } from './Shortcuts.tsx';
import { Summary } from './Summary.tsx';

/**
 * The dashboard. Controls the signed-in role may not use are not rendered at all (not merely hidden):
 * a viewer gets no create, edit, status or delete controls, an operator no delete. The server refuses
 * them anyway; this keeps the page from offering what will be refused.
 */
export function App({ dashboard, onSignOut }: { dashboard: Dashboard; onSignOut?: (() => void) | undefined }) {
  useDashboard(dashboard);
  const canEdit = dashboard.can('operator');
  const canDelete = dashboard.can('admin');
  const [editing, setEditing] = useState<Order | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Order | null>(null);
  const [panel, setPanel] = useState<Panel>('orders');
  const onEdit = useCallback((o: Order) => setEditing(o), []);
  const onDelete = useCallback((o: Order) => setDeleting(o), []);
  const onNew = useCallback(() => setEditing('new'), []);
  useEffect(() => watchTitle(dashboard.store), [dashboard]);
  const names = useActivityNames(dashboard);
  const openOrder = useOrderRoute();
  return (
    <>
      <a class="skip" href="#orders-title">
        Skip to orders
      </a>
      <header class="top">
        <h1>Orders</h1>
        <ConnectionIndicator dashboard={dashboard} />
        <div class="top-actions">
          <AlertSettings />
          {canEdit && (
            <button type="button" class="primary new-order" aria-keyshortcuts="n" onClick={() => setEditing('new')}>
              New order
            </button>
          )}
          {onSignOut && (
            <div class="identity">
              <span data-testid="identity">
                {dashboard.me.name} · <span class="role">{dashboard.me.role}</span>
              </span>
              <button type="button" onClick={onSignOut}>
                Sign out
              </button>
            </div>
          )}
        </div>
      </header>
      <main>
        <Notices dashboard={dashboard} />
        {openOrder !== null ? (
          <OrderPage dashboard={dashboard} id={openOrder} onEdit={canEdit ? onEdit : undefined} />
        ) : (
          <>
            <Summary dashboard={dashboard} />
            <PanelTabs panel={panel} onPanel={setPanel} />
            <div class="layout" data-panel={panel}>
              <OrdersTable dashboard={dashboard} onEdit={canEdit ? onEdit : undefined} onDelete={canDelete ? onDelete : undefined} />
              <ActivityFeed dashboard={dashboard} names={names} />
            </div>
          </>
        )}
      </main>
      {canEdit && <OrderDialog dashboard={dashboard} target={editing} onClose={() => setEditing(null)} />}
      <Shortcuts dashboard={dashboard} onNew={canEdit ? onNew : undefined} onEdit={canEdit ? onEdit : undefined} />
      {canEdit && <ConfirmCancel dashboard={dashboard} />}
      {canDelete && <ConfirmDelete order={deleting} onConfirm={(o) => void dashboard.remove(o)} onClose={() => setDeleting(null)} />}
    </>
  );
}
