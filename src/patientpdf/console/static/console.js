// The console's one hand-written script: the drop zone (one XHR per PDF, a progress bar per
// file, the server's error `detail` per file) and the copy button of a new key. It is loaded
// from a file, attaches no inline handlers and evaluates no strings, as the CSP requires.
(function () {
  "use strict";

  var PARALLEL_UPLOADS = 2;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Copy: event delegation, so buttons that htmx swaps in work too.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentElement.querySelector(".copy-status");
    function said(text) { if (status) status.textContent = text; }
    function fallback() {
      input.focus();
      input.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      said(copied ? "Copied." : "Selected: press Ctrl+C (or ⌘C) to copy.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(function () { said("Copied."); }, fallback);
    } else {
      fallback();
    }
  });

  // A form marked data-reset-on-success is cleared once htmx has sent it successfully.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail && event.detail.elt;
    if (event.detail.successful && form && form.matches && form.matches("form[data-reset-on-success]")) form.reset();
  });

  function setUpDropzone(zone) {
    if (zone.getAttribute("data-ready")) return;
    zone.setAttribute("data-ready", "1");
    var url = zone.getAttribute("data-upload-url");
    var input = zone.querySelector('input[type="file"]');
    var list = zone.parentElement.querySelector(".uploads");
    var queue = [];
    var running = 0;

    function entry(file) {
      var item = document.createElement("li");
      item.className = "upload";
      item.setAttribute("data-file", file.name);
      var name = document.createElement("span");
      name.className = "upload-name";
      name.textContent = file.name;
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", "Upload of " + file.name);
      var status = document.createElement("span");
      status.className = "upload-status";
      status.textContent = "Waiting…";
      item.appendChild(name);
      item.appendChild(bar);
      item.appendChild(status);
      list.appendChild(item);
      return { file: file, item: item, bar: bar, status: status };
    }

    function finish(upload, httpStatus, text) {
      running -= 1;
      var body = null;
      try { body = JSON.parse(text); } catch (e) { body = null; }
      if (httpStatus === 201) {
        upload.bar.value = 100;
        upload.item.classList.add("ok");
        upload.item.setAttribute("data-state", "uploaded");
        upload.status.textContent = "Uploaded" + (body && body.duplicate_of ? " (the same bytes as an earlier PDF of this patient)" : "") + ".";
        document.body.dispatchEvent(new CustomEvent("pdfs-changed"));
      } else {
        upload.item.classList.add("failed");
        upload.item.setAttribute("data-state", "failed");
        upload.status.setAttribute("role", "alert");
        if (body && body.detail) {
          upload.status.textContent = body.detail;
        } else if (httpStatus) {
          upload.status.textContent = "The upload failed (HTTP " + httpStatus + ").";
        } else {
          upload.status.textContent = "The upload failed: the server could not be reached.";
        }
      }
      pump();
    }

    function send(upload) {
      var form = new FormData();
      form.append("filename", upload.file.name);
      form.append("file", upload.file, upload.file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) upload.bar.value = Math.round((event.loaded * 100) / event.total);
      });
      xhr.addEventListener("load", function () { finish(upload, xhr.status, xhr.responseText); });
      xhr.addEventListener("error", function () { finish(upload, 0, ""); });
      upload.status.textContent = "Uploading…";
      upload.item.setAttribute("data-state", "uploading");
      xhr.send(form);
    }

    function pump() {
      while (running < PARALLEL_UPLOADS && queue.length) {
        running += 1;
        send(queue.shift());
      }
    }

    function add(files) {
      for (var i = 0; i < files.length; i += 1) queue.push(entry(files[i]));
      pump();
    }

    input.addEventListener("change", function () {
      add(input.files);
      input.value = "";
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files) add(event.dataTransfer.files);
    });
  }

  function setUp() {
    var zones = document.querySelectorAll("[data-dropzone]");
    for (var i = 0; i < zones.length; i += 1) setUpDropzone(zones[i]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
