// app.js: osprey's UI entry point. Routes the page path to a page module,
// keeps navigation inside the page (history API), and shows a page's
// failure as a message instead of a blank screen.

import { el } from './util.js';
import { renderExplorer } from './explorer.js';

const pages = [
  { re: /^\/(?:graph|query)?$/, nav: 'explore', load: async () => renderExplorer },
  { re: /^\/dashboards$/, nav: 'dashboards', load: async () => (await import('./dashboards.js')).renderDashboardList },
  { re: /^\/d\/([A-Za-z0-9_-]+)$/, nav: 'dashboards', load: async () => (await import('./dashboards.js')).renderDashboard },
  { re: /^\/targets$/, nav: 'targets', load: async () => (await import('./pages.js')).renderTargets },
  { re: /^\/rules$/, nav: 'rules', load: async () => (await import('./pages.js')).renderRules },
  { re: /^\/slos$/, nav: 'slos', load: async () => (await import('./slos.js')).renderSloList },
  { re: /^\/slos\/([^/]+)$/, nav: 'slos', load: async () => (await import('./slos.js')).renderSlo },
  { re: /^\/alerts$/, nav: 'alerts', load: async () => (await import('./pages.js')).renderAlerts },
  { re: /^\/silences$/, nav: 'silences', load: async () => (await import('./pages.js')).renderSilences },
  { re: /^\/(?:status|config|flags|tsdb-status)$/, nav: 'status', load: async () => (await import('./pages.js')).renderStatus },
];

let cleanup = null;
let generation = 0;

async function route() {
  const mine = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.warn('page cleanup failed', e);
    }
    cleanup = null;
  }
  const main = document.getElementById('main');
  const path = location.pathname;
  const page = pages.find((p) => p.re.test(path));
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', !!page && a.dataset.page === page.nav);
  if (!page) {
    main.replaceChildren(el('div', { class: 'nodata' }, `No page at ${path}. `, el('a', { href: '/' }, 'Go to the explorer.')));
    return;
  }
  const args = path.match(page.re).slice(1);
  try {
    const render = await page.load();
    if (mine !== generation) return;
    const c = await render(main, ...args);
    if (mine !== generation) {
      if (typeof c === 'function') c();
      return;
    }
    cleanup = typeof c === 'function' ? c : null;
  } catch (e) {
    main.replaceChildren(el('div', { class: 'error-box' }, `This page failed to load: ${e.message}`));
    console.warn(e);
  }
}

/** Navigates within the app without reloading the page. */
export function navigate(url) {
  history.pushState(null, '', url);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/ui/') || a.hasAttribute('download')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);
window.osprey = { navigate };
route();
