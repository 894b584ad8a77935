// app.js: osprey's UI entry point. Routes the page path to a page module,
// keeps navigation inside the page (history API), and shows a page's
// failure as a message instead of a blank screen.

import { el, loadSession, session, api, can } from './util.js';
import { renderExplorer } from './explorer.js';

const pages = [
  // The home page, unless the URL carries an explorer query (links made
  // before there was a home page, and Prometheus's own `/?g0.expr=`-less
  // bookmarks of the explorer, keep opening the explorer).
  { re: /^\/$/, nav: 'home', load: async () => (['expr', 'g0.expr'].some((k) => new URLSearchParams(location.search).has(k)) ? renderExplorer : (await import('./home.js')).renderHome) },
  { re: /^\/(?:graph|query)$/, nav: 'explore', load: async () => renderExplorer },
  { re: /^\/models$/, nav: 'models', load: async () => (await import('./models.js')).renderModelList },
  { re: /^\/models\/([^/]+)$/, nav: 'models', load: async () => (await import('./models.js')).renderModel },
  { re: /^\/models\/([^/]+)\/compare$/, nav: 'models', load: async () => (await import('./models.js')).renderCompare },
  { re: /^\/dashboards$/, nav: 'dashboards', load: async () => (await import('./dashboards.js')).renderDashboardList },
  { re: /^\/d\/([A-Za-z0-9_-]+)$/, nav: 'dashboards', load: async () => (await import('./dashboards.js')).renderDashboard },
  { re: /^\/targets$/, nav: 'targets', load: async () => (await import('./pages.js')).renderTargets },
  { re: /^\/rules$/, nav: 'rules', load: async () => (await import('./pages.js')).renderRules },
  { re: /^\/slos$/, nav: 'slos', load: async () => (await import('./slos.js')).renderSloList },
  { re: /^\/slos\/([^/]+)$/, nav: 'slos', load: async () => (await import('./slos.js')).renderSlo },
  { re: /^\/traces$/, nav: 'traces', load: async () => (await import('./traces.js')).renderTraceSearch },
  { re: /^\/trace\/([0-9a-fA-F]{1,32})$/, nav: 'traces', load: async () => (await import('./traces.js')).renderTrace },
  { re: /^\/service-graph$/, nav: 'traces', load: async () => (await import('./traces.js')).renderServiceGraph },
  { re: /^\/cardinality$/, nav: 'cardinality', load: async () => (await import('./cardinality.js')).renderCardinality },
  { re: /^\/alerts$/, nav: 'alerts', load: async () => (await import('./pages.js')).renderAlerts },
  { re: /^\/silences$/, nav: 'silences', load: async () => (await import('./pages.js')).renderSilences },
  { re: /^\/(?:status|config|flags|tsdb-status)$/, nav: 'status', load: async () => (await import('./pages.js')).renderStatus },
  { re: /^\/login$/, nav: 'login', load: async () => renderLogin },
  { re: /^\/audit$/, nav: 'audit', load: async () => (await import('./pages.js')).renderAudit },
];

/** The sign-in form; back to `next` afterwards. */
function renderLogin(main) {
  const next = new URLSearchParams(location.search).get('next') || '/';
  const user = el('input', { id: 'login-user', autocomplete: 'username', placeholder: 'user' });
  const password = el('input', { id: 'login-password', type: 'password', autocomplete: 'current-password', placeholder: 'password' });
  const message = el('div', { id: 'login-message' });
  const submit = async (e) => {
    e.preventDefault();
    message.replaceChildren();
    try {
      const data = await api('/api/osprey/login', { method: 'POST', json: { username: user.value, password: password.value } });
      Object.assign(session, { authenticated: true, user: data.user, role: data.role, csrfToken: data.csrfToken });
      renderUserBar();
      navigate(next.startsWith('/') && !next.startsWith('//') ? next : '/');
    } catch (err) {
      message.replaceChildren(el('div', { class: 'error-box' }, err.message));
    }
  };
  if (!session.authenticationEnabled) {
    main.replaceChildren(el('div', { class: 'nodata' }, 'This server authenticates nobody: every visitor may do everything.'));
    return;
  }
  main.replaceChildren(
    el('form', { class: 'login', id: 'login-form', onsubmit: submit },
      el('h1', {}, 'Sign in'), user, password, el('button', { class: 'primary', type: 'submit', id: 'login-submit' }, 'Sign in'), message),
  );
  user.focus();
}

/** The user, role and sign-out in the top bar, or a warning that nothing is protected. */
function renderUserBar() {
  const bar = document.getElementById('userbar');
  if (!bar) return;
  if (!session.authenticationEnabled) {
    bar.replaceChildren(el('span', { class: 'unprotected', title: 'Start osprey with --web.config.file to require sign-in and TLS' }, 'Not protected: no web configuration'));
    return;
  }
  if (!session.authenticated) {
    bar.replaceChildren(el('a', { href: '/login' }, 'Sign in'));
    return;
  }
  const out = async () => {
    await api('/api/osprey/logout', { method: 'POST' }).catch(() => {});
    Object.assign(session, { authenticated: false, user: null, role: null, csrfToken: null });
    renderUserBar();
    navigate('/login');
  };
  bar.replaceChildren(
    ...[
      el('span', { id: 'whoami' }, `${session.user} (${session.role})`),
      can('admin') ? el('a', { href: '/audit' }, 'Audit') : null,
      el('a', { href: '#', id: 'logout', onclick: (e) => { e.preventDefault(); out(); } }, 'Sign out'),
    ].filter(Boolean),
  );
}

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
    main.replaceChildren(el('div', { class: 'nodata' }, `No page at ${path}. `, el('a', { href: '/' }, 'Go to the home page.')));
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
loadSession().then(() => {
  renderUserBar();
  if (session.authenticationEnabled && !session.authenticated && location.pathname !== '/login') {
    history.replaceState(null, '', `/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  route();
});
