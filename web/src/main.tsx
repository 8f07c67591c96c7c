import { render } from 'preact';
import { App } from './App';
import { createServices } from './services';
import './styles.css';

const root = document.getElementById('app');
if (root) render(<App services={createServices()} />, root);
