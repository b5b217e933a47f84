import type { Density } from '../density.ts';

const OPTIONS: { value: Density; label: string }[] = [
  { value: 'comfortable', label: 'Comfortable' },
  { value: 'compact', label: 'Compact' },
];

/**
 * Two toggle buttons in a labelled group (a fieldset): each says whether it is on (aria-pressed), and Tab, Enter and
 * Space work as for any button.
 */
export function DensityToggle({ density, onChange }: { density: Density; onChange: (d: Density) => void }) {
  return (
    <fieldset class="density" aria-label="Row density">
      {OPTIONS.map((o) => (
        <button key={o.value} type="button" class="chip" aria-pressed={density === o.value} onClick={() => onChange(o.value)}>
          {o.label}
        </button>
      ))}
    </fieldset>
  );
}
