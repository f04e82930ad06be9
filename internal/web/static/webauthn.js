// keepwatch passkeys: the browser side of WebAuthn. keepwatch sends the
// options (JSON, binary fields in base64url) and a ceremony handle; this
// turns them into navigator.credentials calls and posts the result back as
// a form (with the page's CSRF token where there is a session). No inline
// script: the CSP forbids it.
(function () {
  'use strict';

  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toBytes(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    if (!buf) return null;
    var bytes = new Uint8Array(buf), bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = toBytes(pk.challenge);
    pk.user.id = toBytes(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = toBytes(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: pk };
  }

  function credentialJSON(c) {
    var r = c.response, out = {
      id: c.id, rawId: toB64url(c.rawId), type: c.type,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      authenticatorAttachment: c.authenticatorAttachment || undefined,
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      out.response.userHandle = toB64url(r.userHandle);
    }
    return JSON.stringify(out);
  }

  function post(url, fields) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Accept': 'application/json' },
      body: new URLSearchParams(fields)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) throw new Error((body.error && body.error.message) || ('HTTP ' + r.status));
        return body;
      });
    });
  }

  function showError(err) {
    var box = document.getElementById('passkey-error');
    var msg = err && err.name === 'NotAllowedError'
      ? 'The passkey was not used (cancelled or timed out).'
      : (err && err.message) || 'The passkey did not work.';
    if (box) { box.textContent = msg; box.hidden = false; }
  }

  // ceremony runs one WebAuthn ceremony: begin at base + '/begin', ask the
  // authenticator, finish at base + '/finish', then follow the redirect.
  function ceremony(base, fields, create, button) {
    var box = document.getElementById('passkey-error');
    if (box) box.hidden = true;
    if (button) button.disabled = true;
    return post(base + '/begin', fields).then(function (begun) {
      var opts = create ? creationOptions(begun.options) : requestOptions(begun.options);
      var p = create ? navigator.credentials.create(opts) : navigator.credentials.get(opts);
      return p.then(function (cred) {
        var done = Object.assign({}, fields, { ceremony: begun.ceremony, credential: credentialJSON(cred) });
        return post(base + '/finish', done);
      });
    }).then(function (finished) {
      document.documentElement.setAttribute('data-passkey', 'done');
      location.href = finished.redirect || '/';
    }).catch(function (err) {
      if (button) button.disabled = false;
      showError(err);
    });
  }

  function wire(selector, handler) {
    var el = document.querySelector(selector);
    if (!el) return;
    el.hidden = false;
    el.addEventListener(el.tagName === 'FORM' ? 'submit' : 'click', function (e) {
      e.preventDefault();
      handler(el);
    });
  }

  // Sign in with a passkey alone.
  wire('[data-passkey-signin]', function (b) {
    ceremony('/login/passkey', { next: b.getAttribute('data-next') || '/' }, false, b);
  });
  // The second factor after a password.
  wire('[data-passkey-verify]', function (b) {
    ceremony('/login/verify/passkey', { next: b.getAttribute('data-next') || '/' }, false, b);
  });
  // Enrolling a passkey when the account requires a second factor.
  wire('[data-passkey-enrol]', function (b) {
    ceremony('/login/verify/passkey', { next: b.getAttribute('data-next') || '/', name: 'Passkey' }, true, b);
  });
  // Adding a passkey on the account page.
  wire('form[data-passkey-register]', function (f) {
    ceremony(f.getAttribute('data-passkey-register'), {
      csrf: f.getAttribute('data-csrf'), name: (f.querySelector('[name=name]') || {}).value || ''
    }, true, f.querySelector('button'));
  });
})();
