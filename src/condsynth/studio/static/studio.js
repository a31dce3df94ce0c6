// condsynth studio: paint a layout (or draw a sketch), the server answers with the picture.
//
// The page keeps one document per model (switching back restores it): for paint models a
// label map (class ids) and an instance map (Cityscapes encoding: stuff pixels hold their
// class id, object k of thing class c holds c*1000+k), for sketch models a grey sketch (paper
// 255, ink 0) and an RGBA hint layer (transparent = no hint), for sample models (noise-driven:
// no canvas) the seeds of samples A and B, how far the picture is from A to B, and the class.
// Maps go to the server as raw little-endian arrays in base64, so ids are exact. One request at
// a time: strokes (or slider moves) made while a picture is being made are sent together when
// it is done.
"use strict";

const UPDATE_DELAY_MS = 150;      // debounce after a stroke, a fill, an upload
const HISTORY_LIMIT = 40;         // undo steps kept per model, fewer for big canvases:
const HISTORY_BYTES = 160e6;      // about this much memory for one model's undo steps
const VIEW_PX = 512;              // displayed size of the longer canvas side: at most,
const VIEW_MIN_PX = 256;          // at least (narrow windows scroll)
const VIEW_GAP = 16;              // between the two pictures (studio.css #views gap)
const FIGURE_PADDING = 26;        // a figure's padding and border (studio.css figure)
const LATENCY_WINDOW = 20;        // updates in the footer's median

const $ = (id) => document.getElementById(id);
const state = {
  models: [],
  model: null,                    // description from /api/models
  docs: new Map(),                // model id -> document
  tool: "brush",
  classId: 0,
  sizeIndex: 2,
  lastMode: null,
  stroke: null,                   // {x, y, value, instance} while the pointer is down
  timer: null,
  inFlight: false,
  dirty: false,
  generation: 0,
  latencies: [],
  frame: 0,                       // a pending requestAnimationFrame redraw
  looksTarget: null,              // null: per class; {id, classId}: one object
};

// ------------------------------------------------------------------ arrays <-> base64

function bytesToBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function base64ToBytes(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

// Typed arrays use the platform's byte order, little-endian on every browser platform.
function packArray(values, dtype, channels = 1) {
  const m = state.model;
  let typed = values;
  if (dtype === "uint8" && !(values instanceof Uint8Array || values instanceof Uint8ClampedArray)) {
    typed = Uint8Array.from(values);
  }
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  const out = { width: m.width, height: m.height, dtype, data: bytesToBase64(bytes) };
  if (channels !== 1) out.channels = channels;
  return out;
}

function unpackArray(raw) {
  const bytes = base64ToBytes(raw.data);
  if (raw.dtype === "uint8") return bytes;
  if (raw.dtype === "uint16") return new Uint16Array(bytes.buffer);
  if (raw.dtype === "int32") return new Int32Array(bytes.buffer);
  throw new Error("unknown dtype " + raw.dtype);
}

// ------------------------------------------------------------------ documents

function newDocument(m) {
  const n = m.width * m.height;
  const doc = { undo: [], redo: [], seed: 0, style: null, looks: {}, instanceLooks: {},
                result: null, counters: {} };
  if (m.mode === "paint") {
    doc.label = new Uint16Array(n).fill(m.eraser);
    doc.instance = new Int32Array(n).fill(m.eraser);
  } else if (m.mode === "sketch") {
    doc.sketch = new Uint8Array(n).fill(255);
    doc.hints = new Uint8ClampedArray(n * 4);
  } else {
    doc.seedB = 1;                // the other end of the walk
    doc.walk = 0;                 // percent of the way from A (seed) to B (seedB)
    doc.classId = 0;
    doc.attributes = (m.attributes || []).map(() => -1);   // every attribute off (-1)
  }
  return doc;
}

function doc() { return state.docs.get(state.model.id); }

function snapshot(d) {
  return d.label
    ? { label: d.label.slice(), instance: d.instance.slice(), counters: { ...d.counters } }
    : { sketch: d.sketch.slice(), hints: d.hints.slice() };
}

function restore(d, snap) {
  Object.assign(d, snap);
}

function historyLimit() {
  const m = state.model;
  const bytes = m.width * m.height * (m.mode === "paint" ? 6 : 5);   // per snapshot
  return Math.max(5, Math.min(HISTORY_LIMIT, Math.floor(HISTORY_BYTES / bytes)));
}

function remember() {
  const d = doc();
  d.undo.push(snapshot(d));
  while (d.undo.length > historyLimit()) d.undo.shift();
  d.redo = [];
  updateHistoryButtons();
}

// Undo and redo: the current state goes onto one stack, the top of the other comes back.
function travel(from, to) {
  const d = doc();
  if (!d[from].length) return;
  d[to].push(snapshot(d));
  restore(d, d[from].pop());
  changed();
}

function undo() { travel("undo", "redo"); }

function redo() { travel("redo", "undo"); }

function clearDocument() {
  remember();
  const d = doc();
  const m = state.model;
  if (m.mode === "paint") {
    d.label.fill(m.eraser);
    d.instance.fill(m.eraser);
    d.counters = {};
  } else {
    d.sketch.fill(255);
    d.hints.fill(0);
  }
  d.instanceLooks = {};
  changed();
}

function updateHistoryButtons() {
  const d = doc();
  $("undo").disabled = !d.undo.length;
  $("redo").disabled = !d.redo.length;
}

// ------------------------------------------------------------------ classes and objects

function classInfo(id) { return state.model.classes[id]; }

// Objects matter only to models that see instance boundaries.
function isThing(id) { const c = classInfo(id); return Boolean(state.model.use_instance && c && c.thing); }

// The instance id a stroke of class c paints: a new object per stroke for thing classes
// (Shift continues the previous one), the class id itself for stuff.
function strokeInstance(c, extend) {
  if (!isThing(c)) return c;
  const d = doc();
  const last = d.counters[c] || 0;
  const k = extend && last > 0 ? last : last + 1;
  d.counters[c] = k;
  return c * 1000 + k;
}

function recountObjects() {
  const d = doc();
  d.counters = {};
  for (let i = 0; i < d.instance.length; i++) {
    const v = d.instance[i];
    if (v >= 1000) {
      const c = Math.floor(v / 1000);
      d.counters[c] = Math.max(d.counters[c] || 0, v % 1000);
    }
  }
}

// ------------------------------------------------------------------ painting

function brushSizes(m) {
  const side = Math.max(m.width, m.height);
  const sizes = [0.004, 0.01, 0.025, 0.05, 0.1, 0.2].map((f) => Math.max(1, Math.round(side * f)));
  return [...new Set(sizes)];
}

function brushSize() {
  const sizes = brushSizes(state.model);
  return sizes[Math.min(state.sizeIndex, sizes.length - 1)];
}

// Calls visit(index) for every canvas pixel of a disc of diameter `size` around (x, y).
function disc(x, y, size, visit) {
  const m = state.model;
  const r = size / 2;
  const reach = Math.ceil(r);
  const offset = size % 2 === 0 ? 0.5 : 0;      // even sizes centre between pixels
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = -reach; dx <= reach; dx++) {
      const fx = dx + offset, fy = dy + offset;
      if (fx * fx + fy * fy > r * r + 0.01 && !(dx === 0 && dy === 0)) continue;
      const px = x + dx, py = y + dy;
      if (px < 0 || py < 0 || px >= m.width || py >= m.height) continue;
      visit(py * m.width + px);
    }
  }
}

function dab(x, y) {
  const d = doc();
  const s = state.stroke;
  const size = brushSize();
  if (state.model.mode === "paint") {
    disc(x, y, size, (i) => { d.label[i] = s.value; d.instance[i] = s.instance; });
  } else if (state.tool === "pen" || state.tool === "rubber") {
    const ink = state.tool === "pen" ? 0 : 255;
    disc(x, y, size, (i) => { d.sketch[i] = ink; });
  } else {
    const [r, g, b] = s.colour;
    const alpha = state.tool === "hint" ? 255 : 0;
    disc(x, y, size, (i) => {
      d.hints[4 * i] = r; d.hints[4 * i + 1] = g; d.hints[4 * i + 2] = b; d.hints[4 * i + 3] = alpha;
    });
  }
}

function line(x0, y0, x1, y1) {
  const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
  for (let t = 1; t <= steps; t++) {
    dab(Math.round(x0 + ((x1 - x0) * t) / steps), Math.round(y0 + ((y1 - y0) * t) / steps));
  }
}

