// Progressive enhancement for the Registrierungs-Dienst pages (served from 'self', no inline JS):
// live domain check, progress polling, WebAuthn enrolment and login. Every page works without
// it except the WebAuthn buttons.
"use strict";

const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")
  + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));

async function postJSON(url, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function creationOptions(o) {
  const pk = o.publicKey;
  pk.challenge = unb64url(pk.challenge);
  pk.user.id = unb64url(pk.user.id);
  (pk.excludeCredentials || []).forEach((c) => { c.id = unb64url(c.id); });
  return { publicKey: pk };
}

function requestOptions(o) {
  const pk = o.publicKey;
  pk.challenge = unb64url(pk.challenge);
  (pk.allowCredentials || []).forEach((c) => { c.id = unb64url(c.id); });
  return { publicKey: pk };
}

function credentialJSON(c) {
  const r = c.response;
  const out = { id: c.id, rawId: b64url(c.rawId), type: c.type, clientExtensionResults: {},
    response: { clientDataJSON: b64url(r.clientDataJSON) } };
  if (r.attestationObject) {
    out.response.attestationObject = b64url(r.attestationObject);
    out.response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    out.response.authenticatorData = b64url(r.authenticatorData);
    out.response.signature = b64url(r.signature);
    out.response.userHandle = r.userHandle ? b64url(r.userHandle) : null;
  }
  return out;
}

function domainCheck(input) {
  const status = document.getElementById("domain-status");
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const value = input.value.trim();
      if (!value) { status.textContent = ""; return; }
      const response = await fetch(input.dataset.check + "?domain=" + encodeURIComponent(value),
        { credentials: "same-origin" });
      const data = await response.json();
      if (data.available) {
        status.textContent = input.dataset.ok;
        status.className = "hint ok";
      } else {
        status.textContent = input.dataset.taken + " " + (data.reason || data.error || "");
        status.className = "hint error";
      }
    }, 250);
  });
}

function pollService(box) {
  const tick = async () => {
    const response = await fetch(box.dataset.status, { credentials: "same-origin" });
    if (!response.ok) return;
    const s = await response.json();
    document.getElementById("service-progress").value = s.progress;
    document.getElementById("service-state").textContent = s.state;
    document.getElementById("service-step").textContent = s.description || s.step;
    document.getElementById("service-error").textContent = s.error || "";
    if (s.client_url) document.getElementById("service-client").textContent = s.client_url;
    if (!s.done) setTimeout(tick, 500);
  };
  if (box.dataset.done !== "true") setTimeout(tick, 300);
}

function webauthnEnrol(button) {
  const status = document.getElementById("webauthn-status");
  button.addEventListener("click", async () => {
    try {
      const options = await postJSON("/api/v1/webauthn/register/begin",
        { enrolment_token: button.dataset.enrolment });
      const credential = await navigator.credentials.create(creationOptions(options));
      await postJSON("/api/v1/webauthn/register/finish",
        { ceremony: options.ceremony, credential: credentialJSON(credential) });
      status.textContent = button.dataset.done;
    } catch (e) {
      status.textContent = button.dataset.failed + " " + e.message;
    }
  });
}

function webauthnLogin(button) {
  button.addEventListener("click", async () => {
    const form = document.getElementById("login-form");
    try {
      const options = await postJSON("/api/v1/login/webauthn/begin",
        { username: form.username.value, password: form.password.value });
      const assertion = await navigator.credentials.get(requestOptions(options));
      const session = await postJSON("/api/v1/login/webauthn/finish",
        { ceremony: options.ceremony, credential: credentialJSON(assertion) });
      const adopt = document.getElementById("session-form");
      adopt.access_token.value = session.access_token;
      adopt.submit();
    } catch (e) {
      let box = document.getElementById("login-error");
      if (!box) {
        box = document.createElement("p");
        box.id = "login-error";
        box.className = "error";
        form.before(box);
      }
      box.textContent = e.message;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const domain = document.querySelector("input[data-check]");
  if (domain) domainCheck(domain);
  const service = document.getElementById("service");
  if (service) pollService(service);
  const enrol = document.getElementById("webauthn-enrol");
  if (enrol) webauthnEnrol(enrol);
  const login = document.getElementById("webauthn-login");
  if (login) login.hidden = !window.PublicKeyCredential, webauthnLogin(login);
});
