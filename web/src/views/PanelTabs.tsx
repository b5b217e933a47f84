export type Panel = 'orders' | 'activity';

/**
 * On a phone the orders and the Activity panel share the screen as two tabs: stacked, Activity came after
 * every order card (about 21,000 px down with 100 orders). On wider screens both are shown side by
 * side and this bar is hidden (styles.css); the choice only matters below 720 px.
 */
export function PanelTabs({ panel, onPanel }: { panel: Panel; onPanel: (panel: Panel) => void }) {
  const tab = (id: Panel, label: string) => (
    <button type="button" role="tab" aria-selected={panel === id} class="panel-tab" onClick={() => onPanel(id)}>
      {label}
    </button>
  );
  return (
    <div class="panel-tabs" role="tablist" aria-label="Show">
      {tab('orders', 'Orders')}
      {tab('activity', 'Activity')}
    </div>
  );
}
