import { render } from 'preact';
import { Dashboard } from './dashboard.ts';
import './styles.css';
import { App } from './views/App.tsx';

const dashboard = new Dashboard();
const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App dashboard={dashboard} />, root);
}
void dashboard.start();
