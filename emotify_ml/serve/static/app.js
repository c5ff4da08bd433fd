/* Emotify page: webcam over the websocket, image and video drops over REST. No external resources. */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const COLOURS = window.EmotifyChart.PALETTE;
  const WINDOW_S = 60;          // timeline: the last minute
  const SEND_WIDTH = 640;       // frames are sent at most this wide
  const state = {
    classes: ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
    token: sessionStorage.getItem("emotify-token") || "",
    prior: sessionStorage.getItem("emotify-prior") || "",   // "": the server's own (--prior)
    ws: null, stream: null, running: false, lastFaces: [], frames: 0,
    tracks: new Map(),          // track_id -> [{t, p}]
    fps: 0, lastReply: 0, videoLines: [],
  };
  window.emotify = state;       // for tests and the curious

  // -- messages and auth -------------------------------------------------------------------------------------
  function showMessage(text) {
    const box = $("message");
    box.textContent = text;
    box.hidden = !text;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return headers;
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({}, options, { headers: authHeaders((options || {}).headers) }));
    if (response.status === 401) {
      $("token-form").hidden = false;
      throw new Error("this server needs a token: enter it above");
    }
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("emotify-token", state.token);
    $("token-form").hidden = true;
    showMessage("");
    loadModel();
  });

  async function loadModel() {
    try {
      const model = await (await api("/v1/model")).json();
      state.classes = model.classes;
      const version = model.version ? " v" + model.version : "";
      $("model").textContent = `model: ${model.name}${version} (${model.source}, ${model.runtime})`;
      fillPriors(model);
    } catch (error) {
      $("model").textContent = "model: unknown";
      showMessage(error.message);
    }
  }

  // -- the class prior: the server's own (--prior) unless this page asks for another ----------------------------
  const PRIOR_NAMES = { training: "as in FER-2013", web: "as in web photos", uniform: "all alike" };

  function fillPriors(model) {
    const select = $("prior");
    select.textContent = "";
    const own = document.createElement("option");
    own.value = "";
    own.textContent = `${PRIOR_NAMES[model.prior] || model.prior} (the server's)`;
    select.appendChild(own);
    for (const name of model.priors || []) {
      if (name === model.prior) continue;
      const option = document.createElement("option");
      option.value = name;
      option.textContent = PRIOR_NAMES[name] || name;
      select.appendChild(option);
    }
    if (![...select.options].some((o) => o.value === state.prior)) state.prior = "";
    select.value = state.prior;
  }

  function priorQuery(sep) {
    return state.prior ? `${sep}prior=${encodeURIComponent(state.prior)}` : "";
  }

  $("prior").addEventListener("change", (event) => {
    state.prior = event.target.value;
    sessionStorage.setItem("emotify-prior", state.prior);
    if (state.running && state.ws) {  // reconnect under the new prior; tracks start afresh
      const old = state.ws;
      state.ws = null;
      old.close();
      state.tracks.clear();
      openSocket();
    }
  });

  // -- drawing -------------------------------------------------------------------------------------------------
  function colourOf(label) {
    const k = state.classes.indexOf(label);
    return COLOURS[(k < 0 ? 6 : k) % COLOURS.length];
  }

  function drawBoxes(ctx, faces, scale) {
    ctx.lineWidth = 3;
    ctx.font = "bold 16px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    for (const face of faces) {
      const [x, y, w, h] = face.box.map((v) => v * scale);
      const colour = colourOf(face.label);
      const probs = face.smoothed || face.probabilities;
      const text = `${face.track_id != null ? "#" + face.track_id + " " : ""}${face.label} ${Math.round(100 * probs[face.label])}%`;
      ctx.strokeStyle = colour;
      ctx.strokeRect(x, y, w, h);
      const tw = ctx.measureText(text).width + 10;
      const ty = y > 24 ? y : y + h + 24;
      ctx.fillStyle = colour;
      ctx.fillRect(x - 1.5, ty - 22, tw, 22);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x + 4, ty - 3);
    }
  }

  function renderBars(container, faces) {
    container.textContent = "";
    faces.forEach((face, i) => {
      const probs = face.smoothed || face.probabilities;
      const card = document.createElement("div");
      card.className = "face";
      const title = document.createElement("div");
      title.className = "face-title";
      title.textContent = `${face.track_id != null ? "Face #" + face.track_id : "Face " + (i + 1)}: `;
      const label = document.createElement("span");
      label.className = "face-label";
      label.textContent = face.label;
      label.style.color = colourOf(face.label);
      title.appendChild(label);
      if (face.actions) {
        const act = document.createElement("div");
        act.textContent = "action: " + face.actions.label;
        title.appendChild(act);
      }
      card.appendChild(title);
      state.classes.forEach((name, k) => {
        const row = document.createElement("div");
        row.className = "bar";
        const n = document.createElement("span");
        n.textContent = name;
        const track = document.createElement("div");
        track.className = "bar-track";
        const fill = document.createElement("div");
        fill.className = "bar-fill";
        fill.style.width = (100 * probs[name]).toFixed(1) + "%";
        fill.style.background = COLOURS[k % COLOURS.length];
        track.appendChild(fill);
        const v = document.createElement("span");
        v.className = "bar-value";
        v.textContent = (100 * probs[name]).toFixed(0) + "%";
        row.append(n, track, v);
        card.appendChild(row);
      });
      container.appendChild(card);
    });
  }

  // -- webcam ------------------------------------------------------------------------------------------------------
  const video = $("video"), overlay = $("overlay");
  const grab = document.createElement("canvas");

  function cameraError(error) {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError")
      return "Camera access was denied. Allow the camera for this page in the browser's site settings, then press Start camera again.";
    if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError")
      return "No camera was found. Connect a webcam and press Start camera again; you can still drop images and videos below.";
    if (name === "NotReadableError")
      return "The camera is in use by another program (or failed to start). Close it there and try again.";
    return "The camera could not be started: " + (error && error.message ? error.message : error);
  }

  async function startCamera() {
    showMessage("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showMessage("This browser gives no camera to this page. Cameras need https or http://localhost (or 127.0.0.1).");
      return;
    }
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (error) {
      showMessage(cameraError(error));
      return;
    }
    video.srcObject = state.stream;
    await video.play().catch(() => {});
    $("camera-start").disabled = true;
    $("camera-stop").disabled = false;
    state.running = true;
    state.tracks.clear();
    openSocket();
  }

  function stopCamera() {
    state.running = false;
    if (state.ws) state.ws.close();
    if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
    state.ws = null;
    state.stream = null;
    video.srcObject = null;
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
    $("camera-start").disabled = false;
    $("camera-stop").disabled = true;
    $("status").textContent = "camera stopped";
  }

  function socketUrl() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const query = (state.token ? "?token=" + encodeURIComponent(state.token) : "") + priorQuery(state.token ? "&" : "?");
    return `${proto}//${location.host}/v1/stream${query}`;
  }

  function openSocket() {
    const ws = new WebSocket(socketUrl());
    ws.binaryType = "arraybuffer";
    state.ws = ws;
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "hello") {
        state.classes = message.classes;
        state.streamPrior = message.prior;
        $("status").textContent = "connected";
        sendFrame();
      } else if (message.type === "faces") {
        onFaces(message);
        sendFrame();
      } else if (message.type === "error") {
        $("status").textContent = message.message;
        sendFrame();
      }
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (state.running) {
        const why = event.reason || (event.code === 1008 ? "refused (token?)" : "closed");
        $("status").textContent = "connection " + why + "; reconnecting…";
        if (event.code === 1008) $("token-form").hidden = false;
        setTimeout(() => { if (state.running && !state.ws) openSocket(); }, 1500);
      }
    };
  }

  function sendFrame() {
    const ws = state.ws;
    if (!state.running || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (!video.videoWidth) { setTimeout(sendFrame, 50); return; }
    const scale = Math.min(1, SEND_WIDTH / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    grab.toBlob((blob) => {
      if (blob && state.ws === ws && ws.readyState === WebSocket.OPEN) ws.send(blob);
    }, "image/jpeg", 0.8);
  }

  function onFaces(message) {
    const now = performance.now() / 1000;
    if (state.lastReply) state.fps = 0.9 * state.fps + 0.1 / Math.max(1e-3, now - state.lastReply);
    state.lastReply = now;
    state.frames += 1;
    state.lastFaces = message.faces;
    $("fps").textContent = state.fps.toFixed(1) + " FPS";
    $("latency").textContent = `server ${message.ms.toFixed(0)} ms`;
    // overlay: the canvas has the video's pixel size; CSS scales both alike
    overlay.width = video.videoWidth;
    overlay.height = video.videoHeight;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    drawBoxes(ctx, message.faces, overlay.width / message.width);
    renderBars($("faces"), message.faces);
    for (const face of message.faces) {
      const series = state.tracks.get(face.track_id) || [];
      series.push({ t: now, p: state.classes.map((c) => face.smoothed[c]) });
      state.tracks.set(face.track_id, series);
    }
    for (const [id, series] of state.tracks) {
      while (series.length && series[0].t < now - WINDOW_S) series.shift();
      if (!series.length) state.tracks.delete(id);
    }
    drawTimeline(now);
  }

  function drawTimeline(now) {
    const lanes = [...state.tracks.entries()].slice(-4).map(([id, points]) => ({ title: "face #" + id, points }));
    window.EmotifyChart.lanes($("timeline"), lanes, {
      classes: state.classes, colours: COLOURS, t0: now - WINDOW_S, t1: now, axisLabel: "s ago", maxGap: 1.0,
      laneHeight: 90, empty: "no face yet",
    });
  }

  state.timelinePoints = () => [...state.tracks.values()].reduce((n, s) => n + s.length, 0);

  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);

  // -- drops: images and videos ---------------------------------------------------------------------------------
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((k) => drop.addEventListener(k, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((k) => drop.addEventListener(k, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) handleFile(file);
  });
  // a file dropped anywhere else must not navigate away from the page
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => { e.preventDefault(); if (e.target !== drop && e.dataTransfer.files[0]) handleFile(e.dataTransfer.files[0]); });
  $("file").addEventListener("change", (event) => { if (event.target.files[0]) handleFile(event.target.files[0]); });

  function handleFile(file) {
    showMessage("");
    if (/^image\//.test(file.type)) analyzeImage(file);
    else if (/^video\//.test(file.type) || /\.(mp4|webm|mov|avi|mkv)$/i.test(file.name)) analyzeVideo(file);
    else showMessage(`${file.name}: not an image or a video`);
  }

  async function analyzeImage(file) {
    $("video-result").hidden = true;
    try {
      const response = await api("/v1/analyze" + priorQuery("?"), { method: "POST", body: file,
        headers: { "Content-Type": file.type || "application/octet-stream" } });
      const result = await response.json();
      const bitmap = await createImageBitmap(file);
      const canvas = $("image-canvas");
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0);
      drawBoxes(ctx, result.faces, bitmap.width / result.width);
      renderBars($("image-faces"), result.faces);
      if (!result.faces.length) $("image-faces").textContent = "No face found in this image.";
      $("image-result").hidden = false;
      state.lastImage = result;
    } catch (error) {
      showMessage(`${file.name}: ${error.message}`);
    }
  }

  async function analyzeVideo(file) {
    $("image-result").hidden = true;
    $("video-result").hidden = false;
    $("download-csv").disabled = $("download-json").disabled = true;
    const stride = Math.max(1, parseInt($("stride").value, 10) || 1);
    const maxSeconds = Math.max(1, parseFloat($("max-seconds").value) || 120);
    const lines = [];
    state.videoLines = lines;
    $("video-progress").textContent = `uploading ${file.name}…`;
    try {
      const response = await api(`/v1/analyze/video?stride=${stride}&max_seconds=${maxSeconds}${priorQuery("&")}`, {
        method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "", lastDraw = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (value) buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line) lines.push(JSON.parse(line));
        }
        const last = lines[lines.length - 1];
        if (last && last.type === "frame") $("video-progress").textContent = `scored up to ${last.timestamp.toFixed(1)} s…`;
        if (performance.now() - lastDraw > 250 || done) { drawVideoChart(lines); lastDraw = performance.now(); }
        if (done) break;
      }
      const summary = lines.find((l) => l.type === "summary");
      const error = lines.find((l) => l.type === "error");
      $("video-progress").textContent = summary
        ? `${summary.frames_scored} frames scored (every ${summary.stride}th), ${summary.tracks.length} face track(s), ${(summary.ms / 1000).toFixed(1)} s` +
          (summary.stopped_by === "max_seconds" ? `; stopped at ${maxSeconds} s` : "") + (error ? `; ${error.message}` : "")
        : "the answer ended early";
      $("download-csv").disabled = $("download-json").disabled = false;
    } catch (error) {
      $("video-progress").textContent = "";
      showMessage(`${file.name}: ${error.message}`);
    }
  }

  function drawVideoChart(lines) {
    const tracks = new Map();
    let tMax = 0;
    for (const line of lines) {
      if (line.type !== "frame") continue;
      tMax = Math.max(tMax, line.timestamp);
      for (const face of line.faces) {
        const s = tracks.get(face.track_id) || [];
        s.push({ t: line.timestamp, p: state.classes.map((c) => face.smoothed[c]) });
        tracks.set(face.track_id, s);
      }
    }
    const lanes = [...tracks.entries()].sort((a, b) => b[1].length - a[1].length).slice(0, 6)
      .sort((a, b) => a[0] - b[0]).map(([id, points]) => ({ title: "face #" + id, points }));
    window.EmotifyChart.lanes($("video-chart"), lanes, {
      classes: state.classes, colours: COLOURS, t0: 0, t1: Math.max(tMax, 1), axisLabel: "s", maxGap: 2.0,
      laneHeight: 100, empty: "no face in the video (yet)",
    });
  }

  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function videoCsv(lines) {
    const head = ["frame", "timestamp", "track_id", "x", "y", "w", "h", "score", "label",
      ...state.classes, ...state.classes.map((c) => "smoothed_" + c)];
    const rows = [head.join(",")];
    for (const line of lines) {
      if (line.type !== "frame") continue;
      for (const f of line.faces) {
        rows.push([line.frame, line.timestamp, f.track_id, ...f.box.map((v) => v.toFixed(1)), (f.score ?? 0).toFixed(4),
          f.label, ...state.classes.map((c) => f.probabilities[c].toFixed(5)),
          ...state.classes.map((c) => f.smoothed[c].toFixed(5))].join(","));
      }
    }
    return rows.join("\n") + "\n";
  }

  $("download-csv").addEventListener("click", () => download("emotify-video.csv", videoCsv(state.videoLines), "text/csv"));
  $("download-json").addEventListener("click", () => download("emotify-video.json",
    JSON.stringify(state.videoLines, null, 1), "application/json"));

  drawTimeline(performance.now() / 1000);
  loadModel();
  if (new URLSearchParams(location.search).has("autostart")) startCamera();
})();
