// medport upload page: resumable uploads over tus with the vendored tus-js-client. Loaded
// with `defer` after it; no inline scripts (CSP). Without JavaScript, or in a browser the
// client does not support, the page's plain form posts the file instead. Single files
// each upload on their own; a folder (a study, a CD) is sent as one batch (below).
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

  // Files a folder or CD holds that are not part of a study: skipped before anything is
  // sent, and named in the batch's summary. System files, and the programs and viewer
  // pages CDs carry. Kept short on purpose: anything else the server does not take (a
  // viewer's .xml, say) is sent, refused and listed among the batch's problems.
  var SKIPPED = {
    // Whole file names, lower case.
    names: [".ds_store", "thumbs.db", "desktop.ini", "autorun.inf"],
    // macOS resource forks ("._IM000001"), beside the files they describe.
    prefix: "._",
    // File name extensions, lower case.
    extensions: ["exe", "dll", "bat", "cmd", "com", "msi", "app", "sh", "jar", "inf", "ini", "htm", "html", "js", "css"],
    // Folders skipped whole: macOS archive leftovers and application bundles.
    folders: /^(__macosx|.+\.app)$/,
  };
  // Files of one batch in flight at once: a bounded queue, so thousands of small files
  // neither freeze the tab nor open thousands of requests.
  var BATCH_PARALLEL = 4;
  // The batch's progress is drawn at most this often.
  var RENDER_EVERY_MS = 250;
  // After the last byte: how often and how long to wait for the server's checks.
  var SETTLE_POLL_MS = 1000;
  var SETTLE_FOR_MS = 120000;
  // Unfinished batches remembered in this browser (the newest).
  var BATCHES_KEPT = 5;

  var form = document.getElementById("upload-form");
  var tus = window.tus;
  if (!form || !tus || !tus.isSupported) {
    return;
  }

  var bucketSelect = form.querySelector('select[name="bucket"]');
  var fileInput = form.querySelector('input[type="file"][name="file"]');
  var dropzone = form.querySelector("[data-dropzone]");
  var queue = document.querySelector("[data-upload-queue]");
  var list = document.querySelector("[data-upload-list]");
  var template = document.getElementById("upload-item-template");
  var resumeNote = document.querySelector("[data-resume-note]");
  if (!bucketSelect || !fileInput || !dropzone || !queue || !list || !template) {
    return;
  }
  var endpoint = form.getAttribute("data-tus-endpoint") || "/tus/";
  var batchesEndpoint = form.getAttribute("data-batches-endpoint") || "/batches";
  // A sender through an upload link has no upload pages to look at.
  var uploadPages = form.getAttribute("data-upload-pages") !== "off";
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
      var body = serverText(res.getBody());
      if (body) {
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

  // Plain-text errors are "415 Title" then the message: the message alone, or "".
  function serverText(body) {
    var text = (body || "").trim().replace(/^\d{3} [^\n]*\n/, "").trim();
    return text && text.length <= 500 && text.charAt(0) !== "<" ? text : "";
  }

  function statusOf(err) {
    var res = err && err.originalResponse;
    return res ? res.getStatus() : 0;
  }

  // tus-js-client's own rule (ask again unless the server refused), and also after "too
  // many requests"; not when creating an upload conflicts (a batch finished meanwhile).
  function shouldRetry(err) {
    var status = statusOf(err);
    var creating = !!err.originalRequest && err.originalRequest.getMethod() === "POST";
    if (status === 429) {
      return true;
    }
    var again = status < 400 || status >= 500 || (status === 409 && !creating) || status === 423;
    return again && !(typeof navigator !== "undefined" && navigator.onLine === false);
  }

  // A tus upload with the options every upload shares; `spec` adds the metadata, the
  // fingerprint and the event handlers.
  function newUpload(file, spec) {
    var metadata = { filetype: file.type || "application/octet-stream" };
    Object.keys(spec.metadata).forEach(function (key) {
      metadata[key] = spec.metadata[key];
    });
    var options = {
      endpoint: endpoint,
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      headers: { "X-CSRF-Token": csrfToken() },
      metadata: metadata,
      fingerprint: function () {
        return Promise.resolve(spec.fingerprint);
      },
      removeFingerprintOnSuccess: true,
      onShouldRetry: shouldRetry,
      onProgress: spec.onProgress,
      onSuccess: spec.onSuccess,
      onError: spec.onError,
    };
    // Only when storage works (not in some private modes); otherwise the client's default.
    if (urlStorage) {
      options.urlStorage = urlStorage;
    }
    return new tus.Upload(file, options);
  }

  // Picks up the newest earlier upload of the same file this browser knows of; resolves
  // to whether there was one (never rejects). The caller then starts the upload.
  function findEarlier(upload) {
    return upload
      .findPreviousUploads()
      .then(function (previous) {
        previous.sort(function (a, b) {
          return String(b.creationTime).localeCompare(String(a.creationTime));
        });
        if (previous.length > 0) {
          upload.resumeFromPreviousUpload(previous[0]);
          return true;
        }
        return false;
      })
      .catch(function () {
        return false;
      });
  }

  function uploadIdOf(url) {
    var id = (url || "").replace(/\/+$/, "").split("/").pop();
    return UPLOAD_ID.test(id) ? id : null;
  }

  // After the last byte the server verifies (and maybe scans) the file: show its status
  // block, which keeps itself up to date through htmx until the server is done.
  function showServerStatus(slot, id) {
    if (!uploadPages) {
      slot.textContent = "Received. The server checks it before it is stored for good.";
      return;
    }
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

    var upload = newUpload(file, {
      metadata: { filename: file.name, bucket: bucket },
      fingerprint: fingerprint(file, bucket),
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
    });

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
    findEarlier(upload).then(function (resumed) {
      ui.status.textContent = resumed ? "Resuming an earlier upload of this file…" : "Uploading…";
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

  // ---------- Folders and CDs: one batch ----------
  //
  // One folder chosen or dropped is a batch: declared to the server (POST /batches), each
  // file sent over tus naming the batch and its path in the folder, at most BATCH_PARALLEL
  // at once, then closed (POST /batches/{id}/finish) with a summary. The batch's id is kept
  // in localStorage under a signature of the folder (paths and sizes, hashed: no name is
  // stored), so choosing the same folder again after a reload or a crash continues it:
  // files the server already holds are not sent again, partly sent ones resume.

  var batchView = document.querySelector("[data-batch]");
  var folderField = form.querySelector("[data-folder-field]");
  var folderInput = document.getElementById("folder");
  var batchNote = document.querySelector("[data-batch-note]");
  var batchStoreKey = "medport-batches-" + ownerKey;
  var batch = null;
  var renderTimer = null;

  function batchPart(name) {
    return batchView.querySelector('[data-batch-part="' + name + '"]');
  }

  function batchButton(action) {
    return batchView.querySelector('[data-batch-action="' + action + '"]');
  }

  // What is skipped, by the name shown in the summary: the folder for a skipped folder
  // ("Viewer.app/"), the file's own path otherwise; null for a file to send.
  function skippedAs(path) {
    var parts = path.split("/");
    for (var i = 0; i < parts.length - 1; i++) {
      if (SKIPPED.folders.test(parts[i].toLowerCase())) {
        return parts.slice(0, i + 1).join("/") + "/";
      }
    }
    var name = parts[parts.length - 1].toLowerCase();
    var dot = name.lastIndexOf(".");
    var extension = dot > 0 ? name.slice(dot + 1) : "";
    if (
      SKIPPED.names.indexOf(name) !== -1 ||
      name.indexOf(SKIPPED.prefix) === 0 ||
      SKIPPED.extensions.indexOf(extension) !== -1
    ) {
      return path;
    }
    return null;
  }

  // ----- What this browser remembers of unfinished batches -----

  function savedBatches() {
    try {
      var all = JSON.parse(window.localStorage.getItem(batchStoreKey) || "[]");
      var now = Date.now();
      return Array.isArray(all)
        ? all.filter(function (b) {
            return b && typeof b.id === "string" && now - b.savedAt < RESUMABLE_FOR_MS;
          })
        : [];
    } catch (e) {
      return [];
    }
  }

  function storeBatches(all) {
    try {
      if (all.length > 0) {
        window.localStorage.setItem(batchStoreKey, JSON.stringify(all.slice(-BATCHES_KEPT)));
      } else {
        window.localStorage.removeItem(batchStoreKey);
      }
    } catch (e) {
      // No storage (some private modes): the batch still runs, it just cannot continue
      // after a reload.
    }
  }

  function forgetBatch(id) {
    storeBatches(
      savedBatches().filter(function (b) {
        return b.id !== id;
      })
    );
  }

  function rememberBatch(b) {
    var kept = savedBatches().filter(function (s) {
      return s.id !== b.id && s.signature !== b.signature;
    });
    kept.push({
      id: b.id,
      bucket: b.bucket,
      signature: b.signature,
      files: b.filesTotal,
      bytes: b.bytesTotal,
      skipped: b.skippedCount,
      savedAt: Date.now(),
    });
    storeBatches(kept);
  }

  function folderSignature(found) {
    var keys = found.map(function (f) {
      return f.path + "\u0000" + f.file.size;
    });
    keys.sort();
    return hash(keys.join("\u0001"));
  }

  function batchFingerprint(id, item) {
    var parts = [id, item.path, item.file.size, item.file.lastModified];
    return "medport-batch-" + ownerKey + "-" + hash(parts.join("\u0000")) + "-" + item.file.size;
  }

  // ----- The server's batch API (JSON; the session's CSRF token as a header) -----

  function batchApi(method, url, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return window.fetch(url, init).then(function (res) {
      return res.text().then(function (text) {
        if (!res.ok) {
          var err = new Error(serverText(text) || "The server answered HTTP " + res.status + ".");
          err.status = res.status;
          throw err;
        }
        return text ? JSON.parse(text) : null;
      });
    });
  }

  // The newest attempt at each path (the server lists them oldest first).
  function latestByPath(files) {
    var latest = {};
    (files || []).forEach(function (f) {
      latest[f.relative_path || f.filename] = f;
    });
    return latest;
  }

  // ----- Reading what was chosen or dropped -----

  function chosenFiles(files) {
    return Array.prototype.map.call(files, function (file) {
      return { file: file, path: (file.webkitRelativePath || file.name).normalize("NFC") };
    });
  }

  // One directory's entries: the reader hands them out in batches until an empty one.
  function readDirectory(directory) {
    var reader = directory.createReader();
    var all = [];
    return new Promise(function (resolve, reject) {
      (function more() {
        reader.readEntries(function (entries) {
          if (entries.length === 0) {
            resolve(all);
            return;
          }
          all = all.concat(Array.prototype.slice.call(entries));
          more();
        }, reject);
      })();
    });
  }

  // Every file under the dropped entries, one directory at a time; what cannot be read is
  // listed in `unreadable`.
  function walk(entries, found, unreadable) {
    return entries.reduce(function (done, entry) {
      return done.then(function () {
        var path = entry.fullPath.replace(/^\/+/, "").normalize("NFC");
        if (entry.isDirectory) {
          return readDirectory(entry).then(
            function (children) {
              return walk(children, found, unreadable);
            },
            function () {
              unreadable.push(path + "/");
            }
          );
        }
        return new Promise(function (resolve) {
          entry.file(
            function (file) {
              found.push({ file: file, path: path });
              resolve();
            },
            function () {
              unreadable.push(path);
              resolve();
            }
          );
        });
      });
    }, Promise.resolve());
  }

  // ----- Showing the batch -----

  function say(text) {
    batchPart("status").textContent = text;
  }

  function showButtons(running) {
    var live = batch && (batch.state === "sending" || batch.state === "paused");
    batchButton("pause").hidden = !(live && running);
    batchButton("resume").hidden = !(live && !running);
    batchButton("cancel").hidden = !live;
  }

  function scheduleRender() {
    if (renderTimer === null) {
      renderTimer = window.setTimeout(function () {
        renderTimer = null;
        renderProgress();
      }, RENDER_EVERY_MS);
    }
  }

  function renderProgress() {
    if (!batch) {
      return;
    }
    var b = batch;
    var sent = b.bytesDone + b.inFlight;
    var share = b.bytesTotal > 0 ? sent / b.bytesTotal : b.filesDone / Math.max(1, b.filesTotal);
    batchPart("bar").value = Math.min(100, share * 100);
    var text =
      b.filesDone + " of " + b.filesTotal + (b.filesTotal === 1 ? " file" : " files") +
      ", " + formatBytes(sent) + " of " + formatBytes(b.bytesTotal);
    var now = Date.now();
    if (b.state === "sending") {
      b.samples.push([now, sent, b.filesDone]);
      while (b.samples.length > 2 && now - b.samples[0][0] > RATE_WINDOW_MS) {
        b.samples.shift();
      }
      var first = b.samples[0];
      var seconds = (now - first[0]) / 1000;
      var speed = seconds > 0.5 ? (sent - first[1]) / seconds : 0;
      var pace = seconds > 0.5 ? (b.filesDone - first[2]) / seconds : 0;
      if (speed > 0) {
        // Many small files take longer than their bytes say: the later of the two.
        var secondsLeft = (b.bytesTotal - sent) / speed;
        if (pace > 0) {
          secondsLeft = Math.max(secondsLeft, (b.filesTotal - b.filesDone) / pace);
        }
        var left = formatDuration(secondsLeft);
        text += " at " + formatBytes(Math.round(speed)) + "/s" + (left ? ", about " + left + " left" : "");
      }
    }
    batchPart("counts").textContent = text;
    // Problems are added to the list as they come, never redrawn.
    var problems = batchPart("problems");
    for (; b.problemsShown < b.problems.length; b.problemsShown++) {
      problems.appendChild(problemItem(b.problems[b.problemsShown]));
    }
    batchPart("problems-block").hidden = b.problems.length === 0;
  }

  function problemItem(problem) {
    var li = document.createElement("li");
    var name = document.createElement("strong");
    name.className = "upload-item-name";
    // textContent: a file name is never read as markup.
    name.textContent = problem.path;
    li.appendChild(name);
    li.appendChild(document.createTextNode(": " + problem.message));
    return li;
  }

  function fillList(list, items) {
    list.textContent = "";
    items.forEach(function (item) {
      list.appendChild(item);
    });
  }

  function textItem(text) {
    var li = document.createElement("li");
    li.textContent = text;
    return li;
  }

  // The skipped files, a skipped folder once with its count.
  function skippedItems(b) {
    return Object.keys(b.skipped).map(function (name) {
      var count = b.skipped[name];
      return textItem(name.charAt(name.length - 1) === "/" ? name + " (" + count + (count === 1 ? " file)" : " files)") : name);
    });
  }

  // ----- Running a batch -----

  function beginBatch(found, unreadable) {
    if (batch && (batch.state === "sending" || batch.state === "paused" || batch.state === "closing")) {
      batchView.hidden = false;
      say("A folder is still uploading. Wait until it is done, or cancel it, before choosing another.");
      return;
    }
    var option = bucketSelect.options[bucketSelect.selectedIndex];
    if (!option) {
      return;
    }
    var b = {
      id: null,
      bucket: option.value,
      state: "starting",
      signature: folderSignature(found),
      items: [],
      skipped: {},
      skippedCount: 0,
      next: 0,
      active: [],
      filesDone: 0,
      filesTotal: 0,
      bytesDone: 0,
      bytesTotal: 0,
      inFlight: 0,
      alreadyStored: 0,
      problems: [],
      problemsShown: 0,
      samples: [],
    };
    found.forEach(function (f) {
      var as = skippedAs(f.path);
      if (as === null) {
        b.items.push(f);
        b.bytesTotal += f.file.size;
      } else {
        b.skipped[as] = (b.skipped[as] || 0) + 1;
        b.skippedCount++;
      }
    });
    b.filesTotal = b.items.length;
    unreadable.forEach(function (path) {
      b.problems.push({ path: path, message: "This browser could not read it." });
    });
    batch = b;
    batchPart("problems").textContent = "";
    batchPart("summary").hidden = true;
    batchPart("progress").hidden = false;
    batchView.hidden = false;
    if (batchNote) {
      batchNote.hidden = true;
    }
    showButtons(false);
    renderProgress();
    if (b.items.length === 0) {
      b.state = "done";
      say(
        found.length === 0
          ? "The folder holds no files."
          : "Nothing to send: every file of the folder is one that is skipped."
      );
      showSummary(null);
      return;
    }
    var earlier = savedBatches().filter(function (s) {
      return s.signature === b.signature;
    })[0];
    say("Starting…");
    (earlier ? continueBatch(b, earlier) : Promise.resolve(false))
      .then(function (continued) {
        if (continued) {
          return;
        }
        return batchApi("POST", batchesEndpoint, {
          bucket: b.bucket,
          files: b.filesTotal,
          bytes: b.bytesTotal,
        }).then(function (created) {
          b.id = created.id;
          rememberBatch(b);
          say(
            "Uploading " + b.filesTotal + (b.filesTotal === 1 ? " file" : " files") + " (" +
              formatBytes(b.bytesTotal) + ") to " + option.textContent + "." +
              (b.skippedCount > 0 ? " " + b.skippedCount + " skipped: see the summary at the end." : "")
          );
        });
      })
      .then(
        function () {
          b.state = "sending";
          showButtons(true);
          pump();
        },
        function (err) {
          b.state = "done";
          showButtons(false);
          say("The folder upload could not start: " + err.message);
        }
      );
  }

  // The same folder as a batch this browser left unfinished: ask the server what it holds,
  // and send only the rest. Resolves to false when that batch cannot go on (finished, gone).
  function continueBatch(b, earlier) {
    return batchApi("GET", batchesEndpoint + "/" + encodeURIComponent(earlier.id)).then(
      function (status) {
        if (status.finished_at) {
          forgetBatch(earlier.id);
          return false;
        }
        b.id = status.id;
        b.bucket = status.bucket;
        // The batch keeps its bucket; the list shows it when it is there.
        var option = Array.prototype.filter.call(bucketSelect.options, function (o) {
          return o.value === b.bucket;
        })[0];
        if (option) {
          bucketSelect.value = b.bucket;
        }
        var held = latestByPath(status.files);
        b.items = b.items.filter(function (item) {
          var f = held[item.path];
          var done = !!f && f.size === item.file.size && (f.status === "completed" || f.status === "completing");
          if (done) {
            b.filesDone++;
            b.bytesDone += item.file.size;
            b.alreadyStored++;
          }
          return !done;
        });
        b.filesTotal = b.filesDone + b.items.length;
        rememberBatch(b);
        say(
          "This folder's upload continues" + (option ? " in " + option.textContent : "") + ": " +
            b.alreadyStored + " of " + b.filesTotal + " files were already stored. " +
            (b.items.length === 0 ? "Nothing is left to send." : "The other " + b.items.length + " are being sent.")
        );
        return true;
      },
      function (err) {
        if (err.status === 404) {
          forgetBatch(earlier.id);
          return false;
        }
        throw err;
      }
    );
  }

  // Starts files until BATCH_PARALLEL are in flight; closes the batch when none is left.
  function pump() {
    var b = batch;
    if (b.state !== "sending") {
      return;
    }
    while (b.active.length < BATCH_PARALLEL && b.next < b.items.length) {
      sendFile(b, b.items[b.next++]);
    }
    if (b.active.length === 0 && b.next >= b.items.length) {
      closeBatch(b);
    }
  }

  function sendFile(b, item) {
    var task = { item: item, sent: 0, ready: false, upload: null };
    b.active.push(task);
    task.upload = newUpload(item.file, {
      metadata: {
        filename: item.file.name,
        relativePath: item.path,
        batch: b.id,
        bucket: b.bucket,
      },
      fingerprint: batchFingerprint(b.id, item),
      onProgress: function (sent) {
        b.inFlight += sent - task.sent;
        task.sent = sent;
        scheduleRender();
      },
      onSuccess: function () {
        fileEnded(b, task, null);
      },
      onError: function (err) {
        fileFailed(b, task, err);
      },
    });
    findEarlier(task.upload).then(function () {
      task.ready = true;
      if (b.state === "sending") {
        task.upload.start();
      }
    });
  }

  function fileEnded(b, task, problem) {
    var at = b.active.indexOf(task);
    if (at === -1) {
      return;
    }
    b.active.splice(at, 1);
    b.inFlight -= task.sent;
    b.bytesDone += task.item.file.size;
    b.filesDone++;
    if (problem) {
      b.problems.push({ path: task.item.path, message: problem });
    }
    scheduleRender();
    pump();
  }

  // A refusal is this file's problem and the batch goes on; a lost connection or a server
  // error (after tus-js-client's own retries) pauses the whole batch, to resume; an ended
  // session or a closed batch stops it.
  function fileFailed(b, task, err) {
    if (b.state !== "sending") {
      return;
    }
    var status = statusOf(err);
    if (status === 401 || status === 403) {
      pauseBatch(b, "Your session has ended. Sign in again in another tab, then resume here.");
    } else if (status === 409 && err.originalRequest && err.originalRequest.getMethod() === "POST") {
      pauseBatch(b, errorMessage(err));
    } else if (status >= 400 && status < 500) {
      fileEnded(b, task, errorMessage(err));
    } else {
      pauseBatch(b, "Paused: " + errorMessage(err));
    }
  }

  function pauseBatch(b, message) {
    if (b.state !== "sending") {
      return;
    }
    b.state = "paused";
    b.active.forEach(function (task) {
      task.upload.abort(false);
    });
    say(message);
    showButtons(false);
    renderProgress();
  }

  function resumeBatch(b) {
    if (b.state !== "paused") {
      return;
    }
    b.state = "sending";
    b.samples = [];
    say("Uploading the rest of the folder…");
    showButtons(true);
    b.active.forEach(function (task) {
      // One whose earlier upload is still being looked up starts when that is done.
      if (task.ready) {
        task.upload.start();
      }
    });
    pump();
  }

  function cancelBatch(b) {
    if (!window.confirm("Cancel the upload of this folder? Files already stored are kept; partly sent files are deleted.")) {
      return;
    }
    b.state = "closing";
    b.cancelled = true;
    showButtons(false);
    say("Cancelling…");
    // `true` deletes each partly sent file on the server (tus DELETE) and forgets it here.
    Promise.all(
      b.active.map(function (task) {
        return task.upload.abort(true).catch(function () {});
      })
    ).then(function () {
      b.active = [];
      b.inFlight = 0;
      finishBatch(b);
    });
  }

  // Every file was sent or refused: wait (a little) for the server's last checks, then
  // close the batch and show its summary.
  function closeBatch(b) {
    b.state = "closing";
    showButtons(false);
    renderProgress();
    say("Every file is sent. The server is checking the last ones…");
    var until = Date.now() + SETTLE_FOR_MS;
    (function poll() {
      batchApi("GET", batchesEndpoint + "/" + encodeURIComponent(b.id)).then(
        function (status) {
          var latest = latestByPath(status.files);
          var checking = Object.keys(latest).some(function (path) {
            return latest[path].status === "completing";
          });
          if (checking && Date.now() < until) {
            window.setTimeout(poll, SETTLE_POLL_MS);
          } else {
            finishBatch(b);
          }
        },
        function (err) {
          closeFailed(b, err);
        }
      );
    })();
  }

  function finishBatch(b) {
    b.state = "closing";
    batchApi("POST", batchesEndpoint + "/" + encodeURIComponent(b.id) + "/finish", { skipped: b.skippedCount }).then(
      function (status) {
        b.state = "done";
        forgetBatch(b.id);
        showSummary(status);
      },
      function (err) {
        closeFailed(b, err);
      }
    );
  }

  // The summary could not be fetched: every file is on its way; offer to try again.
  function closeFailed(b, err) {
    b.state = "paused";
    say("Could not close the folder upload: " + err.message + " Resume to try again.");
    showButtons(false);
  }

  // The summary: the server's view of each path's newest attempt, the problems only this
  // browser saw (a file refused before the server kept a record), and what was skipped.
  function showSummary(status) {
    var b = batch;
    var latest = latestByPath(status && status.files);
    var stored = 0;
    var duplicates = 0;
    var problems = [];
    var named = {};
    Object.keys(latest).forEach(function (path) {
      var f = latest[path];
      if (f.status === "completed") {
        stored++;
      }
      if (f.dicom === "duplicate") {
        duplicates++;
      }
      // Files cancelled here are not problems: they are what was asked for.
      if (f.problem && !(b.cancelled && f.status === "aborted")) {
        problems.push({ path: path, message: f.problem });
        named[path] = true;
      }
    });
    b.problems.forEach(function (p) {
      if (!named[p.path] && !(latest[p.path] && latest[p.path].status === "completed")) {
        problems.push(p);
      }
    });
    renderProgress();
    batchPart("progress").hidden = true;
    batchPart("problems-block").hidden = true;
    showButtons(false);
    batchPart("stored").textContent = stored + " of " + (b.filesTotal || 0);
    batchPart("duplicates").textContent = String(duplicates);
    batchPart("problem-count").textContent = String(problems.length);
    batchPart("skipped-count").textContent = String(b.skippedCount);
    fillList(batchPart("summary-problems"), problems.map(problemItem));
    batchPart("summary-problems").parentElement.hidden = problems.length === 0;
    fillList(batchPart("summary-skipped"), skippedItems(b));
    batchPart("summary-skipped").parentElement.hidden = b.skippedCount === 0;
    batchPart("summary").hidden = false;
    if (!status) {
      return;
    }
    var words = b.cancelled ? "Cancelled. " : "Done. ";
    words += stored + " of " + b.filesTotal + (b.filesTotal === 1 ? " file" : " files") + " stored";
    if (problems.length > 0) {
      words += ", " + problems.length + (problems.length === 1 ? " with a problem" : " with problems");
    }
    if (b.skippedCount > 0) {
      words += ", " + b.skippedCount + " skipped";
    }
    say(words + ".");
  }

  // ----- Wiring -----

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  // The dropped entries, taken at once (the browser forgets them after the drop event);
  // null when none is a folder, which leaves single files to upload on their own.
  function droppedFolders(event) {
    var items = event.dataTransfer.items;
    if (!items || !items.length || typeof items[0].webkitGetAsEntry !== "function") {
      return null;
    }
    var entries = [];
    for (var i = 0; i < items.length; i++) {
      var entry = items[i].kind === "file" ? items[i].webkitGetAsEntry() : null;
      if (entry) {
        entries.push(entry);
      }
    }
    return entries.some(function (e) {
      return e.isDirectory;
    })
      ? entries
      : null;
  }

  var batchReady = !!(batchView && folderField && folderInput && "webkitdirectory" in folderInput);

  // Take the form over: files start as soon as they are chosen or dropped.
  var plainOnly = form.querySelectorAll("[data-plain-only]");
  for (var i = 0; i < plainOnly.length; i++) {
    plainOnly[i].hidden = true;
  }
  fileInput.multiple = true;
  fileInput.required = false;
  dropzone.hidden = false;
  if (batchReady) {
    folderField.hidden = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
  });

  fileInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(fileInput.files || []);
    fileInput.value = "";
    addFiles(files);
  });

  if (batchReady) {
    folderInput.addEventListener("change", function () {
      var found = chosenFiles(folderInput.files || []);
      folderInput.value = "";
      beginBatch(found, []);
    });
    // The button pressed hides: keyboard focus goes to the one shown in its place.
    var handOver = function (from, to, action) {
      var focused = document.activeElement === batchButton(from);
      action();
      if (focused && !batchButton(to).hidden) {
        batchButton(to).focus();
      }
    };
    batchButton("pause").addEventListener("click", function () {
      handOver("pause", "resume", function () {
        pauseBatch(batch, "Paused. Resume to continue from where it stopped.");
      });
    });
    batchButton("resume").addEventListener("click", function () {
      handOver("resume", "pause", function () {
        if (batch.state === "paused" && batch.id && batch.next >= batch.items.length && batch.active.length === 0) {
          // Only the closing is left to do.
          closeBatch(batch);
        } else {
          resumeBatch(batch);
        }
      });
    });
    batchButton("cancel").addEventListener("click", function () {
      cancelBatch(batch);
    });
  }

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
    var folders = batchReady ? droppedFolders(event) : null;
    if (!folders) {
      addFiles(Array.prototype.slice.call(event.dataTransfer.files));
      return;
    }
    var found = [];
    var unreadable = [];
    batchView.hidden = false;
    say("Reading the folder…");
    walk(folders, found, unreadable).then(
      function () {
        beginBatch(found, unreadable);
      },
      function () {
        say("This browser could not read the dropped folder.");
      }
    );
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
    var busy =
      running.some(function (task) {
        return task.active;
      }) ||
      (!!batch && (batch.state === "sending" || batch.state === "closing"));
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

  // And of unfinished folder uploads.
  var unfinished = batchReady ? savedBatches() : [];
  if (batchNote && unfinished.length > 0) {
    var last = unfinished[unfinished.length - 1];
    batchNote.textContent =
      (unfinished.length === 1 ? "A folder upload" : unfinished.length + " folder uploads") +
      " from this browser did not finish (the last: " + last.files + " files, " + formatBytes(last.bytes) +
      "). Choose or drop the same folder again to continue where it stopped.";
    batchNote.hidden = false;
  }
})();
