// boxstrap review: the photos of a run in review order, their boxes drawn over them, keyboard first.
// Every change is posted to the server as it is made (/api/correction); the server keeps the file.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const COLORS = ["#ff4d4d", "#4da6ff", "#5cd65c", "#ffb84d", "#c44dff", "#4dffdb", "#ff4da6", "#d6d65c", "#aaaaaa"];
const MAX_WIDTH = 800;
const MAX_HEIGHT = 640;

let labels = [];
let photos = [];
let current = 0;
let selected = -1;
let image = null;
let drag = null;        // {mode: "draw" | "move", start: [x, y], box, original}
const undo = [];        // {id, before: photo state}

function api(path, options = {}) {
  const headers = Object.assign({"X-Boxstrap-Token": token}, options.headers || {});
  return fetch(path, Object.assign({}, options, {headers})).then(async (response) => {
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  });
}

function say(text, ok) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = ok ? "ok" : "";
}

function copyPhoto(p) {
  return {label: p.label, reviewed: p.reviewed, boxes: p.boxes.map((b) => ({xyxy: b.xyxy.slice(), label: b.label}))};
}

function scale() {
  const p = photos[current];
  return canvas.width / p.width;
}

function load(index) {
  current = Math.max(0, Math.min(photos.length - 1, index));
  selected = photos[current].boxes.length ? 0 : -1;
  const p = photos[current];
  // As large as fits the window beside the panel (small photos too), at most MAX_WIDTH x MAX_HEIGHT.
  const width = Math.max(320, Math.min(MAX_WIDTH, window.innerWidth - 440));
  const height = Math.max(240, Math.min(MAX_HEIGHT, window.innerHeight - 80));
  const s = Math.min(width / p.width, height / p.height);
  canvas.width = Math.round(p.width * s);
  canvas.height = Math.round(p.height * s);
  image = new Image();
  image.onload = draw;
  image.src = `/photo/${p.id}?token=${encodeURIComponent(token)}`;
  draw();
}

function draw() {
  const p = photos[current];
  if (!p) return;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (image && image.complete && image.naturalWidth) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  const s = scale();
  p.boxes.forEach((b, k) => {
    const [x0, y0, x1, y1] = b.xyxy.map((v) => v * s);
    ctx.lineWidth = k === selected ? 4 : 2;
    ctx.strokeStyle = COLORS[Math.max(0, labels.indexOf(b.label)) % COLORS.length];
    ctx.setLineDash(k === selected ? [] : [6, 3]);
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.setLineDash([]);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.font = "14px system-ui, sans-serif";
    ctx.fillText(`${k + 1} ${b.label}`, x0 + 3, Math.max(14, y0 - 4));
  });
  const reviewed = photos.filter((q) => q.reviewed).length;
  document.getElementById("progress").textContent =
    `photo ${current + 1} of ${photos.length} · reviewed ${reviewed} of ${photos.length}`;
  document.getElementById("name").textContent = p.name;
  document.getElementById("meta").textContent =
    `confidence ${p.confidence.toFixed(2)}${p.note ? " · " + p.note : ""}${p.reviewed ? " · reviewed" : ""}`;
  document.getElementById("label").textContent = `class: ${p.label}`;
  const list = document.getElementById("boxes");
  list.innerHTML = "";
  p.boxes.forEach((b, k) => {
    const li = document.createElement("li");
    li.textContent = `${b.label} [${b.xyxy.map((v) => Math.round(v)).join(", ")}]`;
    if (k === selected) li.className = "selected";
    list.appendChild(li);
  });
}

// Save the current photo as reviewed with its boxes now (or, with reviewed false, forget it).
function save(reviewed = true) {
  const p = photos[current];
  const body = {id: p.id, reviewed, label: p.label, boxes: p.boxes};
  return api("/api/correction", {method: "POST", headers: {"Content-Type": "application/json"},
                                 body: JSON.stringify(body)})
    .then((state) => {
      photos[state.id] = state;
      if (state.id === current && selected >= state.boxes.length) selected = state.boxes.length - 1;
      draw();
      say(reviewed ? "saved" : "undone", true);
    })
    .catch((error) => say(error.message, false));
}

function remember() {
  undo.push({id: current, before: copyPhoto(photos[current])});
}

function change(edit) {
  remember();
  edit(photos[current]);
  return save(true);
}

function undoLast() {
  const last = undo.pop();
  if (!last) return say("nothing to undo", false);
  if (last.id !== current) load(last.id);
  Object.assign(photos[current], copyPhoto(last.before));
  return save(last.before.reviewed);
}

