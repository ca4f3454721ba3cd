/* Lastmile UI behaviour. No inline scripts anywhere: pages opt in with data attributes. */
(function () {
  "use strict";

  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  document.documentElement.classList.add("js");

  /* The phone menu: a real button that opens and closes the nav (Escape closes it too). */
  var navToggle = document.getElementById("nav-toggle");
  var nav = document.getElementById("site-nav");
  if (navToggle && nav) {
    var setOpen = function (open) {
      nav.classList.toggle("open", open);
      navToggle.setAttribute("aria-expanded", open ? "true" : "false");
    };
    navToggle.addEventListener("click", function () {
      setOpen(navToggle.getAttribute("aria-expanded") !== "true");
    });
    nav.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { setOpen(false); navToggle.focus(); }
    });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function postForm(url, form) {
    var data = new FormData(form);
    /* As-you-type checks read text fields only: never upload a chosen file with each key. */
    form.querySelectorAll("input[type=file][name]").forEach(function (input) {
      data.delete(input.name);
    });
    return fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (r) { return r.json(); });
  }

  /* Repeatable rows (slots, steps): clone a <template>, renumbering __i__. */
  document.addEventListener("click", function (ev) {
    var add = ev.target.closest(".js-add-row");
    if (add) {
      var tpl = document.getElementById(add.dataset.template);
      var target = document.getElementById(add.dataset.target);
      var next = 0;
      target.querySelectorAll("[data-index]").forEach(function (el) {
        next = Math.max(next, parseInt(el.dataset.index, 10) + 1);
      });
      var html = tpl.innerHTML.replace(/__i__/g, String(next));
      target.insertAdjacentHTML("beforeend", html);
      return;
    }
    var remove = ev.target.closest(".js-remove-row");
    if (remove) {
      var row = remove.closest(".row-card");
      var form = row.closest("form");
      row.remove();
      if (form) { form.dispatchEvent(new Event("input", { bubbles: true })); }
      return;
    }
    var lineError = ev.target.closest(".line-error");
    if (lineError) { goToLine(document.getElementById("mjml"), parseInt(lineError.dataset.line, 10)); }
  });

  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter;
    var message = (btn && btn.dataset.confirm) || ev.target.dataset.confirm;
    if (message && !window.confirm(message)) { ev.preventDefault(); }
  });

  function goToLine(textarea, line) {
    if (!textarea || !line) { return; }
    var lines = textarea.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
    textarea.focus();
    textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
    var lh = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
    textarea.scrollTop = Math.max(0, (line - 3) * lh);
  }

  /* Live preview: forms with data-live-preview re-submit into the sandboxed iframe. */
  document.querySelectorAll("form[data-live-preview]").forEach(function (form) {
    var button = document.getElementById(form.dataset.livePreview);
    if (!button) { return; }
    var refresh = debounce(function () { form.requestSubmit(button); }, 500);
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
    if (form.dataset.previewOnLoad !== undefined) { refresh(); }
  });

  /* Rich-text slots: a Quill editor over the textarea, limited to what the server's sanitizer
     keeps (bold, italic, lists, links). The textarea stays the field that is posted: every
     change writes the editor's HTML into it and fires "input" (counters, checks, preview).
     Without scripts (or without Quill) the textarea itself is the field. */
  if (window.Quill) {
    document.querySelectorAll("textarea[data-richtext]").forEach(function (textarea) {
      var toolbar = document.getElementById(textarea.dataset.toolbar);
      var box = document.createElement("div");
      box.className = "rt-editor";
      textarea.insertAdjacentElement("afterend", box);
      if (toolbar) { toolbar.hidden = false; box.insertAdjacentElement("beforebegin", toolbar); }
      var quill = new window.Quill(box, {
        theme: "snow", formats: ["bold", "italic", "list", "link"],
        modules: { toolbar: toolbar || false }
      });
      quill.setContents(quill.clipboard.convert({ html: textarea.value }), "silent");
      var editor = box.querySelector(".ql-editor");
      var label = document.getElementById(textarea.id + "-label");
      editor.setAttribute("role", "textbox");
      editor.setAttribute("aria-multiline", "true");
      if (label) { editor.setAttribute("aria-labelledby", label.id); label.htmlFor = ""; }
      if (textarea.getAttribute("aria-describedby")) {
        editor.setAttribute("aria-describedby", textarea.getAttribute("aria-describedby"));
      }
      if (label) { label.addEventListener("click", function () { quill.focus(); }); }
      textarea.hidden = true;
      quill.on("text-change", function () {
        var html = quill.getLength() > 1 ? quill.getSemanticHTML() : "";
        /* Plain spaces, and links without target (the server adds rel itself). */
        html = html.replace(/&nbsp;/g, " ").replace(/ target="_blank"/g, "")
          .replace(/ rel="noopener noreferrer"/g, "");
        textarea.value = html;
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
      });
    });
  }

  /* Filter selects that apply as soon as they change (the form's button does it without JS). */
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.requestSubmit(); });
  });

  /* Slot inputs: character counters and constraint errors as you type. */
  document.querySelectorAll("form[data-validate-url]").forEach(function (form) {
    var url = form.dataset.validateUrl;
    function counters() {
      form.querySelectorAll("[data-maxlength]").forEach(function (input) {
        var out = form.querySelector('.counter[data-for="' + input.name + '"]');
        if (!out) { return; }
        var max = parseInt(input.dataset.maxlength, 10);
        out.textContent = input.value.length + " / " + max;
        out.classList.toggle("over", input.value.length > max);
      });
    }
    var sent = 0;
    var check = debounce(function () {
      var mine = ++sent;
      postForm(url, form).then(function (data) {
        if (mine !== sent) { return; }  /* a newer check is on its way: it decides */
        var problems = data.fields || {};
        form.querySelectorAll(".field-error[data-for]").forEach(function (el) {
          var msg = problems[el.dataset.for] || "";
          /* Pages that name the field in its error (data-label) read "Headline: at most ..." */
          el.textContent = msg && el.dataset.label ? el.dataset.label + ": " + msg : msg;
          el.hidden = !msg;
          var input = form.querySelector('[name="' + el.dataset.input + '"]');
          if (input) { input.setAttribute("aria-invalid", msg ? "true" : "false"); }
        });
      }).catch(function () { /* the server check on submit still applies */ });
    }, 250);
    form.addEventListener("input", function () { counters(); check(); });
    counters();
  });

  /* Background jobs (CSV import): poll a status URL, fill a progress bar, then reload. */
  document.querySelectorAll("[data-poll-url]").forEach(function (box) {
    var bar = box.querySelector("progress");
    var label = box.querySelector(".progress-label");
    function tick() {
      fetch(box.dataset.pollUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (job) {
          if (bar && job.total) { bar.max = job.total; bar.value = job.processed; }
          if (label) { label.textContent = job.message || job.status; }
          if (job.status === "done" || job.status === "failed") {
            window.location.reload();
          } else {
            setTimeout(tick, 700);
          }
        })
        .catch(function () { setTimeout(tick, 2000); });
    }
    tick();
  });

  /* Time zone selects without a chosen zone start at the browser's own zone. */
  document.querySelectorAll("select[data-browser-zone]").forEach(function (select) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === zone) { select.value = zone; break; }
    }
  });

  /* Profile pictures: show the chosen image at once; refuse one too large before uploading. */
  document.querySelectorAll("input[type=file][data-image-preview]").forEach(function (input) {
    var img = document.getElementById(input.dataset.imagePreview);
    var error = document.querySelector('[data-file-error="' + input.name + '"]');
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (error) { error.textContent = ""; }
      input.setAttribute("aria-invalid", "false");
      if (!file || !img) { return; }
      if (file.size > parseInt(input.dataset.maxBytes, 10)) {
        if (error) { error.textContent = input.dataset.tooBig; }
        input.setAttribute("aria-invalid", "true");
        input.value = "";
        return;
      }
      var reader = new FileReader();
      reader.onload = function () {
        img.src = reader.result;
        img.hidden = false;
        var empty = img.parentNode.querySelector(".image-empty");
        if (empty) { empty.hidden = true; }
      };
      reader.readAsDataURL(file);
    });
  });

  /* Import columns: the extra-field name box shows only while "Extra field" is chosen. */
  document.querySelectorAll("select[data-extra-field]").forEach(function (select) {
    var box = document.getElementById(select.dataset.extraField);
    if (!box) { return; }
    function sync() { box.hidden = select.value !== "attribute"; }
    select.addEventListener("change", sync);
    sync();
  });

  /* Contacts list: the quick-send button says how many clients are ticked. */
  document.querySelectorAll("form.quick-select").forEach(function (form) {
    var button = form.querySelector("button[data-count-label]");
    if (!button) { return; }
    function update() {
      var n = form.querySelectorAll('input[name="contact_ids"]:checked').length;
      button.textContent = button.dataset.countLabel.replace("{n}", n);
      button.disabled = n === 0;
    }
    form.addEventListener("change", update);
    update();
  });

  /* Charts: <canvas data-chart='{"type": ..., "data": ...}'> drawn with the vendored Chart.js. */
  if (window.Chart) {
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var config = JSON.parse(canvas.dataset.chart);
      config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
      new window.Chart(canvas, config);
    });
  }
})();
