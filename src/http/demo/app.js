// ximagepipeline demo page: upload with progress, long-poll the job, show blurhash + variants,
// and a gallery of this browser's media. Plain JS, no dependencies besides /demo/blurhash.js.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);

  // ---- configuration -------------------------------------------------------------------------
  const DEFAULT_CONFIG = {
    prefix: "/image-pipeline",
    sourceTypes: {
      gallery: {
        quality: 80,
        variants: [
          { name: "md", width: 640, height: null, fit: "inside" },
          { name: "lg", width: 1280, height: null, fit: "inside" },
          { name: "xl", width: 1920, height: null, fit: "inside" },
        ],
      },
    },
    maxFileSize: 52428800,
    allowedMimeTypes: ["image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/avif"],
  };

  function readConfig() {
    let parsed = {};
    try {
      parsed = JSON.parse($("xip-config").textContent) || {};
    } catch (_) {
      parsed = {}; // placeholder not replaced (page opened without the server): use the defaults
    }
    const config = Object.assign({}, DEFAULT_CONFIG, parsed);
    if (!config.sourceTypes || !Object.keys(config.sourceTypes).length) config.sourceTypes = DEFAULT_CONFIG.sourceTypes;
    config.prefix = String(config.prefix || "").replace(/\/+$/, "");
    return config;
  }

  const config = readConfig();
  const API = config.prefix;
  const SOURCE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

  // ---- small helpers -------------------------------------------------------------------------
  const storage = {
    get(key) {
      try { return window.localStorage.getItem(key); } catch (_) { return null; }
    },
    set(key, value) {
      try { window.localStorage.setItem(key, value); } catch (_) { /* private mode */ }
    },
  };

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of [].concat(children || [])) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function svgIcon(path) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2.4");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("aria-hidden", "true");
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    svg.append(p);
    return svg;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function formatBytes(n) {
    if (n === null || n === undefined || !isFinite(n)) return "size unknown";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  }

  function randomId(length) {
    const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    const bytes = new Uint8Array(length);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
  }

  async function readJson(response) {
    try { return await response.json(); } catch (_) { return null; }
  }

  function retryAfterMs(response, fallback) {
    const seconds = Number(response.headers.get("Retry-After"));
    return isFinite(seconds) && seconds > 0 ? Math.min(seconds, 30) * 1000 : fallback;
  }

  // Size of a stored object: HEAD's Content-Length, else the body's size.
  async function fetchSize(url) {
    try {
      const head = await fetch(url, { method: "HEAD" });
      const n = Number(head.headers.get("Content-Length"));
      if (head.ok && n > 0) return n;
    } catch (_) { /* cross-origin without CORS, or offline */ }
    try {
      const get = await fetch(url);
      if (get.ok) return (await get.blob()).size;
    } catch (_) { /* same */ }
    return null;
  }

  function variantSpecs(sourceType) {
    const st = config.sourceTypes[sourceType];
    return (st && Array.isArray(st.variants)) ? st.variants : [];
  }

  function describeVariant(v) {
    if (v.fit === "cover" && v.height) return `${v.width}×${v.height} cover`;
    if (v.height) return `≤${v.width}×${v.height}`;
    return `${v.width}w`;
  }

  // Expected size of a variant when the media does not tell it (never enlarges).
  function expectedSize(spec, w, h) {
    if (!spec) return { width: w, height: h };
    if (spec.fit === "cover" && spec.height) {
      const scale = Math.min(1, Math.max(spec.width / w, spec.height / h));
      const r = spec.width / spec.height;
      if (scale < 1) return { width: spec.width, height: spec.height };
      return w / h > r ? { width: Math.round(h * r), height: h } : { width: w, height: Math.round(w / r) };
    }
    const scale = Math.min(1, spec.width / w, spec.height ? spec.height / h : Infinity);
    return { width: Math.round(w * scale), height: Math.round(h * scale) };
  }

  // Variant names of a media in a useful order (the source type's, then any others), with sizes.
  function variantsOf(media) {
    const urls = media.urls || {};
    const specs = variantSpecs(media.sourceType);
    const names = specs.map((s) => s.name).filter((n) => n in urls);
    for (const n of Object.keys(urls)) if (!names.includes(n)) names.push(n);
    return names.map((name) => {
      const spec = specs.find((s) => s.name === name);
      const known = media.variants && media.variants[name];
      const size = known && known.width && known.height
        ? { width: known.width, height: known.height }
        : expectedSize(spec, media.width || 1, media.height || 1);
      return { name, url: urls[name], spec, width: size.width, height: size.height };
    });
  }

  // ---- elements ------------------------------------------------------------------------------
  const ui = {
    sourceType: $("source-type"),
    sourceId: $("source-id"),
    variantsHint: $("variants-hint"),
    limitsHint: $("limits-hint"),
    dropzone: $("dropzone"),
    file: $("file"),
    progressRow: $("progress-row"),
    progress: $("progress"),
    progressBar: $("progress-bar"),
    progressLabel: $("progress-label"),
    status: $("status"),
    statusText: $("status-text"),
    error: $("error"),
    errorMessage: $("error-message"),
    errorCode: $("error-code"),
    errorHttp: $("error-http"),
    resultSub: $("result-sub"),
    resultEmpty: $("result-empty"),
    resultBody: $("result-body"),
    stage: $("stage"),
    blurhash: $("blurhash"),
    stageImg: $("stage-img"),
    stageCaption: $("stage-caption"),
    factSize: $("fact-size"),
    factRatio: $("fact-ratio"),
    factFormat: $("fact-format"),
    factId: $("fact-id"),
    factBlurhash: $("fact-blurhash"),
    factOriginal: $("fact-original"),
    variants: $("variants"),
    gallery: $("gallery"),
    galleryType: $("gallery-type"),
    galleryStatus: $("gallery-status"),
    galleryMore: $("gallery-more"),
    galleryRefresh: $("gallery-refresh"),
  };

  // ---- state ---------------------------------------------------------------------------------
  const state = {
    sourceType: null,
    sourceId: null,
    run: 0,            // increases with each upload; stale callbacks compare against it
    xhr: null,
    poll: null,        // AbortController of the status long-poll
    shown: null,       // media shown in the result panel
    started: 0,        // when the current upload started
    lastUploaded: null,
    galleryGen: 0,
    cursor: null,
  };

  // ---- source type and id --------------------------------------------------------------------
  function initSource() {
    const types = Object.keys(config.sourceTypes);
    for (const name of types) ui.sourceType.append(el("option", { value: name, text: name }));
    const saved = storage.get("xip-demo-source-type");
    state.sourceType = types.includes(saved) ? saved : types.includes("gallery") ? "gallery" : types[0];
    ui.sourceType.value = state.sourceType;

    let id = storage.get("xip-demo-source-id");
    if (!id || !SOURCE_ID_RE.test(id)) {
      id = `demo-${randomId(10)}`;
      storage.set("xip-demo-source-id", id);
    }
    state.sourceId = id;
    ui.sourceId.value = id;

    const kinds = [...new Set((config.allowedMimeTypes || []).map((m) => {
      const sub = m.split("/")[1] || m;
      return sub === "heif" ? "HEIC" : sub === "webp" ? "WebP" : sub.toUpperCase();
    }))];
    ui.limitsHint.textContent =
      `${kinds.join(", ")} · up to ${Math.floor(config.maxFileSize / 1048576)} MB · the type is read from the bytes`;
    describeSourceType();
    document.getElementById("footer-prefix").textContent = API || "/";

    ui.sourceType.addEventListener("change", () => {
      state.sourceType = ui.sourceType.value;
      storage.set("xip-demo-source-type", state.sourceType);
      describeSourceType();
      loadGallery();
    });
    ui.sourceId.addEventListener("input", () => {
      ui.sourceId.setAttribute("aria-invalid", String(!SOURCE_ID_RE.test(ui.sourceId.value.trim())));
    });
    ui.sourceId.addEventListener("change", () => {
      const value = ui.sourceId.value.trim();
      if (!SOURCE_ID_RE.test(value)) {
        ui.sourceId.setAttribute("aria-invalid", "true");
        return;
      }
      ui.sourceId.setAttribute("aria-invalid", "false");
      if (value === state.sourceId) return;
      state.sourceId = value;
      storage.set("xip-demo-source-id", value);
      loadGallery();
    });
  }

  function describeSourceType() {
    const st = config.sourceTypes[state.sourceType] || {};
    const parts = variantSpecs(state.sourceType).map((v) => `${v.name} ${describeVariant(v)}`);
    ui.variantsHint.textContent = `Variants: ${parts.join(" · ")}` + (st.quality ? ` · WebP q${st.quality}` : "");
    ui.galleryType.textContent = `· ${state.sourceType}`;
  }

  // ---- status, progress, errors --------------------------------------------------------------
  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.statusText.textContent = text;
  }

  function setProgress(mode, percent) {
    ui.progressRow.hidden = mode === "hidden";
    ui.progress.classList.toggle("is-indeterminate", mode === "indeterminate");
    ui.progress.classList.toggle("is-done", mode === "done");
    ui.progress.classList.toggle("is-error", mode === "error");
    if (mode === "indeterminate") {
      ui.progress.removeAttribute("aria-valuenow");
      ui.progress.setAttribute("aria-valuetext", "Processing");
      ui.progressLabel.textContent = "…";
      return;
    }
    const p = Math.max(0, Math.min(100, Math.round(percent || 0)));
    ui.progress.setAttribute("aria-valuenow", String(p));
    ui.progress.setAttribute("aria-valuetext", `${p}%`);
    ui.progressBar.style.width = `${p}%`;
    ui.progressLabel.textContent = `${p}%`;
  }

  function hideError() {
    ui.error.hidden = true;
    ui.error.classList.remove("is-warning");
  }

  function showError(message, code, detail, warning) {
    ui.errorMessage.textContent = message || "Something went wrong.";
    ui.errorCode.textContent = code || "ERROR";
    ui.errorCode.hidden = !code;
    ui.errorHttp.textContent = detail || "";
    ui.error.classList.toggle("is-warning", Boolean(warning));
    ui.error.hidden = false;
  }

  function refused(httpStatus, body, what) {
    const message = (body && body.error) || `The server answered HTTP ${httpStatus}.`;
    const code = (body && body.code) || null;
    setStatus("error", `${what}: ${message}${code ? ` (${code})` : ""}`);
    setProgress("hidden");
    showError(message, code, `HTTP ${httpStatus}`);
  }

  // ---- upload --------------------------------------------------------------------------------
  function cancelRun() {
    state.run += 1;
    if (state.xhr) { state.xhr.abort(); state.xhr = null; }
    if (state.poll) { state.poll.abort(); state.poll = null; }
    return state.run;
  }

  function startUpload(file) {
    if (!file) return;
    const run = cancelRun();
    hideError();
    const sourceId = ui.sourceId.value.trim();
    if (!SOURCE_ID_RE.test(sourceId)) {
      ui.sourceId.setAttribute("aria-invalid", "true");
      setStatus("error", "Fix the source id first.");
      showError("Invalid sourceId: letters, digits, '.', '_' and '-', starting with a letter or digit.",
        "INVALID_SOURCE_ID", "checked in the browser");
      return;
    }
    if (sourceId !== state.sourceId) {
      state.sourceId = sourceId;
      storage.set("xip-demo-source-id", sourceId);
    }
    if (file.size > config.maxFileSize) {
      const mb = Math.floor(config.maxFileSize / 1048576);
      setStatus("error", "Not uploaded: the file is too large.");
      showError(`File too large. Maximum size: ${mb}MB`, "FILE_TOO_LARGE",
        `${formatBytes(file.size)} · checked in the browser`);
      return;
    }

    const form = new FormData();
    form.append("sourceType", state.sourceType);
    form.append("sourceId", sourceId);
    form.append("file", file, file.name || "upload");

    const xhr = new XMLHttpRequest();
    state.xhr = xhr;
    state.started = performance.now();
    xhr.open("POST", `${API}/upload`);
    xhr.setRequestHeader("Accept", "application/json");
    const name = file.name || "image";
    setProgress("bar", 0);
    setStatus("uploading", `Uploading ${name} (${formatBytes(file.size)})…`);
    ui.dropzone.classList.add("is-busy");

    xhr.upload.addEventListener("progress", (e) => {
      if (run !== state.run || !e.lengthComputable) return;
      setProgress("bar", (e.loaded / e.total) * 100);
    });
    xhr.addEventListener("load", () => {
      if (run !== state.run) return;
      state.xhr = null;
      ui.dropzone.classList.remove("is-busy");
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status === 202 && body && body.jobId) {
        setProgress("bar", 100);
        follow(body.jobId, run);
      } else {
        refused(xhr.status, body, "Upload refused");
      }
    });
    xhr.addEventListener("error", () => {
      if (run !== state.run) return;
      state.xhr = null;
      ui.dropzone.classList.remove("is-busy");
      setStatus("error", "Upload failed: the server could not be reached.");
      setProgress("error", 100);
      showError("The upload did not reach the server (network error or connection closed).", "NETWORK_ERROR");
    });
    xhr.send(form);
  }

  // Long-polls GET {prefix}/status/{jobId}?wait=30 until the job is final.
  async function follow(jobId, run) {
    const controller = new AbortController();
    state.poll = controller;
    setStatus("processing", "Uploaded. Waiting for a worker…");
    setProgress("indeterminate");
    let failures = 0;
    while (run === state.run) {
      const started = Date.now();
      let response, body;
      try {
        response = await fetch(`${API}/status/${encodeURIComponent(jobId)}?wait=30`, {
          headers: { Accept: "application/json" },
          cache: "no-store",
          signal: controller.signal,
        });
        body = await readJson(response);
      } catch (err) {
        if (controller.signal.aborted || run !== state.run) return;
        failures += 1;
        if (failures > 5) {
          setStatus("error", "Lost contact with the server while processing.");
          setProgress("error", 100);
          showError("The status of the job could not be read (network error).", "NETWORK_ERROR", `job ${jobId}`);
          return;
        }
        await sleep(1000 * failures);
        continue;
      }
      if (run !== state.run) return;
      failures = 0;
      const status = body && body.status;

      if (response.status === 202) {
        setStatus("processing", status === "PENDING"
          ? "Uploaded. Queued, waiting for a worker…"
          : "Processing: orienting, resizing, encoding WebP, computing the blurhash…");
        // A 202 that came back at once (no long-poll support) must not spin.
        if (Date.now() - started < 500) await sleep(retryAfterMs(response, 1000));
        continue;
      }
      state.poll = null;
      if (response.status === 200 && status === "COMPLETE" && body.media) {
        complete(body.media);
      } else if (status === "REJECTED") {
        const flags = body.moderationDetails && Array.isArray(body.moderationDetails.flags)
          ? body.moderationDetails.flags.join(", ") : "";
        setStatus("rejected", `Rejected: ${body.reason || "content moderation failed"}`);
        setProgress("error", 100);
        showError(body.reason || "Rejected", "REJECTED", flags ? `flags: ${flags}` : `HTTP ${response.status}`, true);
      } else if (status === "FAILED") {
        const attempts = body.attempts ? ` after ${body.attempts} attempt${body.attempts === 1 ? "" : "s"}` : "";
        setStatus("failed", `Failed${attempts}: ${body.error || "processing failed"} (${body.code || "FAILED"})`);
        setProgress("error", 100);
        showError(body.error || "Processing failed.", body.code || "FAILED", `HTTP ${response.status} · job ${jobId}`);
      } else if (response.status === 429 || response.status === 503) {
        state.poll = controller;
        await sleep(retryAfterMs(response, 2000));
        continue;
      } else {
        refused(response.status, body, "Status unavailable");
      }
      return;
    }
  }

  function complete(media) {
    const n = Object.keys(media.urls || {}).length;
    const seconds = ((performance.now() - state.started) / 1000).toFixed(1);
    state.lastUploaded = media.id;
    setStatus("complete", `Complete in ${seconds} s: ${n} variant${n === 1 ? "" : "s"} ready.`);
    setProgress("done", 100);
    showMedia(media);
    loadGallery({ select: media.id });
  }

  // ---- result panel --------------------------------------------------------------------------
  function paintPlaceholder(canvas, hash, ratio) {
    const ok = window.XipBlurhash && window.XipBlurhash.isValid(hash);
    if (ok) {
      try { window.XipBlurhash.paint(canvas, hash, ratio); return true; } catch (_) { /* fall through */ }
    }
    canvas.width = 1;
    canvas.height = 1;
    canvas.dataset.painted = "false";
    return false;
  }

  function copyCanvas(source) {
    const copy = el("canvas", { class: "placeholder", "aria-hidden": "true" });
    copy.width = source.width;
    copy.height = source.height;
    if (source.dataset.painted === "true") {
      copy.getContext("2d").drawImage(source, 0, 0);
      copy.dataset.painted = "true";
    }
    return copy;
  }

  function fadeImage(img, url, onDone) {
    img.classList.remove("is-loaded");
    img.addEventListener("load", () => {
      // Decode before fading in, so the fade shows the picture and not an empty box.
      const decoded = typeof img.decode === "function" ? img.decode().catch(() => {}) : Promise.resolve();
      decoded.then(() => {
        img.classList.add("is-loaded");
        if (onDone) onDone(true);
      });
    }, { once: true });
    img.addEventListener("error", () => { if (onDone) onDone(false); }, { once: true });
    img.decoding = "async";
    img.src = url;
  }

  function clearResult() {
    state.shown = null;
    ui.resultBody.hidden = true;
    ui.resultEmpty.hidden = false;
    ui.resultSub.textContent = "";
    ui.variants.replaceChildren();
    ui.stageImg.removeAttribute("src");
    markSelected(null);
  }

  function showMedia(media) {
    state.shown = media;
    const w = media.width || 1;
    const h = media.height || 1;
    const ratio = w / h;
    ui.resultEmpty.hidden = true;
    ui.resultBody.hidden = false;
    ui.resultSub.textContent = [media.sourceType, media.createdAt ? new Date(media.createdAt).toLocaleString() : null]
      .filter(Boolean).join(" · ");

    // Placeholder first, at the image's aspect ratio.
    ui.stage.style.aspectRatio = `${w} / ${h}`;
    ui.stage.style.width = `min(100%, calc(min(65vh, 560px) * ${ratio.toFixed(5)}))`;
    paintPlaceholder(ui.blurhash, media.blurhash, ratio);

    const variants = variantsOf(media);
    // The stage shows the smallest variant that covers it, or the largest one; variants that keep
    // the image's ratio first (a cover crop is shown whole, over the placeholder of the full image).
    const need = (ui.stage.clientWidth || 640) * (window.devicePixelRatio || 1);
    const sameRatio = (v) => Math.abs(v.width / v.height - ratio) / ratio < 0.02;
    const pool = variants.some(sameRatio) ? variants.filter(sameRatio) : variants;
    const bySize = pool.slice().sort((a, b) => a.width - b.width);
    const pick = bySize.find((v) => v.width >= need) || bySize[bySize.length - 1];
    ui.stageImg.classList.toggle("is-crop", Boolean(pick) && !sameRatio(pick));
    ui.stageImg.classList.remove("is-loaded");
    ui.stageImg.removeAttribute("src");
    if (pick) {
      ui.stageImg.alt = `Processed image, ${pick.name} variant`;
      // Let the placeholder show for a moment even when the variant is cached.
      const shownId = media.id;
      requestAnimationFrame(() => { if (state.shown && state.shown.id === shownId) fadeImage(ui.stageImg, pick.url); });
      ui.stageCaption.textContent = sameRatio(pick)
        ? `Blurhash placeholder, then the ${pick.name} variant fading in over it.`
        : `Blurhash placeholder of the whole image, then the ${pick.name} variant (a ${pick.width}×${pick.height} crop) over it.`;
    } else {
      ui.stageCaption.textContent = "No variants.";
    }

    // Facts of the original.
    const mp = (w * h) / 1e6;
    ui.factSize.textContent = `${w} × ${h} px (${mp >= 0.1 ? mp.toFixed(1) : mp.toFixed(2)} MP)`;
    ui.factRatio.textContent = media.aspectRatio
      ? (/^\d{1,2}:\d{1,2}$/.test(media.aspectRatio) ? media.aspectRatio : `${media.aspectRatio} (≈${ratio.toFixed(2)})`)
      : "—";
    let format = media.format;
    if (!format && media.originalUrl) {
      const m = /\.([a-z0-9]+)(?:[?#].*)?$/i.exec(media.originalUrl);
      format = m ? m[1] : null;
    }
    ui.factFormat.textContent = format ? String(format).toUpperCase() : "—";
    ui.factId.textContent = media.id;
    ui.factBlurhash.textContent = media.blurhash || "—";
    ui.factOriginal.replaceChildren();
    if (media.originalUrl) {
      const name = media.originalUrl.split(/[?#]/)[0].split("/").pop() || "original";
      const size = el("span", { class: "muted", text: "" });
      ui.factOriginal.append(
        el("a", { href: media.originalUrl, target: "_blank", rel: "noopener", "data-testid": "original-link", text: name }),
        " ", size);
      fetchSize(media.originalUrl).then((n) => {
        if (n !== null && state.shown === media) size.textContent = `· ${formatBytes(n)}, metadata stripped`;
      });
    } else {
      ui.factOriginal.textContent = "Not kept for this source type.";
    }

    // One figure per variant, each over its own copy of the placeholder.
    ui.variants.replaceChildren(...variants.map((v) => variantFigure(v, media)));
    markSelected(media.id);
  }

  function variantFigure(v, media) {
    const r = v.width / v.height;
    const box = el("div", { class: "variant-box" });
    box.style.aspectRatio = `${v.width} / ${v.height}`;
    box.style.width = `min(100cqw, calc(100cqh * ${r.toFixed(5)}))`;
    const img = el("img", { class: "fade", alt: `${v.name} variant`, "data-testid": `variant-img-${v.name}` });
    box.append(copyCanvas(ui.blurhash), img);

    const dims = el("span", { class: "variant-dims", "data-testid": "variant-dims", text: "loading…" });
    const bytes = el("span", { class: "variant-bytes", "data-testid": "variant-bytes", text: "" });
    const fig = el("figure", { class: "variant", "data-testid": `variant-${v.name}`, "data-variant": v.name }, [
      el("div", { class: "variant-frame" }, [box]),
      el("figcaption", {}, [
        el("div", { class: "variant-title" }, [
          el("span", { class: "variant-name", text: v.name }),
          v.spec ? el("span", { class: "badge", title: "configured size", text: describeVariant(v.spec) }) : null,
          el("a", { class: "variant-open", href: v.url, target: "_blank", rel: "noopener",
            "aria-label": `Open the ${v.name} variant`, text: "Open" }),
        ]),
        el("div", { class: "variant-meta" }, [dims, el("span", { "aria-hidden": "true", text: "·" }), bytes]),
      ]),
    ]);
    fadeImage(img, v.url, (ok) => {
      if (state.shown !== media) return;
      fig.dataset.loaded = ok ? "true" : "error";
      dims.textContent = ok ? `${img.naturalWidth} × ${img.naturalHeight} px` : "failed to load";
    });
    fetchSize(v.url).then((n) => {
      if (state.shown === media) bytes.textContent = formatBytes(n);
    });
    return fig;
  }

  // ---- gallery -------------------------------------------------------------------------------
  function smallestVariant(media) {
    const vs = variantsOf(media);
    vs.sort((a, b) => a.width * a.height - b.width * b.height);
    return vs[0] || null;
  }

  function markSelected(id) {
    for (const item of ui.gallery.querySelectorAll(".gallery-item")) {
      const on = item.dataset.mediaId === id;
      item.classList.toggle("is-selected", on);
      const thumb = item.querySelector(".thumb");
      if (thumb) thumb.setAttribute("aria-pressed", String(on));
    }
  }

  function galleryItem(media) {
    const small = smallestVariant(media);
    const canvas = el("canvas", { class: "placeholder", "aria-hidden": "true" });
    paintPlaceholder(canvas, media.blurhash, (media.width || 1) / (media.height || 1));
    const img = el("img", { class: "fade", alt: "", loading: "lazy" });
    if (small) fadeImage(img, small.url);
    const label = `${media.width}×${media.height}` + (media.createdAt ? `, ${new Date(media.createdAt).toLocaleString()}` : "");
    const thumb = el("button", {
      type: "button", class: "thumb", "data-testid": "gallery-thumb", "aria-pressed": "false",
      "aria-label": `Show details of ${media.id} (${label})`, title: label,
    }, [canvas, img]);
    const del = el("button", {
      type: "button", class: "delete", "data-testid": "delete", "aria-label": `Delete ${media.id}`, title: "Delete",
    }, [svgIcon("M6 6l12 12M18 6L6 18")]);
    const li = el("li", { class: "gallery-item", "data-testid": "gallery-item", "data-media-id": media.id }, [thumb, del]);

    thumb.addEventListener("click", () => {
      showMedia(media);
      const top = ui.resultBody.getBoundingClientRect().top;
      if (top < 0 || top > window.innerHeight * 0.8) {
        $("result").scrollIntoView({ behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth", block: "start" });
      }
    });
    del.addEventListener("click", () => deleteMedia(media.id, li));
    return li;
  }

  async function loadGallery(options) {
    const { append = false, select = null } = options || {};
    const gen = ++state.galleryGen;
    const params = new URLSearchParams({ sourceType: state.sourceType, sourceId: state.sourceId, limit: "30" });
    if (append && state.cursor) params.set("cursor", state.cursor);
    ui.galleryRefresh.disabled = true;
    if (!append && !ui.gallery.children.length) ui.galleryStatus.textContent = "Loading…";
    let response, body;
    try {
      response = await fetch(`${API}/media?${params}`, { headers: { Accept: "application/json" }, cache: "no-store" });
      body = await readJson(response);
    } catch (_) {
      response = null;
    }
    if (gen !== state.galleryGen) return;
    ui.galleryRefresh.disabled = false;
    if (!response || !response.ok || !body || !Array.isArray(body.media)) {
      ui.galleryStatus.textContent = response
        ? `Could not load the gallery: ${(body && body.error) || `HTTP ${response.status}`}${body && body.code ? ` (${body.code})` : ""}`
        : "Could not load the gallery: the server could not be reached.";
      return;
    }
    const items = body.media.map(galleryItem);
    if (append) ui.gallery.append(...items);
    else ui.gallery.replaceChildren(...items);
    state.cursor = body.nextCursor || null;
    ui.galleryMore.hidden = !state.cursor;
    const count = ui.gallery.children.length;
    ui.galleryStatus.textContent = count
      ? `${count}${state.cursor ? "+" : ""} image${count === 1 ? "" : "s"} for ${state.sourceId}, newest first.`
      : `No images yet for ${state.sourceId} as ${state.sourceType}.`;
    ui.gallery.dataset.loaded = "true";
    markSelected(select || (state.shown && state.shown.id));
  }

  async function deleteMedia(id, li) {
    li.classList.add("is-deleting");
    let response, body;
    try {
      response = await fetch(`${API}/media/${encodeURIComponent(id)}`, { method: "DELETE" });
      body = response.status === 204 ? null : await readJson(response);
    } catch (_) {
      response = null;
    }
    if (response && (response.status === 204 || response.status === 404)) {
      if (state.shown && state.shown.id === id) clearResult();
      if (state.lastUploaded === id && !state.xhr && !state.poll) {
        state.lastUploaded = null;
        setProgress("hidden");
        setStatus("idle", `Deleted ${id}. Ready for another photo.`);
      }
      li.remove();
      await loadGallery();
      ui.galleryStatus.textContent = `Deleted ${id}. ` + ui.galleryStatus.textContent;
      return;
    }
    li.classList.remove("is-deleting");
    ui.galleryStatus.textContent = response
      ? `Could not delete ${id}: ${(body && body.error) || `HTTP ${response.status}`}`
      : `Could not delete ${id}: the server could not be reached.`;
  }

  // ---- file picking, drag and drop, paste ----------------------------------------------------
  function initPicking() {
    ui.file.addEventListener("change", () => {
      const file = ui.file.files && ui.file.files[0];
      if (file) startUpload(file);
      ui.file.value = ""; // picking the same file again uploads it again
    });

    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
    ui.dropzone.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth += 1;
      ui.dropzone.classList.add("is-dragover");
    });
    ui.dropzone.addEventListener("dragover", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    });
    ui.dropzone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) ui.dropzone.classList.remove("is-dragover");
    });
    ui.dropzone.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      ui.dropzone.classList.remove("is-dragover");
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (file) startUpload(file);
    });
    // A file dropped next to the zone must not make the browser navigate away.
    window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
    window.addEventListener("drop", (e) => { if (hasFiles(e)) e.preventDefault(); });

    document.addEventListener("paste", (e) => {
      const target = e.target;
      if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
      const file = e.clipboardData && Array.from(e.clipboardData.files || []).find((f) => f.type.startsWith("image/"));
      if (file) { e.preventDefault(); startUpload(file); }
    });

    ui.galleryRefresh.addEventListener("click", () => loadGallery());
    ui.galleryMore.addEventListener("click", () => loadGallery({ append: true }));
  }

  // The empty result panel shows what a blurhash placeholder looks like.
  paintPlaceholder($("empty-art"), "LEHV6nWB2yk8pyo0adR*.7kCMdnj", 3 / 2);

  initSource();
  initPicking();
  loadGallery();
  document.documentElement.dataset.ready = "true";
})();
