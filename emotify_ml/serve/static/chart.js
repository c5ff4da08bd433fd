/* Emotify charts: small canvas line charts, drawn by hand (no library, nothing fetched).
 *
 * EmotifyChart.lanes(canvas, lanes, options) draws one lane per face: the probability of each
 * class over time, one coloured line per class, with a shared time axis and a legend.
 *   lanes:   [{title: "face 1", points: [{t: seconds, p: [7 numbers]}, ...]}, ...]
 *   options: {classes: [...names], colours: [...css colours], t0, t1, axisLabel: "s ago" | "s"}
 */
(function () {
  "use strict";

  const PALETTE = ["#d7263d", "#3a7d2c", "#8e44ad", "#f0a202", "#1b6ca8", "#17a2b8", "#8a8f98"];

  function setupCanvas(canvas, cssHeight) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = cssHeight;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { ctx, width, height };
  }

  function lanes(canvas, data, options) {
    const classes = options.classes || [];
    const colours = options.colours || PALETTE;
    const laneHeight = options.laneHeight || 110;
    const legend = 24, axis = 22, left = 44, right = 12;
    const shown = data.length ? data : [{ title: options.empty || "no face yet", points: [] }];
    const { ctx, width, height } = setupCanvas(canvas, legend + axis + shown.length * laneHeight);
    canvas.style.height = height + "px";
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";

    // legend
    let x = left;
    classes.forEach((name, k) => {
      ctx.fillStyle = colours[k % colours.length];
      ctx.fillRect(x, 8, 14, 4);
      ctx.fillStyle = "#1d2330";
      ctx.fillText(name, x + 18, 10);
      x += ctx.measureText(name).width + 34;
    });

    const t0 = options.t0, t1 = options.t1 > options.t0 ? options.t1 : options.t0 + 1;
    const plotW = width - left - right;
    const xOf = (t) => left + ((t - t0) / (t1 - t0)) * plotW;

    shown.forEach((lane, i) => {
      const top = legend + i * laneHeight + 14, h = laneHeight - 22;
      const yOf = (p) => top + h - p * h;
      ctx.strokeStyle = "#d9dde4";
      ctx.lineWidth = 1;
      ctx.strokeRect(left, top, plotW, h);
      ctx.fillStyle = "#5d6677";
      ctx.fillText("1", left - 14, yOf(1));
      ctx.fillText("0", left - 14, yOf(0));
      ctx.fillText(lane.title, left + 4, top - 8);
      const points = lane.points.filter((pt) => pt.t >= t0 && pt.t <= t1);
      for (let k = 0; k < classes.length; k++) {
        ctx.strokeStyle = colours[k % colours.length];
        ctx.lineWidth = 1.6;
        ctx.beginPath();
        let drawing = false, lastT = null;
        for (const pt of points) {
          const gap = lastT !== null && options.maxGap && pt.t - lastT > options.maxGap;
          if (!drawing || gap) { ctx.moveTo(xOf(pt.t), yOf(pt.p[k])); drawing = true; }
          else ctx.lineTo(xOf(pt.t), yOf(pt.p[k]));
          lastT = pt.t;
        }
        ctx.stroke();
      }
    });

    // time axis
    const base = legend + shown.length * laneHeight + 4;
    ctx.fillStyle = "#5d6677";
    const ticks = 6;
    for (let j = 0; j <= ticks; j++) {
      const t = t0 + (j / ticks) * (t1 - t0);
      const label = options.axisLabel === "s ago" ? `${Math.round(t1 - t)} s ago` : `${t.toFixed(1)} s`;
      const w = ctx.measureText(label).width;
      ctx.fillText(label, Math.min(Math.max(xOf(t) - w / 2, 0), width - w), base + 8);
    }
  }

  window.EmotifyChart = { lanes, PALETTE };
})();