// 4-connected flood fill of the region of equal class under (x, y).
function fill(x, y) {
  const m = state.model;
  const d = doc();
  const start = y * m.width + x;
  const from = d.label[start];
  const to = state.classId;
  const inst = strokeInstance(to, false);
  if (from === to && !isThing(to)) return false;
  const seen = new Uint8Array(d.label.length);
  const stack = [start];
  seen[start] = 1;
  while (stack.length) {
    const i = stack.pop();
    d.label[i] = to;
    d.instance[i] = inst;
    const px = i % m.width, py = (i - px) / m.width;
    const next = [px > 0 ? i - 1 : -1, px < m.width - 1 ? i + 1 : -1,
                  py > 0 ? i - m.width : -1, py < m.height - 1 ? i + m.width : -1];
    for (const j of next) {
      if (j >= 0 && !seen[j] && d.label[j] === from) { seen[j] = 1; stack.push(j); }
    }
  }
  return true;
}

function canvasPoint(event) {
  const canvas = $("layout");
  const rect = canvas.getBoundingClientRect();
  const m = state.model;
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * m.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * m.height);
  return [Math.min(Math.max(x, 0), m.width - 1), Math.min(Math.max(y, 0), m.height - 1)];
}

function hexColour(text) {
  return [1, 3, 5].map((i) => parseInt(text.slice(i, i + 2), 16));
}

function onPointerDown(event) {
  if (event.button !== 0 || !state.model) return;
  hideError();                                 // a still-failing model says so again
  const [x, y] = canvasPoint(event);
  const m = state.model;
  const d = doc();
  if (state.tool === "pick") {
    pickObject(x, y);
    return;
  }
  if (state.tool === "fill") {
    remember();
    if (fill(x, y)) changed(); else d.undo.pop();
    return;
  }
  remember();
  $("layout").setPointerCapture(event.pointerId);
  if (m.mode === "paint") {
    const value = state.tool === "eraser" ? m.eraser : state.classId;
    state.stroke = { x, y, value, instance: strokeInstance(value, event.shiftKey) };
  } else {
    state.stroke = { x, y, colour: hexColour($("hint-colour").value) };
  }
  dab(x, y);
  requestRender();
}

function onPointerMove(event) {
  if (!state.stroke) return;
  const [x, y] = canvasPoint(event);
  if (x === state.stroke.x && y === state.stroke.y) return;
  line(state.stroke.x, state.stroke.y, x, y);
  state.stroke.x = x;
  state.stroke.y = y;
  requestRender();
}

function onPointerUp() {
  if (!state.stroke) return;
  state.stroke = null;
  changed();
}

// ------------------------------------------------------------------ drawing the layout

// At most one redraw per display frame while a stroke moves (big canvases take a while).
function requestRender() {
  if (state.frame) return;
  state.frame = requestAnimationFrame(() => { state.frame = 0; render(); });
}

// Whether pixel i's instance id differs from a 4-neighbour's: the boundary map the network sees.
function onEdge(instance, i, w) {
  const v = instance[i];
  const x = i % w;
  return (x > 0 && instance[i - 1] !== v) || (x < w - 1 && instance[i + 1] !== v) ||
    (i >= w && instance[i - w] !== v) || (i + w < instance.length && instance[i + w] !== v);
}

function render() {
  const m = state.model;
  if (m.mode === "sample") return;             // no canvas
  const d = doc();
  const canvas = $("layout");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(m.width, m.height);
  const px = image.data;
  if (m.mode === "paint") {
    const table = m.classes.map((c) => c.colour);
    const edges = m.use_instance && $("show-edges").checked;
    const w = m.width;
    for (let i = 0; i < d.label.length; i++) {
      const colour = table[d.label[i]] || [48, 48, 48];        // dont-care: dark grey
      let shade = 1;
      if (edges && onEdge(d.instance, i, w)) shade = 0.7;
      px[4 * i] = colour[0] * shade;
      px[4 * i + 1] = colour[1] * shade;
      px[4 * i + 2] = colour[2] * shade;
      px[4 * i + 3] = 255;
    }
  } else {
    for (let i = 0; i < d.sketch.length; i++) {
      const grey = d.sketch[i];
      const hinted = d.hints[4 * i + 3] > 0;
      for (let k = 0; k < 3; k++) {
        // Hints tint the paper; lines stay dark on top of them.
        px[4 * i + k] = hinted ? (d.hints[4 * i + k] * grey) / 255 : grey;
      }
      px[4 * i + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
}

// ------------------------------------------------------------------ talking to the server

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    if (type.startsWith("application/json")) message = (await response.json()).error || message;
    throw new Error(message);
  }
  return type.startsWith("application/json") ? response.json() : response.blob();
}

function postJson(path, value) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                     body: JSON.stringify(value) });
}

