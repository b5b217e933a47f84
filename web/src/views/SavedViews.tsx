import { useState } from 'preact/hooks';
import type { Dashboard } from '../dashboard.ts';
import { deleteView, type SavedView, sameView, savedViews, saveView } from '../view-url.ts';

/**
 * Named views (filter, search and sort), kept in this browser's localStorage (view-url.ts): one click
 * brings one back. Buttons rather than a select, so moving through them with the keyboard loads nothing.
 */
export function SavedViews({ dashboard }: { dashboard: Dashboard }) {
  const [list, setList] = useState<SavedView[]>(() => savedViews());
  const [naming, setNaming] = useState(false);
  const [name, setName] = useState('');
  const query = dashboard.query;
  const save = (e: Event) => {
    e.preventDefault();
    const trimmed = name.trim().slice(0, 60);
    if (!trimmed) return;
    setList(saveView(trimmed, query));
    setNaming(false);
    setName('');
  };
  return (
    <div class="saved-views" data-testid="saved-views">
      {list.length > 0 && (
        <ul class="saved-list" aria-label="Saved views">
          {list.map((v) => {
            const on = sameView(v.view, query);
            return (
              <li key={v.name} class={`saved ${on ? 'on' : ''}`}>
                <button type="button" class="chip" aria-pressed={on} onClick={() => void dashboard.applyView(v.view)}>
                  {v.name}
                </button>
                <button
                  type="button"
                  class="ghost remove"
                  aria-label={`Delete saved view ${v.name}`}
                  onClick={() => setList(deleteView(v.name))}
                >
                  ×
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {naming ? (
        <form class="save-view" onSubmit={save}>
          <label>
            <span class="visually-hidden">Name of this view</span>
            <input
              type="text"
              maxLength={60}
              placeholder="Name of this view"
              value={name}
              onInput={(e) => setName(e.currentTarget.value)}
              // biome-ignore lint/a11y/noAutofocus: the field was just opened by the user's own click
              autoFocus
            />
          </label>
          <button type="submit">Save</button>
          <button type="button" class="ghost" onClick={() => setNaming(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <button type="button" class="ghost" onClick={() => setNaming(true)}>
          Save view
        </button>
      )}
    </div>
  );
}
