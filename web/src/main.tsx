import { render } from 'preact';
import { registerServiceWorker } from './register-sw.ts';
import { Session } from './session.ts';
import './styles.css';
import { Root } from './views/Root.tsx';

const session = new Session();
const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<Root session={session} />, root);
}
void session.start();
registerServiceWorker();