function generateRequest() {
  const m = state.model;
  const d = doc();
  const request = { model: m.id, seed: d.seed };
  if (m.mode === "paint") {
    request.label = packArray(d.label, m.label_dtype);
    if (m.use_instance) request.instance = packArray(d.instance, "int32");
    if (d.style) request.style = d.style.split(",", 2)[1];
    if (Object.keys(d.looks).length) request.looks = d.looks;
    if (Object.keys(d.instanceLooks).length) request.instance_looks = d.instanceLooks;
  } else if (m.mode === "sketch") {
    request.sketch = packArray(d.sketch, "uint8");
    if (d.hints.some((v, i) => i % 4 === 3 && v > 0)) request.hints = packArray(d.hints, "uint8", 4);
  } else {
    if (m.classes.length) request.class = d.classId;
    if (m.attributes && m.attributes.length) request.attributes = d.attributes.slice();
    if (m.latent) {
      request.seed_b = d.seedB;
      request.t = d.walk / 100;
    }
  }
  return request;
}

// data-pending on <body> is "1" from a change until the picture for it has arrived (or
// failed): what a person sees as "updating", and what the browser tests wait for.
function changed() {
  updateHistoryButtons();
  render();
  clearTimeout(state.timer);
  document.body.dataset.pending = "1";
  state.timer = setTimeout(update, UPDATE_DELAY_MS);
}

async function update() {
  state.timer = null;
  if (state.inFlight) { state.dirty = true; return; }
  state.inFlight = true;
  state.dirty = false;
  const m = state.model;
  const d = doc();
  setBusy(true);
  const start = performance.now();
  try {
    const answer = await postJson("/api/generate", generateRequest());
    const total = performance.now() - start;
    d.result = answer.image;
    if (state.model === m) showResult(d);
    showStages(state.model === m ? answer.stages : undefined);
    hideError();
    if (answer.notes && answer.notes.length) showNotes(answer.notes);
    recordLatency(answer.ms, total, m);
    state.generation += 1;
    document.body.dataset.generation = String(state.generation);
  } catch (error) {
    showError(error.message);
  } finally {
    state.inFlight = false;
    setBusy(false);
    if (state.dirty) update();
    else if (state.timer === null) document.body.dataset.pending = "0";
  }
}

function showResult(d) {
  const img = $("result");
  if (d.result) img.src = d.result; else img.removeAttribute("src");
  $("download-result").disabled = !d.result;
}

// A pipeline's intermediate pictures (normals, sketches), one captioned picture per stage.
function showStages(stages) {
  const box = $("stages");
  box.replaceChildren();
  $("stages-figure").hidden = !stages;
  for (const s of stages || []) {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = s.image;
    img.alt = `output of stage ${s.stage}`;
    const caption = document.createElement("figcaption");
    caption.textContent = s.stage;
    figure.append(img, caption);
    box.append(figure);
  }
}

function recordLatency(modelMs, totalMs, m) {
  state.latencies.push(modelMs);
  if (state.latencies.length > LATENCY_WINDOW) state.latencies.shift();
  const sorted = [...state.latencies].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  $("latency").textContent = `update: ${modelMs.toFixed(0)} ms model · ${totalMs.toFixed(0)} ms ` +
    `round trip · median ${median.toFixed(0)} ms over ${sorted.length} · ` +
    `${m.width}×${m.height} on ${m.device}`;
  $("latency").dataset.ms = String(modelMs);
}

function setBusy(busy) {
  document.body.dataset.state = busy ? "busy" : ($("error").hidden ? "idle" : "error");
  $("busy").textContent = busy ? "updating…" : "";
}

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
  document.body.dataset.state = "error";
}

function hideError() {
  $("error").hidden = true;
  if (document.body.dataset.state === "error") document.body.dataset.state = "idle";
}

