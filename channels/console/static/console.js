// The console's behaviour beyond plain HTML: live inbox, keyboard shortcuts, help overlay.
// Every page works without it; nothing here puts text on the page except by the server's HTML.
(function () {
  "use strict";
  var help = document.getElementById("help");
  function typing(e) {
    var t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function openHelp(show) { if (help) { help.hidden = !show; if (show) help.querySelector("button").focus(); } }
  document.addEventListener("click", function (e) {
    if (e.target.closest("[data-help]")) openHelp(true);
    if (e.target.closest("[data-help-close]") || e.target === help) openHelp(false);
  });

  // -- the inbox: selection with j/k, live refresh over server-sent events --
  var selected = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll(".rows .row")); }
  function select(i) {
    var all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(all.length - 1, i));
    all.forEach(function (r, n) { r.classList.toggle("selected", n === selected); });
    var link = all[selected].querySelector("a");
    link.focus({ preventScroll: true });
    all[selected].scrollIntoView({ block: "nearest" });
  }
  var inbox = document.querySelector("[data-live]");
  if (inbox && window.EventSource) {
    var source = new EventSource(inbox.getAttribute("data-live"));
    source.addEventListener("tickets", function () {
      var form = document.querySelector("form.filters");
      var params = new URLSearchParams(new FormData(form));
      params.set("partial", "1");
      if (window.htmx) {
        htmx.ajax("GET", "/tickets?" + params.toString(), { target: "#results", swap: "outerHTML" });
      }
    });
  }
  document.body.addEventListener("htmx:afterSwap", function () {
    if (selected >= 0) select(selected);
  });

  // -- ticket page: Ctrl+Enter sends --
  document.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter" && e.target.tagName === "TEXTAREA" && e.target.form) {
      e.preventDefault();
      e.target.form.requestSubmit();
    }
  });

  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { openHelp(false); if (typing(e)) e.target.blur(); return; }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    var key = e.key;
    if (pendingG) { pendingG = false; if (key === "i") { location.href = "/tickets"; } return; }
    var click = function (id) { var b = document.getElementById(id); if (b) { e.preventDefault(); b.click(); } };
    var focus = function (id) { var t = document.getElementById(id); if (t) { e.preventDefault(); t.focus(); t.scrollIntoView({ block: "center" }); } };
    switch (key) {
      case "?": e.preventDefault(); openHelp(help && help.hidden); break;
      case "j": if (rows().length) { e.preventDefault(); select(selected + 1); } break;
      case "k": if (rows().length) { e.preventDefault(); select(selected - 1); } break;
      case "o": if (selected >= 0) { e.preventDefault(); rows()[selected].querySelector("a").click(); } break;
      case "/": focus("q"); break;
      case "c": e.preventDefault(); location.href = "/tickets/new"; break;
      case "g": pendingG = true; break;
      case "u": if (document.querySelector("[data-ticket-page]")) { e.preventDefault(); location.href = "/tickets"; } break;
      case "r": focus("reply"); break;
      case "n": focus("note"); break;
      case "a": click("act-approve"); break;
      case "e": click("act-resolve"); break;
    }
  });
})();
