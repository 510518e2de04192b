/* triage help widget: plain JavaScript, no build step.
 *
 * Embed with one tag; the portal's backend signs the visitor's identity so the
 * conversation is verified: preferably data-user-token, a JWT (HS256 with the tenant's
 * widget_secret, sub = the address, exp at most 24 hours ahead), or data-user-hash =
 * HMAC-SHA256(widget_secret, lower-cased email), which never expires:
 *
 *   <script src="https://support.example/widget.js" data-tenant="nordvik"
 *           data-email="anna@supplier.example" data-name="Anna" data-user-token="eyJ…"></script>
 *
 * Every text is put on the page with textContent, never innerHTML: whatever a visitor
 * or an agent writes is shown as text. The conversation token is kept in localStorage,
 * so a reload continues the conversation; new lines arrive by server-sent events.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.tenant) { return; }
  var base = new URL(script.src, document.baseURI).origin;
  var tenant = script.dataset.tenant;
  var email = (script.dataset.email || "").trim().toLowerCase();
  var userHash = script.dataset.userHash || "";
  var userToken = script.dataset.userToken || "";
  var visitorName = script.dataset.name || "";
  var api = base + "/widget/api/" + encodeURIComponent(tenant);
  var storeKey = "triage-widget:" + base + ":" + tenant;

  var state = { token: "", lastId: 0, verified: false, open: true, events: null, pending: null };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // -- the panel -------------------------------------------------------------------
  var style = el("style");
  style.textContent =
    ".triage-w{position:fixed;right:16px;bottom:16px;width:320px;font:14px/1.4 system-ui,sans-serif;" +
    "background:#fff;border:1px solid #bbb;border-radius:8px;box-shadow:0 2px 12px rgba(0,0,0,.2);z-index:2147483000}" +
    ".triage-w header{background:#234;color:#fff;padding:8px 10px;border-radius:8px 8px 0 0}" +
    ".triage-log{height:260px;overflow-y:auto;padding:8px;display:flex;flex-direction:column;gap:6px}" +
    ".triage-line{white-space:pre-wrap;word-wrap:break-word;padding:6px 8px;border-radius:6px;max-width:85%}" +
    ".triage-in{align-self:flex-end;background:#def}.triage-out{align-self:flex-start;background:#eee}" +
    ".triage-note{font-size:12px;color:#555;padding:0 8px}.triage-error{color:#a00;font-size:12px;padding:0 8px}" +
    ".triage-w form{display:flex;flex-direction:column;gap:4px;padding:8px}.triage-w textarea{height:60px}";
  document.head.appendChild(style);

  var panel = el("section", "triage-w");
  panel.setAttribute("aria-label", "Help");
  var header = el("header", "", "Help");
  var status = el("div", "triage-note triage-status");
  var log = el("div", "triage-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var error = el("div", "triage-error");
  error.setAttribute("role", "alert");
  var transcript = el("button", "triage-transcript", "Email me this conversation");
  transcript.type = "button";
  transcript.hidden = true;
  var form = el("form");
  var emailInput = el("input", "triage-email");
  emailInput.type = "email";
  emailInput.placeholder = "Your email address";
  emailInput.hidden = !!email;
  var textarea = el("textarea", "triage-text");
  textarea.placeholder = "How can we help?";
  textarea.setAttribute("aria-label", "Your message");
  var send = el("button", "triage-send", "Send");
  send.type = "submit";
  form.append(emailInput, textarea, send);
  panel.append(header, status, log, error, transcript, form);
  document.body.appendChild(panel);

  // -- rendering ---------------------------------------------------------------------
  function show(line) {
    if (line.id <= state.lastId) { return; }
    state.lastId = line.id;
    var who = line.direction === "in" ? "You" : (line.author === "agent" ? "Support" : "Support (automatic)");
    var node = el("div", "triage-line " + (line.direction === "in" ? "triage-in" : "triage-out"));
    node.dataset.id = String(line.id);
    node.append(el("strong", "", who + ": "), document.createTextNode(line.text));
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
  }

  function showTicket(number) {
    if (number) { header.textContent = "Help \u2014 ticket #" + number; }
  }

  function showSupport(support) {
    state.open = support.open;
    status.textContent = support.open
      ? "Support hours: " + support.hours
      : "Support is closed now and back " + support.back + ". Your message will be answered then.";
    transcript.hidden = support.open || !state.verified || !state.token;
  }

  // -- talking to the service ------------------------------------------------------------
  function request(method, path, body) {
    return fetch(api + path, {
      method: method, headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined, mode: "cors", credentials: "omit"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var problem = new Error(data.error || ("the help service answered " + response.status));
          problem.status = response.status;
          throw problem;
        }
        return data;
      });
    });
  }

  function listen() {
    if (state.events || !state.token) { return; }
    state.events = new EventSource(api + "/events?token=" + encodeURIComponent(state.token) + "&after=" + state.lastId);
    state.events.onmessage = function (event) { show(JSON.parse(event.data)); };
  }

  function remember() {
    try { localStorage.setItem(storeKey, JSON.stringify({ token: state.token, email: email })); } catch (e) { /* private mode */ }
  }

  function clientId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = textarea.value;
    if (!text.trim()) { return; }
    if (!email) { email = emailInput.value.trim().toLowerCase(); }
    // the same id for a resend of the same text: the service stores it once
    if (!state.pending || state.pending.text !== text) { state.pending = { text: text, id: clientId() }; }
    error.textContent = "";
    send.disabled = true;
    request("POST", "/messages", {
      text: text, email: email, name: visitorName, user_hash: userHash, user_token: userToken,
      client_id: state.pending.id, token: state.token
    }).then(function (data) {
      state.pending = null;
      textarea.value = "";
      if (data.token !== state.token && state.events) { state.events.close(); state.events = null; }
      state.token = data.token;
      state.verified = data.verified;
      remember();
      showTicket(data.ticket);
      transcript.hidden = state.open || !state.verified;
      listen();
    }).catch(function (problem) {
      error.textContent = problem.message;
      if (!email || problem.status === 400) { emailInput.hidden = false; }
    }).then(function () { send.disabled = false; });
  });

  transcript.addEventListener("click", function () {
    request("POST", "/transcript", { token: state.token }).then(function (data) {
      status.textContent = "The conversation is on its way to " + data.to + ".";
      transcript.hidden = true;
    }).catch(function (problem) { error.textContent = problem.message; });
  });

  // -- start: support hours, then the conversation this browser already has --------------------
  var saved = null;
  try { saved = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { saved = null; }
  if (saved && saved.token && saved.email === email) { state.token = saved.token; }
  if (!saved || saved.email !== email) { try { localStorage.removeItem(storeKey); } catch (e) { /* private mode */ } }

  request("GET", "/status").then(showSupport).catch(function (problem) { error.textContent = problem.message; });
  if (state.token) {
    request("GET", "/conversation?token=" + encodeURIComponent(state.token)).then(function (data) {
      state.verified = data.verified;
      showTicket(data.ticket);
      data.messages.forEach(show);
      showSupport(data.support);
      listen();
    }).catch(function () {
      state.token = "";  // forgotten or expired: the next message starts a new conversation
      try { localStorage.removeItem(storeKey); } catch (e) { /* private mode */ }
    });
  }
})();