function showNotes(notes) {
  $("notes-text").textContent = notes.join("\n");
  $("notes").hidden = false;
}

// ------------------------------------------------------------------ uploads and downloads

async function upload(kind, input) {
  const file = input.files[0];
  input.value = "";                            // the same file may be chosen again
  if (!file) return;
  hideError();                                 // a new action: the last error is old news
  const m = state.model;
  const d = doc();
  const query = `model=${encodeURIComponent(m.id)}&name=${encodeURIComponent(file.name)}`;
  try {
    const answer = await api(`/api/upload/${kind}?${query}`, { method: "POST", body: file });
    hideError();
    if (answer.notes && answer.notes.length) showNotes(answer.notes); else $("notes").hidden = true;
    if (kind === "style") {
      d.style = answer.image;
      showStyle(d);
      changed();
      return;
    }
    remember();
    if (kind === "label") {
      d.label = Uint16Array.from(unpackArray(answer.label));
      d.instance = unpackArray(answer.instance);
      d.instanceLooks = {};
      recountObjects();
    } else if (kind === "instance") {
      d.instance = unpackArray(answer.instance);
      d.instanceLooks = {};
      recountObjects();
    } else {
      d.sketch = unpackArray(answer.sketch);
    }
    changed();
  } catch (error) {
    showError(error.message);
  }
}

function saveAs(href, name) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

async function downloadMap(kind) {
  const m = state.model;
  const d = doc();
  const map = kind === "label" ? packArray(d.label, m.label_dtype)
    : kind === "instance" ? packArray(d.instance, "int32") : packArray(d.sketch, "uint8");
  try {
    const blob = await postJson("/api/png", { model: m.id, kind, map });
    const url = URL.createObjectURL(blob);
    saveAs(url, `${m.id}-${kind === "label" ? "layout" : kind}.png`);
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    showError(error.message);
  }
}

// ------------------------------------------------------------------ style and looks

function showStyle(d) {
  $("style-box").hidden = !d.style;
  if (d.style) $("style-preview").src = d.style; else $("style-preview").removeAttribute("src");
}

function randomSeed() { return Math.floor(Math.random() * 2 ** 31); }

function anotherLook() {
  const d = doc();
  d.seed = randomSeed();
  $("seed").textContent = String(d.seed);
  changed();
}

// ------------------------------------------------------------------ sample mode

function showSample(d) {
  $("seed-a").textContent = String(d.seed);
  $("seed-b").textContent = String(d.seedB);
  $("walk").value = String(d.walk);
  $("walk-value").textContent = String(d.walk);
  $("sample-class").value = String(d.classId);
  showAttributes(d);
}

// Attribute toggles (on = 1, off = -1) and the command that makes the same picture.
function buildAttributeToggles(m) {
  const box = $("attribute-toggles");
  box.replaceChildren();
  const has = Boolean(m.attributes && m.attributes.length);
  $("attributes-section").hidden = !has;
  $("new-sample").textContent = has ? "New noise" : "New sample";
  $("new-sample").title = has ? "new noise (a new seed), the same attributes"
    : "a new random sample (new seed for A)";
  (m.attributes || []).forEach((name, i) => {
    const label = document.createElement("label");
    label.className = "toggle";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.dataset.attribute = name;
    input.addEventListener("change", () => {
      doc().attributes[i] = input.checked ? 1 : -1;
      showAttributes(doc());
      changed();
    });
    label.append(input, document.createTextNode(" " + name));
    box.append(label);
  });
}

function showAttributes(d) {
  const m = state.model;
  if (!m.attributes || !m.attributes.length) return;
  for (const input of $("attribute-toggles").querySelectorAll("input")) {
    input.checked = d.attributes[m.attributes.indexOf(input.dataset.attribute)] === 1;
  }
  const on = m.attributes.filter((name, i) => d.attributes[i] === 1).map((n) => `${n}=1`);
  $("attribute-recipe").textContent =
    `condsynth synthesize ${m.run} --attributes "${on.join(",")}" --seed ${d.seed} ` +
    `--out ${m.stages ? "OUT" : "OUT.png"}`;
}

// New sample shows the new A (the slider goes back to A), New B the new B (to B): a new end
// of the walk is always seen first.
function newSample(end) {
  const d = doc();
  if (end === "a") { d.seed = randomSeed(); d.walk = 0; } else { d.seedB = randomSeed(); d.walk = 100; }
  showSample(d);
  changed();
}

