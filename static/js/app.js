// medport page behaviour. Loaded with `defer` after htmx; no inline scripts anywhere.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var token = meta ? meta.getAttribute("content") : "";
    return token || "";
  }

  // Every htmx request carries the session's CSRF token as a header.
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRF-Token"] = token;
    }
  });
})();

// Times: the server writes UTC; show each in the reader's own time zone, keeping the UTC
// text as the tooltip (the element's title). Also for rows htmx swaps in later.
(function () {
  "use strict";

  var minutes = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  var seconds = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" };

  function localize(root) {
    if (typeof Intl === "undefined" || !root.querySelectorAll) {
      return;
    }
    var times = root.querySelectorAll("time[data-local]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) {
        continue;
      }
      var withSeconds = /:\d\d:\d\d UTC$/.test(el.getAttribute("title") || "");
      el.textContent = new Intl.DateTimeFormat(undefined, withSeconds ? seconds : minutes).format(at);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
  });
  // An outerHTML swap replaces the event's target, so look at the whole page (a few dozen
  // elements at most).
  document.addEventListener("htmx:afterSwap", function () {
    localize(document);
  });
})();

// The single sign-on callback hands the provider's answer on to a POST of our own, which
// the session cookie (SameSite=Strict) accompanies; a button stays for browsers without
// scripts.
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-autosubmit]");
    if (form) {
      form.submit();
    }
  });
})();

// Pages that lead to the sign-in provider go on by themselves. A form's redirect there would
// be blocked by the policy's `form-action 'self'`; a plain navigation is not.
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var link = document.querySelector("a[data-follow]");
    if (link) {
      window.location.replace(link.href);
    }
  });
})();

// A value shown once (an upload request's link) gets a copy button; without the clipboard
// API (or scripts) the button stays hidden and the field can be copied by hand.
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("button[data-copy]");
    var status = document.querySelector("[data-copy-status]");
    Array.prototype.forEach.call(buttons, function (button) {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field || !navigator.clipboard) {
        return;
      }
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(field.value).then(
          function () {
            if (status) {
              status.textContent = "Copied.";
            }
          },
          function () {
            field.select();
            if (status) {
              status.textContent = "Select the link and copy it.";
            }
          }
        );
      });
    });
  });
})();
