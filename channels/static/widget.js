/* The triage help widget: one script tag, no build step, no dependencies.
 *
 * Embed with one tag; the portal's backend signs the visitor's identity so the
 * conversation is verified: preferably data-user-token, a JWT (HS256 with the tenant's
 * widget_secret, sub = the address, exp at most 24 hours ahead), or data-user-hash =
 * HMAC-SHA256(widget_secret, lower-cased email), which never expires:
 *
 *   <script src="https://support.example/widget.js" data-tenant="acme"
 *           data-email="anna@supplier.example" data-name="Anna" data-user-token="eyJ…"
 *           data-lang="sv"></script>
 *
 * A launcher button opens a chat panel (its open state is kept in localStorage). Lines go
 * to the service's JSON API; answers arrive by server-sent events. The conversation's
 * token stays in localStorage, so a reload shows the history, for anonymous visitors too.
 * The widget's own texts come from the service (channels/static/i18n/<lang>.json), in the
 * visitor's language (data-lang, else the browser's), else the tenant's, else English; every
 * call names that language (?lang=), so the service's error sentences read in it too (a
 * client that branches on an error uses its "code", which never changes).
 * Every text from the service or a visitor is put on the page with textContent, never as HTML.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.tenant) { return; }
  var base = new URL(script.src, document.baseURI).origin;
  var tenant = script.dataset.tenant;
  var signedIn = (script.dataset.email || "").trim().toLowerCase();  // the portal's signed-in visitor, if any
  var userHash = script.dataset.userHash || "";
  var userToken = script.dataset.userToken || "";
  var visitorName = script.dataset.name || "";
  var wantedLang = script.dataset.lang || navigator.language || "";
  var api = base + "/widget/api/" + encodeURIComponent(tenant);
  var storeKey = "triage-widget:" + base + ":" + tenant;  // {token, email, signed}: the conversation
  var openKey = storeKey + ":open";  // "1" while the panel is open
  var browserKey = "triage-widget:" + base + ":browser";  // this browser's random key (see triage/service/chat.py)

  var state = {
    token: "", lastId: 0, verified: false, supportOpen: true, events: null, pending: null,
    email: signedIn, texts: null, lang: "", browser: ""
  };

  // -- small helpers ---------------------------------------------------------------------
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function t(key, values) {  // an interface text with {placeholders} filled in
    return state.texts[key].replace(/\{(\w+)\}/g, function (all, name) {
      return values && values[name] !== undefined ? String(values[name]) : all;
    });
  }

  function load(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }  // storage refused: memory only
  }

  function save(key, value) {
    try {
      if (value === null) { localStorage.removeItem(key); } else { localStorage.setItem(key, value); }
    } catch (e) { /* private mode: the page keeps it in memory */ }
  }

  function randomKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function onAccent(hex) {  // black or white text, whichever reads better on the tenant's colour
    var full = hex.length === 4 ? hex.replace(/[0-9a-f]/gi, "$&$&").slice(1) : hex.slice(1);
    var rgb = [0, 2, 4].map(function (i) { return parseInt(full.slice(i, i + 2), 16) / 255; });
    var lum = rgb.map(function (c) { return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); });
    return 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2] > 0.4 ? "#111" : "#fff";
  }

  // -- style: scoped to .triage-root, a full-screen panel under 480 px ----------------------
  var CSS =
    ".triage-root,.triage-root *{box-sizing:border-box}" +
    ".triage-root{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1b1b}" +
    ".triage-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    ".triage-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;display:flex;align-items:center;" +
    "gap:8px;min-height:52px;padding:0 20px 0 16px;border:0;border-radius:26px;cursor:pointer;font:inherit;" +
    "font-weight:600;background:var(--triage-accent);color:var(--triage-on-accent);box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".triage-launcher:focus-visible,.triage-w button:focus-visible,.triage-w a:focus-visible{outline:3px solid #f5b400;outline-offset:2px}" +
    ".triage-icon{font-size:20px;line-height:1}" +
    ".triage-w{position:fixed;right:20px;bottom:84px;z-index:2147483001;width:370px;height:min(580px,calc(100vh - 108px));" +
    "display:flex;flex-direction:column;background:#fff;border-radius:12px;overflow:hidden;box-shadow:0 8px 30px rgba(0,0,0,.28)}" +
    ".triage-w[hidden]{display:none}" +
    ".triage-w header{display:flex;align-items:center;gap:8px;padding:12px 8px 12px 16px;" +
    "background:var(--triage-accent);color:var(--triage-on-accent)}" +
    ".triage-heading{flex:1;margin:0;font-size:16px;font-weight:600}" +
    ".triage-ticket{display:block;font-size:12px;font-weight:400;opacity:.9}" +
    ".triage-close{width:36px;height:36px;border:0;border-radius:18px;background:transparent;color:inherit;" +
    "font-size:24px;line-height:1;cursor:pointer}.triage-close:hover{background:rgba(127,127,127,.25)}" +
    ".triage-status{padding:8px 16px;font-size:13px;color:#444;background:#f4f5f7;border-bottom:1px solid #e3e5e8}" +
    ".triage-log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}" +
    ".triage-line{white-space:pre-wrap;overflow-wrap:anywhere;padding:8px 12px;border-radius:12px;max-width:88%}" +
    ".triage-in{align-self:flex-end;background:var(--triage-accent);color:var(--triage-on-accent);border-bottom-right-radius:4px}" +
    ".triage-out{align-self:flex-start;background:#eef0f3;border-bottom-left-radius:4px}" +
    ".triage-who{display:block;font-size:12px;font-weight:600;opacity:.8}" +
    ".triage-articles{align-self:flex-start;max-width:88%;padding:8px 12px;border:1px solid #dfe2e6;border-radius:12px}" +
    ".triage-articles p{margin:0 0 6px;font-size:13px;color:#444}.triage-articles ul{margin:0;padding:0;list-style:none}" +
    ".triage-articles li{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;padding:4px 0}" +
    ".triage-articles a{color:var(--triage-accent);font-weight:600}" +
    ".triage-articles button{font:inherit;font-size:13px;padding:3px 10px;border:1px solid var(--triage-accent);" +
    "border-radius:14px;background:#fff;color:var(--triage-accent);cursor:pointer}" +
    ".triage-not-solved{margin-top:6px}.triage-done{margin:6px 0 0;font-size:13px;color:#2b5f2b}" +
    ".triage-note{padding:0 16px;font-size:12px;color:#555}.triage-error{padding:0 16px;font-size:13px;color:#a00}" +
    ".triage-error:empty{display:none}" +
    ".triage-w form{display:flex;flex-direction:column;gap:6px;padding:10px 12px 12px;border-top:1px solid #e3e5e8}" +
    ".triage-w input,.triage-w textarea{width:100%;font:inherit;padding:8px 10px;border:1px solid #b9bec6;border-radius:8px;" +
    "background:#fff;color:#1b1b1b}" +
    ".triage-w input:focus,.triage-w textarea:focus{outline:2px solid var(--triage-accent);outline-offset:0;border-color:transparent}" +
    ".triage-w textarea{height:64px;resize:none}.triage-row{display:flex;align-items:center;gap:8px}" +
    ".triage-keys{flex:1;font-size:12px;color:#666}" +
    ".triage-send{font:inherit;font-weight:600;padding:8px 18px;border:0;border-radius:8px;cursor:pointer;" +
    "background:var(--triage-accent);color:var(--triage-on-accent)}.triage-send:disabled{opacity:.6;cursor:wait}" +
    ".triage-transcript{margin:0 12px 8px;font:inherit;font-size:13px;padding:4px 8px;border:1px solid #b9bec6;" +
    "border-radius:8px;background:#fff;cursor:pointer}" +
    "@media (max-width:480px){.triage-w{inset:0;width:auto;height:auto;border-radius:0}" +
    ".triage-root.triage-is-open .triage-launcher{display:none}}";

  // -- the panel, built once the texts are known -------------------------------------------
  var ui = {};

  function build(status) {
    var root = el("div", "triage-root");
    root.style.setProperty("--triage-accent", status.color);
    root.style.setProperty("--triage-on-accent", onAccent(status.color));
    root.lang = status.lang;
    var style = el("style");
    style.textContent = CSS;
    document.head.appendChild(style);

    var panelId = "triage-panel-" + tenant.replace(/[^\w-]/g, "");
    ui.launcher = el("button", "triage-launcher");
    ui.launcher.type = "button";
    ui.launcher.setAttribute("aria-controls", panelId);
    ui.launcher.setAttribute("aria-expanded", "false");
    ui.launcher.append(el("span", "triage-icon", "?"), el("span", "", t("title")));
    ui.launcher.querySelector(".triage-icon").setAttribute("aria-hidden", "true");
    ui.launcher.setAttribute("aria-label", t("open"));

    ui.panel = el("section", "triage-w");
    ui.panel.id = panelId;
    ui.panel.hidden = true;
    ui.panel.setAttribute("role", "dialog");
    ui.panel.setAttribute("aria-labelledby", panelId + "-heading");
    var header = el("header");
    ui.heading = el("h2", "triage-heading", status.name + " \u2014 " + t("title"));
    ui.heading.id = panelId + "-heading";
    ui.ticket = el("span", "triage-ticket");
    ui.heading.appendChild(ui.ticket);
    ui.close = el("button", "triage-close", "\u00d7");
    ui.close.type = "button";
    ui.close.setAttribute("aria-label", t("close"));
    header.append(ui.heading, ui.close);

    ui.status = el("div", "triage-status");
    ui.log = el("div", "triage-log");
    ui.log.setAttribute("role", "log");
    ui.log.setAttribute("aria-live", "polite");
    ui.log.setAttribute("aria-label", t("title"));
    ui.log.tabIndex = 0;  // scrollable by keyboard
    ui.error = el("div", "triage-error");
    ui.error.setAttribute("role", "alert");
    ui.transcript = el("button", "triage-transcript", t("transcript"));
    ui.transcript.type = "button";
    ui.transcript.hidden = true;

    ui.form = el("form");
    ui.emailLabel = el("label", "triage-sr", t("email"));
    ui.emailLabel.htmlFor = panelId + "-email";
    ui.email = el("input", "triage-email");
    ui.email.id = panelId + "-email";
    ui.email.type = "email";
    ui.email.autocomplete = "email";
    ui.email.placeholder = t("email");
    ui.email.value = state.email;
    ui.email.hidden = ui.emailLabel.hidden = !!signedIn;
    var textLabel = el("label", "triage-sr", t("message"));
    textLabel.htmlFor = panelId + "-text";
    ui.text = el("textarea", "triage-text");
    ui.text.id = panelId + "-text";
    ui.text.placeholder = t("placeholder");
    var keys = el("span", "triage-keys", t("keys"));
    keys.id = panelId + "-keys";
    ui.text.setAttribute("aria-describedby", keys.id);
    ui.send = el("button", "triage-send", t("send"));
    ui.send.type = "submit";
    var row = el("div", "triage-row");
    row.append(keys, ui.send);
    ui.form.append(ui.emailLabel, ui.email, textLabel, ui.text, row);
    ui.panel.append(header, ui.status, ui.log, ui.error, ui.transcript, ui.form);
    root.append(ui.panel, ui.launcher);
    document.body.appendChild(root);
    ui.root = root;
    wire();
  }

  // -- open and close: a launcher, Esc, and the state kept across reloads ----------------------
  function setOpen(open, byUser) {
    ui.panel.hidden = !open;
    ui.root.classList.toggle("triage-is-open", open);
    ui.launcher.setAttribute("aria-expanded", String(open));
    save(openKey, open ? "1" : null);
    if (!byUser) { return; }
    if (open) {
      (ui.email.hidden || ui.email.value ? ui.text : ui.email).focus();
      ui.log.scrollTop = ui.log.scrollHeight;
    } else {
      ui.launcher.focus();
    }
  }

  function wire() {
    ui.launcher.addEventListener("click", function () { setOpen(ui.panel.hidden, true); });
    ui.close.addEventListener("click", function () { setOpen(false, true); });
    document.addEventListener("keydown", function (event) {  // Esc closes, wherever the focus is
      if (event.key === "Escape" && !ui.panel.hidden) { event.preventDefault(); setOpen(false, true); }
    });
    ui.text.addEventListener("keydown", function (event) {  // Enter sends, Shift+Enter is a new line
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ui.form.requestSubmit();
      }
    });
    ui.form.addEventListener("submit", submit);
    ui.transcript.addEventListener("click", mailTranscript);
  }

  // -- rendering lines and their suggested articles -------------------------------------------
  function show(line) {
    if (line.id <= state.lastId) { return; }
    state.lastId = line.id;
    if (line.ticket) { showTicket(line.ticket); }  // a line that was queued learns its number here
    var incoming = line.direction === "in";
    var who = incoming ? t("you") : (line.author === "agent" ? t("support") : t("automatic"));
    var node = el("div", "triage-line " + (incoming ? "triage-in" : "triage-out"));
    node.dataset.id = String(line.id);
    var label = el("strong", "triage-who", who + ": ");
    node.append(label, document.createTextNode(line.text));
    ui.log.appendChild(node);
    if (line.articles && line.articles.length) { ui.log.appendChild(suggestions(line)); }
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function suggestions(line) {
    var box = el("div", "triage-articles");
    box.dataset.line = String(line.id);
    box.appendChild(el("p", "", t("articles")));
    var list = el("ul");
    var buttons = [];
    line.articles.forEach(function (article) {
      var item = el("li");
      var link = el("a", "triage-article", article.title);
      if (/^https?:\/\//i.test(article.url)) { link.href = article.url; }
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.appendChild(el("span", "triage-sr", " " + t("new_window")));
      var solved = el("button", "triage-solved", t("solved"));
      solved.type = "button";
      solved.setAttribute("aria-label", t("solved") + ": " + article.title);
      solved.addEventListener("click", function () { answer(box, line.id, article.id, true); });
      buttons.push(solved);
      item.append(link, solved);
      list.appendChild(item);
    });
    var notSolved = el("button", "triage-not-solved", t("not_solved"));
    notSolved.type = "button";
    notSolved.addEventListener("click", function () { answer(box, line.id, "", false); });
    buttons.push(notSolved);
    box.append(list, notSolved);
    if (line.feedback) { answered(box, line.feedback); }
    return box;
  }

  function answered(box, feedback) {
    box.querySelectorAll("button").forEach(function (b) { b.remove(); });
    var done = el("p", "triage-done", t(feedback === "solved" ? "solved_done" : "not_solved_done"));
    done.setAttribute("role", "status");
    box.appendChild(done);
  }

  function answer(box, lineId, article, solved) {
    ui.error.textContent = "";
    request("POST", "/feedback", { token: state.token, line: lineId, article: article, solved: solved })
      .then(function () {
        answered(box, solved ? "solved" : "not-solved");
        ui.text.focus();
      })
      .catch(function (problem) { ui.error.textContent = problem.message; });
  }

  function showTicket(number) {
    ui.ticket.textContent = number ? t("ticket", { number: number }) : "";
  }

  function showSupport(support) {
    state.supportOpen = support.open;
    ui.status.textContent = support.open
      ? t("hours", { hours: support.hours })
      : t("closed", { back: support.back, timezone: support.timezone });
    ui.transcript.hidden = support.open || !state.verified || !state.token;
  }

  // -- talking to the service ------------------------------------------------------------------
  function request(method, path, body) {
    var lang = state.texts ? state.lang : wantedLang;  // the panel's language once it is known
    var url = api + path + (path.indexOf("?") < 0 ? "?" : "&") + "lang=" + encodeURIComponent(lang);
    return fetch(url, {
      method: method, headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined, mode: "cors", credentials: "omit"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var problem = new Error(data.error || (state.texts ? t("failed", { status: response.status })
            : "the help service answered " + response.status));
          problem.code = data.code || "";
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
    save(storeKey, JSON.stringify({ token: state.token, email: state.email, signed: !!signedIn }));
  }

  function startOver() {  // another address in this browser: a conversation of its own
    if (state.events) { state.events.close(); state.events = null; }
    ui.log.textContent = "";
    state.lastId = 0;
    showTicket(0);
  }

  function submit(event) {
    event.preventDefault();
    var text = ui.text.value;
    if (!text.trim()) { return; }
    if (!signedIn) { state.email = ui.email.value.trim().toLowerCase(); }
    // the same id for a resend of the same text: the service stores it once
    if (!state.pending || state.pending.text !== text) { state.pending = { text: text, id: randomKey() }; }
    ui.error.textContent = "";
    ui.send.disabled = true;
    ui.send.textContent = t("sending");
    request("POST", "/messages", {
      text: text, email: state.email, name: visitorName, user_hash: userHash, user_token: userToken,
      client_id: state.pending.id, token: state.token, browser: state.browser
    }).then(function (data) {
      state.pending = null;
      ui.text.value = "";
      if (state.token && data.token !== state.token) { startOver(); }
      state.token = data.token;
      state.verified = data.verified;
      remember();
      showTicket(data.ticket);
      ui.transcript.hidden = state.supportOpen || !state.verified;
      listen();
    }).catch(function (problem) {
      ui.error.textContent = problem.message;
      if (!state.email || problem.code === "email-needed") { ui.email.hidden = ui.emailLabel.hidden = false; }
    }).then(function () {
      ui.send.disabled = false;
      ui.send.textContent = t("send");
      if (!ui.panel.contains(document.activeElement)) { ui.text.focus(); }  // a disabled button drops the focus
    });
  }

  function mailTranscript() {
    request("POST", "/transcript", { token: state.token }).then(function (data) {
      ui.status.textContent = t("transcript_sent", { to: data.to });
      ui.transcript.hidden = true;
    }).catch(function (problem) { ui.error.textContent = problem.message; });
  }

  // -- start: the saved conversation, the texts and support hours, then the history -------------
  function restore() {
    var saved = null;
    try { saved = JSON.parse(load(storeKey) || "null"); } catch (e) { saved = null; }
    // A signed-in visitor continues only their own conversation; an anonymous page only an
    // anonymous one (the address typed last time is filled in again).
    var mine = saved && saved.token && (signedIn ? saved.signed && saved.email === signedIn : !saved.signed);
    if (mine) {
      state.token = saved.token;
      state.email = saved.email || "";
    } else if (saved) {
      save(storeKey, null);
    }
    state.browser = load(browserKey) || "";
    if (!/^[\w-]{22,64}$/.test(state.browser)) {
      state.browser = randomKey();
      save(browserKey, state.browser);
    }
  }

  restore();
  request("GET", "/status").then(function (status) {
    state.texts = status.texts;
    state.lang = status.lang;
    build(status);
    showSupport(status);
    setOpen(load(openKey) === "1", false);
    if (!state.token) { return; }
    request("GET", "/conversation?token=" + encodeURIComponent(state.token)).then(function (data) {
      state.verified = data.verified;
      showTicket(data.ticket);
      data.messages.forEach(show);
      listen();
    }).catch(function () {
      state.token = "";  // forgotten or expired: the next message starts a new conversation
      remember();
    });
  }).catch(function () { /* the help service is unreachable: no widget rather than a broken one */ });
})();