function buildClassPicker(m) {
  const select = $("sample-class");
  select.textContent = "";
  for (const c of m.classes) {
    const option = document.createElement("option");
    option.value = String(c.id);
    option.textContent = `${c.id} ${c.name}`;
    select.append(option);
  }
  $("class-field").hidden = !m.classes.length;
}

async function loadLooks(m) {
  const box = $("looks");
  try {
    const answer = await api(`/api/looks?model=${encodeURIComponent(m.id)}`);
    m.thumbnails = answer.classes;
    if (state.model === m) drawLooks();
  } catch (error) {
    box.textContent = "";
    showError(error.message);
  }
}

function drawLooks() {
  const m = state.model;
  const d = doc();
  const box = $("looks");
  box.textContent = "";
  const target = state.looksTarget;
  $("looks-target").textContent = target
    ? `object ${target.id % 1000} of ${classInfo(target.classId).name}` : "per class";
  $("looks-all").hidden = !target;
  for (const row of m.thumbnails || []) {
    if (target && row.id !== target.classId) continue;
    const info = classInfo(row.id);
    const chosen = target ? d.instanceLooks[target.id] : d.looks[row.id];
    const div = document.createElement("div");
    div.className = "look-row";
    const name = document.createElement("div");
    name.className = "name";
    name.append(swatch(info.colour), info.name);
    const tiles = document.createElement("div");
    tiles.className = "tiles";
    const random = document.createElement("button");
    random.type = "button";
    random.textContent = "any";
    random.title = "a random look (changes with 'Another look')";
    random.classList.toggle("active", chosen === undefined);
    random.addEventListener("click", () => chooseLook(row.id, undefined));
    tiles.append(random);
    row.looks.forEach((src, k) => {
      const b = document.createElement("button");
      b.type = "button";
      b.title = `look ${k + 1} of ${info.name}`;
      b.dataset.look = `${row.id}:${k}`;
      b.classList.toggle("active", chosen === k);
      const img = document.createElement("img");
      img.src = src;
      img.alt = b.title;
      b.append(img);
      b.addEventListener("click", () => chooseLook(row.id, k));
      tiles.append(b);
    });
    div.append(name, tiles);
    box.append(div);
  }
}

function chooseLook(classId, k) {
  const d = doc();
  const target = state.looksTarget;
  const table = target ? d.instanceLooks : d.looks;
  const key = String(target ? target.id : classId);
  if (k === undefined) delete table[key]; else table[key] = k;
  drawLooks();
  changed();
}

function pickObject(x, y) {
  const m = state.model;
  const d = doc();
  const i = y * m.width + x;
  const classId = d.label[i];
  if (!(String(classId) in m.looks)) {
    const name = classInfo(classId) ? classInfo(classId).name : "this region";
    showNotes([`${name} has no looks to choose from.`]);
    return;
  }
  // Stuff regions share their class's look; an object gets a look of its own.
  state.looksTarget = d.instance[i] >= 1000 ? { id: d.instance[i], classId } : null;
  drawLooks();
}

// ------------------------------------------------------------------ building the page

function swatch(colour) {
  const span = document.createElement("span");
  span.className = "swatch";
  span.style.background = `rgb(${colour.join(",")})`;
  return span;
}

function buildPalette(m) {
  const box = $("palette");
  box.textContent = "";
  for (const c of m.classes) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.class = String(c.id);
    b.setAttribute("role", "option");
    b.append(swatch(c.colour), c.name);
    if (c.thing && m.use_instance) {
      const mark = document.createElement("span");
      mark.className = "thing";
      mark.textContent = "●";
      mark.title = "object class: each stroke is a new object";
      b.append(mark);
    }
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = String(c.id);
    b.append(id);
    b.addEventListener("click", () => {
      selectClass(c.id);
      if (state.tool === "eraser" || state.tool === "pick") selectTool("brush");
    });
    box.append(b);
  }
  $("thing-hint").hidden = !m.use_instance || !m.classes.some((c) => c.thing);
}

function selectClass(id) {
  state.classId = id;
  for (const b of $("palette").children) b.classList.toggle("active", b.dataset.class === String(id));
}

function selectTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll("[data-tool]")) {
    b.classList.toggle("active", b.dataset.tool === tool);
  }
  const canvas = $("layout");
  canvas.classList.toggle("fill", tool === "fill");
  canvas.classList.toggle("pick", tool === "pick");
}

function buildSizes(m) {
  const box = $("sizes");
  box.textContent = "";
  brushSizes(m).forEach((size, index) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.size = String(size);
    b.textContent = String(size);
    b.title = `brush ${size} px`;
    b.addEventListener("click", () => selectSize(index));
    box.append(b);
  });
  selectSize(Math.min(state.sizeIndex, box.children.length - 1));
}

function selectSize(index) {
  state.sizeIndex = index;
  [...$("sizes").children].forEach((b, i) => b.classList.toggle("active", i === index));
}

// Displayed size: both pictures side by side in the space between the panels (the result
// alone in sample mode), whole-number zoom when the canvas is small (crisp pixels).
function viewSize(m) {
  const pictures = m.mode === "sample" ? 1 : 2;
  const room = Math.floor(($("views").clientWidth - VIEW_GAP * (pictures - 1)) / pictures) -
    FIGURE_PADDING;
  const target = Math.max(VIEW_MIN_PX, Math.min(VIEW_PX, room));
  const longer = Math.max(m.width, m.height);
  const scale = longer <= target ? Math.floor(target / longer) : target / longer;
  return [Math.round(m.width * scale), Math.round(m.height * scale)];
}

function layoutViews() {
  const m = state.model;
  if (!m) return;
  const [w, h] = viewSize(m);
  for (const el of [$("layout"), $("result")]) { el.style.width = `${w}px`; el.style.height = `${h}px`; }
  document.documentElement.style.setProperty("--view-w", `${w}px`);
  document.documentElement.style.setProperty("--view-h", `${h}px`);
}

function showModel(m) {
  state.model = m;
  state.looksTarget = null;
  if (!state.docs.has(m.id)) state.docs.set(m.id, newDocument(m));
  const d = doc();
  const sample = m.mode === "sample";
  for (const el of document.querySelectorAll("[data-mode]")) el.hidden = el.dataset.mode !== m.mode;
  $("layout-figure").hidden = $("tool-section").hidden = sample;
  $("walk-section").hidden = !sample || !m.latent;
  $("upload-instance-button").hidden = m.mode !== "paint" || !m.use_instance;
  $("download-instance").hidden = m.mode !== "paint" || !m.use_instance;
  $("edges-toggle").hidden = m.mode !== "paint" || !m.use_instance;
  $("tool-hint").hidden = $("tool-unhint").hidden = $("hint-colour").hidden = !m.hints;
  $("tool-pick").hidden = !Object.keys(m.looks).length;
  $("layout-caption").textContent = m.mode === "paint" ? "Layout" : "Sketch";
  $("canvas-size").textContent = `${m.width}×${m.height}`;
  $("model-info").textContent = `${m.method} · ${m.mode} mode · ${m.run}`;
  const count = `${state.models.length} model${state.models.length === 1 ? "" : "s"}`;
  $("status").textContent = {
    paint: `${count} · paint classes; the picture follows each stroke`,
    sketch: `${count} · draw lines${m.hints ? " and colour hints" : ""}; the picture follows each stroke`,
    sample: `${count} · new samples${m.classes.length ? " of a chosen class" : ""}` +
      `${m.attributes && m.attributes.length ? " with chosen attributes" : ""}` +
      `${m.latent ? "; slide from sample A to sample B" : ""}`,
  }[m.mode];
  const eraserName = m.eraser === m.dontcare && !classInfo(m.eraser) ? "dont-care"
    : (classInfo(m.eraser) || { name: String(m.eraser) }).name;
  $("tool-eraser").title = `paint the background: ${eraserName} (class ${m.eraser}) (E)`;

  const canvas = $("layout");
  canvas.width = m.width;
  canvas.height = m.height;

  if (m.mode === "paint") {
    buildPalette(m);
    selectClass(Math.min(state.classId, m.classes.length - 1));
    const keep = ["brush", "fill", "eraser"].includes(state.tool) ||
      (state.tool === "pick" && Object.keys(m.looks).length > 0);
    selectTool(keep ? state.tool : "brush");
  } else if (m.mode === "sketch") {
    selectTool(["pen", "hint", "rubber", "unhint"].includes(state.tool) ? state.tool : "pen");
  } else {
    buildClassPicker(m);
    buildAttributeToggles(m);
    showSample(d);
  }
  if (!sample) {
    if (m.mode !== state.lastMode) state.sizeIndex = m.mode === "paint" ? 2 : 1;   // thin pen
    state.lastMode = m.mode;
    buildSizes(m);
  }

  const hasLooks = Object.keys(m.looks).length > 0;
  const random = m.random && !sample;           // sample mode has New sample instead
  $("random-section").hidden = !random;
  $("style-section").hidden = !m.style_image;
  $("looks-section").hidden = !hasLooks;
  $("look-panel").hidden = !(random || m.style_image || hasLooks);
  layoutViews();
  $("seed").textContent = String(d.seed);
  showStyle(d);
  if (hasLooks) {
    if (m.thumbnails) {
      drawLooks();
    } else {
      $("looks").innerHTML = '<p class="hint">loading looks…</p>';
      loadLooks(m);
    }
  }
  showResult(d);
  hideError();
  $("notes").hidden = true;
  updateHistoryButtons();
  render();
  if (!d.result) changed();
}

