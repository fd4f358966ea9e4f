// medport upload page: resumable uploads over tus with the vendored tus-js-client. Loaded
// with `defer` after it; no inline scripts (CSP). Without JavaScript, or in a browser the
// client does not support, the page's plain form posts the file instead.
(function () {
  "use strict";

  // Large parts mean few requests; a lost connection costs at most one part.
  var CHUNK_SIZE = 50 * 1024 * 1024;
  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  // How far back the speed is measured, so the estimate follows the connection.
  var RATE_WINDOW_MS = 10000;
  // Unfinished uploads older than the server keeps them are not worth mentioning.
  var RESUMABLE_FOR_MS = 7 * 24 * 3600 * 1000;
  var UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  var form = document.getElementById("upload-form");
  var tus = window.tus;
  if (!form || !tus || !tus.isSupported) {
    return;
  }

  var bucketSelect = form.querySelector('select[name="bucket"]');
  var fileInput = form.querySelector('input[type="file"]');
  var dropzone = form.querySelector("[data-dropzone]");
  var queue = document.querySelector("[data-upload-queue]");
  var list = document.querySelector("[data-upload-list]");
  var template = document.getElementById("upload-item-template");
  var resumeNote = document.querySelector("[data-resume-note]");
  if (!bucketSelect || !fileInput || !dropzone || !queue || !list || !template) {
    return;
  }
  var endpoint = form.getAttribute("data-tus-endpoint") || "/tus/";
  var ownerKey = hash(form.getAttribute("data-owner") || "");
  var running = [];

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return (meta && meta.getAttribute("content")) || "";
  }

  // FNV-1a, twice with different seeds (64 bits): fingerprints in localStorage name no
  // file, so a shared workstation's storage does not list patients' file names.
  function fnv(text, seed) {
    var h = seed >>> 0;
    for (var i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 16777619) >>> 0;
    }
    return ("0000000" + h.toString(16)).slice(-8);
  }

  function hash(text) {
    return fnv(text, 2166136261) + fnv(text, 84696351);
  }

  function fingerprintPrefix() {
    return "medport-" + ownerKey + "-";
  }

  function fingerprint(file, bucket) {
    var parts = [bucket, file.name, file.type, file.size, file.lastModified];
    return fingerprintPrefix() + hash(parts.join("\u0000")) + "-" + file.size;
  }

  // Stores only what resuming needs (the upload URL), not tus-js-client's copy of the
  // metadata, which holds the file name.
  var baseStorage = tus.defaultOptions && tus.defaultOptions.urlStorage;
  var urlStorage = baseStorage && {
    findAllUploads: function () {
      return baseStorage.findAllUploads();
    },
    findUploadsByFingerprint: function (fp) {
      return baseStorage.findUploadsByFingerprint(fp);
    },
    removeUpload: function (key) {
      return baseStorage.removeUpload(key);
    },
    addUpload: function (fp, upload) {
      return baseStorage.addUpload(fp, {
        size: upload.size,
        creationTime: upload.creationTime,
        uploadUrl: upload.uploadUrl,
      });
    },
  };

  function formatBytes(bytes) {
    var units = ["KiB", "MiB", "GiB", "TiB"];
    if (bytes < 1024) {
      return bytes + (bytes === 1 ? " byte" : " bytes");
    }
    var value = bytes / 1024;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return (Math.floor(value * 10) / 10) + " " + units[unit];
  }

  function formatDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) {
      return "";
    }
    seconds = Math.ceil(seconds);
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    if (h > 0) {
      return h + " h " + m + " min";
    }
    if (m > 0) {
      return m + " min " + s + " s";
    }
    return s + " s";
  }

  // What to tell the person when an upload fails: the server's own message when it sent
  // one (plain text), otherwise a sentence for the usual causes.
  function errorMessage(err) {
    var res = err && err.originalResponse;
    if (res) {
      var status = res.getStatus();
      // Plain-text errors are "415 Title" then the message; show the message alone.
      var body = (res.getBody() || "").trim().replace(/^\d{3} [^\n]*\n/, "").trim();
      if (body && body.length <= 500 && body.charAt(0) !== "<") {
        return body;
      }
      if (status === 401 || status === 403) {
        return "Your session has ended or this bucket is not open to you. Sign in again, then choose the file again to resume.";
      }
      if (status === 413) {
        return "The file is too large for this bucket.";
      }
      if (status === 415) {
        return "This type of file is not accepted here.";
      }
      if (status === 429) {
        return "Too many requests. Wait a minute, then resume.";
      }
      if (status >= 500) {
        return "The server could not store the file right now. Resume in a moment.";
      }
      return "The server refused the upload (HTTP " + status + ").";
    }
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      return "The connection was lost. Resume when you are back online.";
    }
    return "The connection to the server failed. Resume to try again.";
  }

  function uploadIdOf(url) {
    var id = (url || "").replace(/\/+$/, "").split("/").pop();
    return UPLOAD_ID.test(id) ? id : null;
  }

  // After the last byte the server verifies (and maybe scans) the file: show its status
  // block, which keeps itself up to date through htmx until the server is done.
  function showServerStatus(slot, id) {
    var link = document.createElement("a");
    link.href = "/uploads/" + id;
    link.textContent = "Details";
    var status = document.createElement("div");
    slot.textContent = "";
    slot.appendChild(status);
    slot.appendChild(link);
    if (window.htmx) {
      status.setAttribute("hx-get", "/uploads/" + id + "/progress?view=status");
      status.setAttribute("hx-trigger", "load");
      status.setAttribute("hx-swap", "outerHTML");
      window.htmx.process(status);
    }
  }

  function field(item, name) {
    return item.querySelector('[data-field="' + name + '"]');
  }

  function button(item, action) {
    return item.querySelector('[data-action="' + action + '"]');
  }

  function start(file, bucket, bucketName) {
    var item = template.content.firstElementChild.cloneNode(true);
    var ui = {
      status: field(item, "status"),
      rate: field(item, "rate"),
      bar: field(item, "bar"),
      server: field(item, "server"),
      pause: button(item, "pause"),
      resume: button(item, "resume"),
      cancel: button(item, "cancel"),
    };
    // textContent: a file name is never read as markup.
    field(item, "name").textContent = file.name;
    field(item, "target").textContent = "to " + bucketName + ", " + formatBytes(file.size);
    ui.bar.setAttribute("aria-label", "Upload progress of " + file.name);
    list.appendChild(item);
    queue.hidden = false;

    var task = { active: false, samples: [] };
    running.push(task);

    function setState(text, active, canResume) {
      task.active = active;
      ui.status.textContent = text;
      ui.pause.hidden = !active;
      ui.resume.hidden = !canResume;
      if (!active) {
        ui.rate.textContent = "";
      }
    }

    function finish(text) {
      setState(text, false, false);
      ui.cancel.hidden = true;
    }

    var options = {
      endpoint: endpoint,
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      headers: { "X-CSRF-Token": csrfToken() },
      metadata: {
        filename: file.name,
        filetype: file.type || "application/octet-stream",
        bucket: bucket,
      },
      fingerprint: function () {
        return Promise.resolve(fingerprint(file, bucket));
      },
      removeFingerprintOnSuccess: true,
      onProgress: function (sent, total) {
        var now = Date.now();
        task.samples.push([now, sent]);
        while (task.samples.length > 2 && now - task.samples[0][0] > RATE_WINDOW_MS) {
          task.samples.shift();
        }
        ui.bar.value = total > 0 ? (sent / total) * 100 : 100;
        var first = task.samples[0];
        var seconds = (now - first[0]) / 1000;
        var speed = seconds > 0.5 ? (sent - first[1]) / seconds : 0;
        var text = formatBytes(sent) + " of " + formatBytes(total);
        if (speed > 0) {
          var left = formatDuration((total - sent) / speed);
          text += " at " + formatBytes(Math.round(speed)) + "/s" + (left ? ", about " + left + " left" : "");
        }
        ui.rate.textContent = text;
      },
      onSuccess: function () {
        ui.bar.value = 100;
        finish("Uploaded. The server is checking the file.");
        var id = uploadIdOf(upload.url);
        if (id) {
          showServerStatus(ui.server, id);
        }
      },
      onError: function (err) {
        setState("Failed: " + errorMessage(err), false, true);
      },
    };
    // Only when storage works (not in some private modes); otherwise the client's default.
    if (urlStorage) {
      options.urlStorage = urlStorage;
    }
    var upload = new tus.Upload(file, options);

    ui.pause.addEventListener("click", function () {
      upload.abort(false).then(function () {
        setState("Paused. Resume to continue from where it stopped.", false, true);
      });
    });

    ui.resume.addEventListener("click", function () {
      task.samples = [];
      setState("Resuming…", true, false);
      upload.start();
    });

    ui.cancel.addEventListener("click", function () {
      if (!window.confirm("Cancel the upload of " + file.name + "? What was sent so far is deleted.")) {
        return;
      }
      setState("Cancelling…", false, false);
      // `true` terminates the upload on the server (tus DELETE) and forgets it here.
      upload.abort(true).then(
        function () {
          ui.bar.value = 0;
          finish("Cancelled. Nothing of this file is kept.");
        },
        function (err) {
          var res = err && err.originalResponse;
          if (res && (res.getStatus() === 404 || res.getStatus() === 410)) {
            // Nothing left to cancel: it finished just before, or it expired.
            finish("Not cancelled: the upload is no longer in progress. Your upload history shows how it ended.");
            return;
          }
          setState("Could not cancel: " + errorMessage(err), false, true);
        }
      );
    });

    setState("Starting…", true, false);
    upload
      .findPreviousUploads()
      .then(function (previous) {
        previous.sort(function (a, b) {
          return String(b.creationTime).localeCompare(String(a.creationTime));
        });
        if (previous.length > 0) {
          upload.resumeFromPreviousUpload(previous[0]);
          ui.status.textContent = "Resuming an earlier upload of this file…";
        } else {
          ui.status.textContent = "Uploading…";
        }
      })
      .catch(function () {
        ui.status.textContent = "Uploading…";
      })
      .then(function () {
        upload.start();
      });
  }

  function addFiles(files) {
    var option = bucketSelect.options[bucketSelect.selectedIndex];
    if (!option) {
      return;
    }
    for (var i = 0; i < files.length; i++) {
      start(files[i], option.value, option.textContent);
    }
  }

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  // Take the form over: files start as soon as they are chosen or dropped.
  var plainOnly = form.querySelectorAll("[data-plain-only]");
  for (var i = 0; i < plainOnly.length; i++) {
    plainOnly[i].hidden = true;
  }
  fileInput.multiple = true;
  fileInput.required = false;
  dropzone.hidden = false;

  form.addEventListener("submit", function (event) {
    event.preventDefault();
  });

  fileInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(fileInput.files || []);
    fileInput.value = "";
    addFiles(files);
  });

  dropzone.addEventListener("click", function () {
    fileInput.click();
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      if (!hasFiles(event)) {
        return;
      }
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      dropzone.classList.add("is-over");
    });
  });

  ["dragleave", "dragend"].forEach(function (type) {
    dropzone.addEventListener(type, function () {
      dropzone.classList.remove("is-over");
    });
  });

  dropzone.addEventListener("drop", function (event) {
    if (!hasFiles(event)) {
      return;
    }
    event.preventDefault();
    dropzone.classList.remove("is-over");
    addFiles(Array.prototype.slice.call(event.dataTransfer.files));
  });

  // A file dropped beside the zone would make the browser open it, leaving the page and
  // stopping every upload.
  ["dragover", "drop"].forEach(function (type) {
    window.addEventListener(type, function (event) {
      if (hasFiles(event)) {
        event.preventDefault();
      }
    });
  });

  window.addEventListener("beforeunload", function (event) {
    var busy = running.some(function (task) {
      return task.active;
    });
    if (busy) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  // Say when this browser holds unfinished uploads of this user that can still resume.
  if (urlStorage && resumeNote) {
    urlStorage
      .findAllUploads()
      .then(function (all) {
        var prefix = "tus::" + fingerprintPrefix();
        var now = Date.now();
        var count = all.filter(function (entry) {
          var created = Date.parse(entry.creationTime);
          return (
            String(entry.urlStorageKey || "").indexOf(prefix) === 0 &&
            !(now - created > RESUMABLE_FOR_MS)
          );
        }).length;
        if (count > 0) {
          resumeNote.textContent =
            (count === 1 ? "One upload" : count + " uploads") +
            " from this browser did not finish. Choose the same file again, with the same bucket, to continue where it stopped.";
          resumeNote.hidden = false;
        }
      })
      .catch(function () {});
  }
})();