function toPhoto(event) {
  const rect = canvas.getBoundingClientRect();
  const s = scale() * rect.width / canvas.width;
  const p = photos[current];
  const x = Math.max(0, Math.min(p.width, (event.clientX - rect.left) / s));
  const y = Math.max(0, Math.min(p.height, (event.clientY - rect.top) / s));
  return [x, y];
}

function boxAt([x, y]) {
  const boxes = photos[current].boxes;
  for (let k = boxes.length - 1; k >= 0; k--) {
    const [x0, y0, x1, y1] = boxes[k].xyxy;
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1) return k;
  }
  return -1;
}

canvas.addEventListener("mousedown", (event) => {
  canvas.focus({preventScroll: true});
  const point = toPhoto(event);
  const k = boxAt(point);
  const p = photos[current];
  if (k >= 0) {
    selected = k;
    drag = {mode: "move", start: point, box: k, before: copyPhoto(p), original: p.boxes[k].xyxy.slice()};
  } else {
    drag = {mode: "draw", start: point, before: copyPhoto(p), box: -1};
  }
  draw();
});

canvas.addEventListener("mousemove", (event) => {
  if (!drag) return;
  const p = photos[current];
  const [x, y] = toPhoto(event);
  if (drag.mode === "move") {
    const [x0, y0, x1, y1] = drag.original;
    const dx = Math.max(-x0, Math.min(p.width - x1, x - drag.start[0]));
    const dy = Math.max(-y0, Math.min(p.height - y1, y - drag.start[1]));
    p.boxes[drag.box].xyxy = [x0 + dx, y0 + dy, x1 + dx, y1 + dy];
  } else {
    const [sx, sy] = drag.start;
    const xyxy = [Math.min(sx, x), Math.min(sy, y), Math.max(sx, x), Math.max(sy, y)];
    if (drag.box < 0) {
      p.boxes.push({xyxy, label: p.label});
      drag.box = p.boxes.length - 1;
    } else {
      p.boxes[drag.box].xyxy = xyxy;
    }
    selected = drag.box;
  }
  draw();
});

window.addEventListener("mouseup", () => {
  if (!drag) return;
  const p = photos[current];
  const done = drag;
  drag = null;
  if (done.box < 0) return;
  const [x0, y0, x1, y1] = p.boxes[done.box].xyxy;
  if (done.mode === "draw" && (x1 - x0 < 2 || y1 - y0 < 2)) {  // a click, not a box
    p.boxes.splice(done.box, 1);
    selected = p.boxes.length - 1;
    return draw();
  }
  if (done.mode === "move" && p.boxes[done.box].xyxy.every((v, i) => v === done.original[i])) return draw();
  undo.push({id: current, before: done.before});
  save(true);
});

document.addEventListener("keydown", (event) => {
  if (!photos.length) return;
  const p = photos[current];
  const key = event.key;
  if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") {
    event.preventDefault();
    return undoLast();
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (key === "Enter" || key === "a") {
    event.preventDefault();
    remember();
    return save(true).then(() => { if (current < photos.length - 1) load(current + 1); });
  }
  if (key === "ArrowRight" || key === "n") return load(current + 1);
  if (key === "ArrowLeft" || key === "p") return load(current - 1);
  if (key === "Tab") {
    event.preventDefault();
    if (p.boxes.length) selected = (selected + 1) % p.boxes.length;
    return draw();
  }
  if ((key === "Delete" || key === "Backspace" || key === "x") && selected >= 0) {
    event.preventDefault();
    const k = selected;
    selected = Math.min(k, p.boxes.length - 2);
    return change((q) => q.boxes.splice(k, 1));
  }
  if (/^[1-9]$/.test(key) || key === "c") {
    const next = key === "c" ? (labels.indexOf(p.label) + 1) % labels.length : Number(key) - 1;
    if (next >= labels.length) return say(`there are ${labels.length} classes`, false);
    return change((q) => {
      q.label = labels[next];
      if (selected >= 0) q.boxes[selected].label = labels[next];
    });
  }
  if (key === "u") return undoLast();
});

api("/api/state")
  .then((state) => {
    labels = state.labels;
    photos = state.photos;
    if (!photos.length) return say("this run has no photos to review", false);
    const first = photos.findIndex((p) => !p.reviewed);
    load(first < 0 ? 0 : first);
    canvas.focus({preventScroll: true});
  })
  .catch((error) => say(error.message, false));
