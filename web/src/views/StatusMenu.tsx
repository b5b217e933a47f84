import { useEffect, useRef, useState } from 'preact/hooks';
import type { OrderStatus } from '../../../src/contract/statuses.ts';
import { STATUS_LABEL } from '../format.ts';

/**
 * "Move to…" as a menu button, not a <select>: a select acts on every arrow key (Chromium changes a closed
 * select's value on ArrowDown, which sent the move at once), and a status move is not something to make
 * by browsing. Here arrow keys only open the menu and move within it; a move happens on an explicit
 * choice (Enter, Space or a click on an item). Escape and Tab close it; focus goes back to the button,
 * or, when the move leaves no further move (delivered, cancelled: the button goes away), to the row's
 * next control.
 *
 * The menu is a popover (the browser's top layer): the table's panel clips what overflows it (CSS
 * containment, for speed), and a menu on the last row must not be cut off. It is placed under the
 * button, or above it when there is no room below, and closes when the page scrolls under it.
 */
export function StatusMenu({
  id,
  next,
  busy,
  onChoose,
}: {
  id: number;
  next: readonly OrderStatus[];
  busy: boolean;
  onChoose: (to: OrderStatus) => void;
}) {
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const menu = useRef<HTMLDivElement>(null);
  const menuId = `move-menu-${id}`;

  const items = () => [...(menu.current?.querySelectorAll<HTMLElement>('[role=menuitem]') ?? [])];
  const focusItem = (index: number) => {
    const all = items();
    all[(index + all.length) % all.length]?.focus();
  };
  const close = (refocus: boolean) => {
    setOpen(false);
    if (refocus) button.current?.focus();
  };

  useEffect(() => {
    if (!open) return;
    const el = menu.current;
    const anchor = button.current;
    if (el && anchor) {
      el.showPopover();
      const at = anchor.getBoundingClientRect();
      const size = el.getBoundingClientRect();
      const below = at.bottom + 4 + size.height <= window.innerHeight;
      el.style.top = `${below ? at.bottom + 4 : Math.max(4, at.top - 4 - size.height)}px`;
      el.style.left = `${Math.max(4, Math.min(at.right - size.width, window.innerWidth - size.width - 4))}px`;
    }
    const outside = (e: PointerEvent) => {
      const t = e.target as Node;
      if (!menu.current?.contains(t) && !button.current?.contains(t)) setOpen(false);
    };
    const scrolled = () => setOpen(false);
    document.addEventListener('pointerdown', outside);
    window.addEventListener('scroll', scrolled, { passive: true });
    window.addEventListener('resize', scrolled);
    return () => {
      document.removeEventListener('pointerdown', outside);
      window.removeEventListener('scroll', scrolled);
      window.removeEventListener('resize', scrolled);
    };
  }, [open]);

  const openWith = (index: number) => {
    setOpen(true);
    requestAnimationFrame(() => focusItem(index));
  };

  const choose = (to: OrderStatus) => {
    const row = button.current?.closest('tr');
    close(true);
    onChoose(to);
    // The move may take this button away (a final status): keep focus in the row.
    setTimeout(() => focusInRow(row), 50);
  };

  return (
    <span class="status-menu">
      <button
        ref={button}
        type="button"
        class="move"
        aria-label={`Move to…, change status of order #${id}`}
        aria-haspopup="menu"
        aria-expanded={open}
        aria-controls={open ? menuId : undefined}
        aria-disabled={busy || undefined}
        onClick={() => {
          if (busy) return;
          if (open) close(false);
          else openWith(0);
        }}
        onKeyDown={(e) => {
          if (busy) return;
          if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
            e.preventDefault();
            openWith(e.key === 'ArrowDown' ? 0 : -1);
          }
        }}
      >
        Move to… <span aria-hidden="true">▾</span>
      </button>
      {open && (
        <div
          ref={menu}
          id={menuId}
          role="menu"
          popover="manual"
          aria-label={`Move order #${id} to`}
          class="menu"
          tabIndex={-1}
          onKeyDown={(e) => {
            const all = items();
            const at = all.indexOf(document.activeElement as HTMLElement);
            if (e.key === 'ArrowDown') focusItem(at + 1);
            else if (e.key === 'ArrowUp') focusItem(at - 1);
            else if (e.key === 'Home') focusItem(0);
            else if (e.key === 'End') focusItem(-1);
            else if (e.key === 'Escape') close(true);
            else if (e.key === 'Tab') setOpen(false);
            else return;
            if (e.key !== 'Tab') e.preventDefault();
          }}
        >
          {next.map((s) => (
            <button key={s} type="button" role="menuitem" tabIndex={-1} class={`menu-item menu-${s}`} onClick={() => choose(s)}>
              <span class={`dot dot-${s}`} aria-hidden="true" />
              {STATUS_LABEL[s]}
            </button>
          ))}
        </div>
      )}
    </span>
  );
}

/** Focus the row's status button, or when it is gone its first action: never the page body. */
export function focusInRow(row: Element | null | undefined): void {
  if (!row?.isConnected) return;
  const active = document.activeElement;
  if (active && active !== document.body && row.contains(active) && (active as HTMLElement).isConnected) return;
  if (active && active !== document.body && !row.contains(active)) return;
  row.querySelector<HTMLElement>('button.move, .row-actions button')?.focus();
}
