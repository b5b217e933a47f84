import { useEffect, useRef, useState } from 'preact/hooks';
import type { Order } from '../../../src/contract/protocol.ts';
import type { Dashboard } from '../dashboard.ts';

/**
 * Keyboard shortcuts: `/` search, `n` new order, `j`/`k` next/previous order, `Enter` opens (edits) the
 * current order, `?` lists them. They act only when focus is not in a field or a dialog and no modifier
 * is held, so typing is never taken over. `j`/`k` move the focus itself (a row is focusable while it is
 * the current one), so a screen reader reads the row it lands on; the list (`?`) is a dialog, and a
 * visually hidden line at the top of the page says it exists. `aria-keyshortcuts` names the keys on the
 * controls they reach.
 */
const SHORTCUTS: readonly [string, string][] = [
  ['/', 'Search orders'],
  ['n', 'New order'],
  ['j', 'Next order'],
  ['k', 'Previous order'],
  ['Enter', 'Open (edit) the current order'],
  ['?', 'Show these shortcuts'],
];

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || el === document.body) return false;
  return el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) || el.closest('dialog[open], [role=menu]') !== null;
}

function rows(): HTMLTableRowElement[] {
  return [...document.querySelectorAll<HTMLTableRowElement>('tr[data-testid="order-row"]')];
}

function focusRow(row: HTMLTableRowElement | undefined): void {
  if (!row) return;
  row.tabIndex = -1;
  row.focus();
  row.scrollIntoView({ block: 'nearest' });
}

interface Props {
  dashboard: Dashboard;
  onNew?: (() => void) | undefined;
  onEdit?: ((order: Order) => void) | undefined;
}

export function Shortcuts({ dashboard, onNew, onEdit }: Props) {
  const help = useRef<HTMLDialogElement>(null);
  const [open, setOpen] = useState(false);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      const current = (document.activeElement as HTMLElement | null)?.closest<HTMLTableRowElement>('tr[data-testid="order-row"]');
      const all = () => rows();
      switch (e.key) {
        case '/':
          document.querySelector<HTMLInputElement>('.filters input[type="search"]')?.focus();
          break;
        case 'n':
          if (!onNew) return;
          onNew();
          break;
        case 'j':
        case 'k': {
          const list = all();
          const at = current ? list.indexOf(current) : -1;
          focusRow(e.key === 'j' ? list[Math.min(list.length - 1, at + 1)] : list[Math.max(0, at - 1)]);
          break;
        }
        case 'Enter': {
          // Only on a row itself: Enter on a button inside it is that button's.
          if (!current || document.activeElement !== current || !onEdit) return;
          const order = dashboard.displayed(Number(current.dataset.id));
          if (order) onEdit(order);
          break;
        }
        case '?':
          setOpen(true);
          break;
        default:
          return;
      }
      e.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [dashboard, onNew, onEdit]);

  // Rendered only while open: the page holds no dialog a role without edit rights could mistake for one.
  useEffect(() => {
    const dialog = help.current;
    if (open && dialog && !dialog.open) dialog.showModal();
  }, [open]);

  return (
    <>
      <p class="visually-hidden">Press question mark for keyboard shortcuts.</p>
      {open && (
        <dialog ref={help} class="dialog" aria-labelledby="shortcuts-title" onClose={() => setOpen(false)}>
          <h2 id="shortcuts-title">Keyboard shortcuts</h2>
          <dl class="shortcuts" data-testid="shortcuts">
            {SHORTCUTS.filter(([key]) => (key === 'n' ? onNew : key === 'Enter' ? onEdit : true)).map(([key, what]) => (
              <div key={key}>
                <dt>
                  <kbd>{key}</kbd>
                </dt>
                <dd>{what}</dd>
              </div>
            ))}
          </dl>
          <div class="actions">
            <button type="button" class="primary" onClick={() => help.current?.close()}>
              Close
            </button>
          </div>
        </dialog>
      )}
    </>
  );
}
