// keepwatch dashboard script: live updates over Server-Sent Events,
// confirmations of destructive forms, copy buttons. Every page works without
// it; it only saves reloads. No inline script: the CSP forbids it.
(function () {
  'use strict';

  var live = document.getElementById('live');
  var badge = document.getElementById('live-status');

  function setStatus(state, text) {
    if (!badge) return;
    badge.hidden = false;
    badge.setAttribute('data-state', state);
    badge.querySelector('.live-text').textContent = text;
  }

  function typingIn(el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName) && (a.value !== '' || a.tagName === 'SELECT');
  }

  if (live && window.EventSource && window.fetch) {
    var src = live.getAttribute('data-live');
    var slc = live.getAttribute('data-live-slc') || '';
    var timer = null, busy = false, again = false;

    var refresh = function () {
      if (busy) { again = true; return; }
      // Never replace a form someone is filling in; catch up when they leave it.
      if (typingIn(live)) {
        document.activeElement.addEventListener('blur', schedule, { once: true });
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
          var n = Number(document.documentElement.getAttribute('data-live-updates') || 0) + 1;
          document.documentElement.setAttribute('data-live-updates', String(n));
        })
        .catch(function () { setStatus('off', 'Update failed'); })
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
        if (down) { down = false; schedule(); }
      });
      es.addEventListener('error', function () {
        down = true;
        setStatus('off', 'Reconnecting…');
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