function bindEvents() {
  const canvas = $("layout");
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  for (const b of document.querySelectorAll("[data-tool]")) {
    b.addEventListener("click", () => selectTool(b.dataset.tool));
  }
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", clearDocument);
  $("show-edges").addEventListener("change", render);
  $("upload-label").addEventListener("change", (e) => upload("label", e.target));
  $("upload-instance").addEventListener("change", (e) => upload("instance", e.target));
  $("upload-sketch").addEventListener("change", (e) => upload("sketch", e.target));
  $("upload-style").addEventListener("change", (e) => upload("style", e.target));
  $("download-layout").addEventListener("click", () => downloadMap("label"));
  $("download-instance").addEventListener("click", () => downloadMap("instance"));
  $("download-sketch").addEventListener("click", () => downloadMap("sketch"));
  $("download-result").addEventListener("click", () => {
    const d = doc();
    if (d.result) saveAs(d.result, `${state.model.id}-result.png`);
  });
  $("style-clear").addEventListener("click", () => {
    const d = doc();
    d.style = null;
    showStyle(d);
    changed();
  });
  $("another-look").addEventListener("click", anotherLook);
  $("new-sample").addEventListener("click", () => newSample("a"));
  $("new-b").addEventListener("click", () => newSample("b"));
  $("walk").addEventListener("input", (e) => {
    const d = doc();
    d.walk = Number(e.target.value);
    $("walk-value").textContent = String(d.walk);
    changed();
  });
  $("sample-class").addEventListener("change", (e) => {
    doc().classId = Number(e.target.value);
    changed();
  });
  $("looks-all").addEventListener("click", () => { state.looksTarget = null; drawLooks(); });
  for (const b of document.querySelectorAll("[data-close]")) {
    b.addEventListener("click", () => { $(b.dataset.close).hidden = true; });
  }
  window.addEventListener("resize", layoutViews);
  $("model").addEventListener("change", (e) => {
    showModel(state.models.find((m) => m.id === e.target.value));
  });
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && key === "z") {
      e.preventDefault();
      if (e.shiftKey) redo(); else undo();
      return;
    }
    if ((e.ctrlKey || e.metaKey) && key === "y") { e.preventDefault(); redo(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey || !state.model || state.model.mode === "sample") return;
    const paint = state.model && state.model.mode === "paint";
    const tools = paint ? { b: "brush", f: "fill", e: "eraser" } : { p: "pen", h: "hint", e: "rubber" };
    if (tools[key] && !$(`tool-${tools[key]}`).hidden) selectTool(tools[key]);
    if (key === "[") selectSize(Math.max(0, state.sizeIndex - 1));
    if (key === "]") selectSize(Math.min($("sizes").children.length - 1, state.sizeIndex + 1));
  });
}

async function start() {
  bindEvents();
  try {
    const answer = await api("/api/models");
    state.models = answer.models;
    const select = $("model");
    for (const m of state.models) {
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = `${m.id} (${m.method})`;
      select.append(option);
    }
    showModel(state.models[0]);
  } catch (error) {
    showError(`the studio could not start: ${error.message}`);
  }
}

start();
