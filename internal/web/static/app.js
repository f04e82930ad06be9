// keepwatch dashboard script: live updates over Server-Sent Events, a
// banner when they stop, the phone menu, bulk selection on the incident
// list, confirmations of destructive forms, copy buttons. Every page works
// without it; it only saves reloads. No inline script: the CSP forbids it.
(function () {
  'use strict';

  var live = document.getElementById('live');
  var badge = document.getElementById('live-status');
  var stale = document.getElementById('stale');

  function setStatus(state, text) {
    if (!badge) return;
    badge.hidden = false;
    badge.setAttribute('data-state', state);
    badge.querySelector('.live-text').textContent = text;
  }

  function utcNow() {
    return new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }

  // What the page shows may be old: say so plainly, and since when.
  var staleTimer = null, staleSince = '';
  function markStale() {
    if (!live || !stale || !stale.hidden) return;
    stale.querySelector('.stale-since').textContent = 'at ' + staleSince;
    stale.hidden = false;
    live.classList.add('is-stale');
    document.documentElement.setAttribute('data-stale', 'true');
  }
  function goingStale() {
    if (staleTimer || (stale && !stale.hidden)) return;
    staleSince = utcNow();
    // A stream that reconnects at once (a deploy, a proxy's timeout) is
    // not worth a banner.
    staleTimer = setTimeout(function () { staleTimer = null; markStale(); }, 4000);
  }
  function fresh() {
    if (staleTimer) { clearTimeout(staleTimer); staleTimer = null; }
    if (!stale) return;
    stale.hidden = true;
    if (live) live.classList.remove('is-stale');
    document.documentElement.removeAttribute('data-stale');
  }

  // Never replace a form someone is filling in or a selection being made.
  function busyIn(el) {
    var a = document.activeElement;
    if (a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName) && a.type !== 'checkbox' && (a.value !== '' || a.tagName === 'SELECT')) return a;
    if (el.querySelector('input[type=checkbox][name=id]:checked')) return el;
    return null;
  }

  if (live && window.EventSource && window.fetch) {
    var src = live.getAttribute('data-live');
    var slc = live.getAttribute('data-live-slc') || '';
    var timer = null, busy = false, again = false, waiting = false;

    var refresh = function () {
      if (busy) { again = true; return; }
      var holder = busyIn(live);
      if (holder) {
        if (!waiting) {
          waiting = true;
          var resume = function () { waiting = false; schedule(); };
          if (holder === live) live.addEventListener('change', function once() {
            if (!busyIn(live)) { live.removeEventListener('change', once); resume(); }
          });
          else holder.addEventListener('blur', resume, { once: true });
        }
        return;
      }
      busy = true;
      fetch(src, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (r) {
          if (r.status === 401) {
            location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
            return null;
          }
          if (!r.ok) throw new Error('HTTP ' + r.status);
          return r.text();
        })
        .then(function (html) {
          if (typeof html !== 'string') return;
          live.innerHTML = html;
          bulk();
          var n = Number(document.documentElement.getAttribute('data-live-updates') || 0) + 1;
          document.documentElement.setAttribute('data-live-updates', String(n));
        })
        .catch(function () { setStatus('off', 'Update failed'); goingStale(); })
        .then(function () {
          busy = false;
          if (again) { again = false; schedule(); }
        });
    };
    var schedule = function () {
      if (timer) return;
      timer = setTimeout(function () { timer = null; refresh(); }, 200);
    };

    var es = null, down = false;
    var connect = function () {
      es = new EventSource('/api/v1/events');
      es.addEventListener('open', function () {
        setStatus('on', 'Live');
        fresh();
        if (down) { down = false; schedule(); }
      });
      es.addEventListener('error', function () {
        down = true;
        setStatus('off', 'Reconnecting…');
        goingStale();
        // A refused stream (signed out, server restarted) is not retried by
        // the browser: check the page, then open a new stream.
        if (es.readyState === EventSource.CLOSED) {
          schedule();
          setTimeout(connect, 5000);
        }
      });
      es.addEventListener('change', function (e) {
        if (slc) {
          try { if (JSON.parse(e.data).slc !== slc) return; } catch (x) { return; }
        }
        schedule();
      });
    };
    connect();
    // Relative times ("3 min ago") drift while a page stays open.
    setInterval(schedule, 60000);
  }

  // The phone menu: the navigation folds behind one button.
  var toggle = document.getElementById('menu-toggle');
  if (toggle) {
    var top = document.getElementById('top');
    toggle.hidden = false;
    document.documentElement.classList.add('js-menu');
    toggle.addEventListener('click', function () {
      var open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      top.classList.toggle('menu-open', open);
    });
  }

  // Bulk selection on the incident list: "all", and how many are ticked.
  function bulk() {
    var form = document.getElementById('bulk');
    if (!form) return;
    var all = document.getElementById('select-all');
    var boxes = function () { return document.querySelectorAll('input[type=checkbox][name=id]'); };
    var count = function () {
      var n = 0;
      boxes().forEach(function (b) { if (b.checked) n++; });
      var out = document.getElementById('selected-count');
      if (out) out.textContent = n ? n + ' selected' : 'Tick incidents to act on several at once.';
      if (all) { all.checked = n > 0 && n === boxes().length; all.indeterminate = n > 0 && n < boxes().length; }
    };
    if (all) all.addEventListener('change', function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      count();
    });
    boxes().forEach(function (b) { b.addEventListener('change', count); });
    count();
  }
  bulk();

  // Typing a start time means starting then.
  document.addEventListener('input', function (e) {
    if (e.target.id !== 'm-start') return;
    var at = document.getElementById('m-start-at-choice');
    if (at && e.target.value !== '') at.checked = true;
  });

  // The channel form shows the fields of the chosen type only.
  var ctype = document.querySelector('[data-channel-type]');
  if (ctype) {
    var showFields = function () {
      document.querySelectorAll('[data-for]').forEach(function (f) {
        f.hidden = f.getAttribute('data-for').split(' ').indexOf(ctype.value) < 0;
      });
    };
    ctype.addEventListener('change', showFields);
    showFields();
  }

  var reload = document.getElementById('stale-reload');
  if (reload) reload.addEventListener('click', function (e) { e.preventDefault(); location.reload(); });

  document.addEventListener('submit', function (e) {
    var msg = e.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  document.addEventListener('click', function (e) {
    var b = e.target.closest ? e.target.closest('[data-copy]') : null;
    if (!b) return;
    var field = document.getElementById(b.getAttribute('data-copy'));
    if (!field) return;
    field.select();
    var done = function () { b.textContent = 'Copied'; };
    if (navigator.clipboard) navigator.clipboard.writeText(field.value).then(done, function () {});
    else if (document.execCommand('copy')) done();
  });
})();
