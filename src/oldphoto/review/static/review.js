// oldphoto review: the page's behaviour (docs/review.md).  Plain JavaScript, no build step.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const PAGE = 60;

const ui = {
  state: null,          // /api/state
  photo: null,          // /api/photo/{id} of the photo shown
  view: "photo",
  gridOffset: 0,
  // one zoom and position for both panes: image pixel (x, y) appears at pane (tx + s*x, ty + s*y)
  zoom: { s: 1, tx: 0, ty: 0, fit: 1, w: 0, h: 0, full: false },
  polling: null,
  gridTicket: 0,
  showTicket: 0,
};

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {} };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = CSRF;
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok) throw Object.assign(new Error(data.error || response.statusText),
                                        { status: response.status });
  return data;
}

function filters() {
  const params = new URLSearchParams({
    status: $("f-status").value, mode: $("f-mode").value,
    faces: $("f-faces").checked ? "1" : "0", order: $("f-order").value,
  });
  return params.toString();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function say(text) { $("photo-status").textContent = text; }

// -- state, counts, warnings --------------------------------------------------------------------
function showCounts(counts) {
  $("counts").textContent = `${counts.pending} pending · ${counts.accepted} accepted · ` +
    `${counts.rejected} rejected · ${counts.failed} failed`;
}

async function loadState() {
  const state = await api("/api/state");
  ui.state = state;
  $("folder").textContent = `${state.folder} — reviewer ${state.reviewer}`;
  showCounts(state.counts);
  $("sample").textContent = state.sample ? `Sample: ${state.sample}` : "";
  const warnings = [];
  if (state.operator_is_reviewer)
    warnings.push(`You (${state.reviewer}) ran this workflow: archives ask for a second ` +
                  "person to review (start with --reviewer NAME).");
  if (state.sheet_problem) warnings.push(state.sheet_problem);
  $("warning").textContent = warnings.join(" ");
  $("warning").hidden = warnings.length === 0;
  showRerun(state.rerun);
  return state;
}

function fillStaticControls(state) {
  const mode = $("f-mode");
  for (const m of state.modes) mode.append(el("option", { value: m, text: m }));
  const reason = $("reason");
  reason.append(el("option", { value: "", text: "— choose —" }));
  for (const r of state.reasons) reason.append(el("option", { value: r.code, text: r.label }));
  const fields = $("setting-fields");
  for (const column of state.columns) {
    let control;
    if (column.values) {
      control = el("select", { name: column.name, id: `set-${column.name}` });
      control.append(el("option", { value: "", text: "(run's)" }));
      for (const v of column.values) control.append(el("option", { value: v, text: v }));
    } else {
      control = el("input", { type: "number", min: column.name === "jpeg_quality" ? "1" : "0",
                              name: column.name, id: `set-${column.name}`,
                              placeholder: "(run's)" });
    }
    const label = el("label", { for: `set-${column.name}`, title: column.description,
                                text: column.name });
    fields.append(el("div", { class: "setting" }, label, control));
  }
}

// -- one photo ----------------------------------------------------------------------------------
async function show(id) {
  closeReject();
  const ticket = ++ui.showTicket;   // a later request wins over a slower earlier one
  if (id === null || id === undefined) {
    ui.photo = null;
    $("photo-name").textContent = "";
    $("compare").hidden = true;
    $("details").replaceChildren();
    $("empty").hidden = false;
    $("empty").textContent = "No photo in this filter" +
      ($("f-status").value === "pending" ? ": the queue is done." : ".");
    say("");
    return;
  }
  const photo = await api(`/api/photo/${id}`);
  if (ticket !== ui.showTicket) return;
  ui.photo = photo;
  $("empty").hidden = true;
  $("compare").hidden = false;
  $("photo-name").textContent = photo.photo;
  say(photo.status + (photo.decision ? ` by ${photo.decision.reviewer}` : "") +
      (photo.superseded ? " (its final changed since it was " + photo.superseded.action + ")" : ""));
  const canDecide = photo.run_status === "restored" && !!photo.urls.final;
  $("accept").disabled = !canDecide;
  $("reject").disabled = !canDecide;
  setImages(photo);
  renderDetails(photo);
  history.replaceState(null, "", `#${photo.id}`);
}

function setImages(photo) {
  const z = ui.zoom;
  z.full = false;
  z.w = photo.size ? photo.size[0] : 0;
  z.h = photo.size ? photo.size[1] : 0;
  const before = $("img-before"), after = $("img-after");
  before.removeAttribute("src");
  after.removeAttribute("src");
  const showChanges = $("show-changes").checked && photo.urls.changes;
  after.alt = showChanges ? "Change map of the restoration" : "After: the restoration";
  if (photo.urls.original) before.src = photo.urls.original;
  if (showChanges) after.src = photo.urls.changes;
  else if (photo.urls.final) after.src = photo.urls.final;
  $("show-changes").disabled = !photo.urls.changes;
  $("show-faces").disabled = !photo.urls.faces;
  $("faces-box").hidden = !($("show-faces").checked && photo.urls.faces);
  if (photo.urls.faces) $("faces-img").src = photo.urls.faces;
  const sized = () => {
    if (!z.w) { z.w = after.naturalWidth || before.naturalWidth; z.h = after.naturalHeight || before.naturalHeight; }
    layoutImages();
    fit();
  };
  if (z.w) sized();
  after.onload = () => { if (!z.w) sized(); };
  before.onload = () => { if (!z.w && !photo.urls.final) sized(); };
}

function layoutImages() {
  for (const img of [$("img-before"), $("img-after")]) {
    img.style.width = `${ui.zoom.w}px`;
    img.style.height = `${ui.zoom.h}px`;
  }
}

function paneSize() {
  const pane = $("pane-before");
  return [pane.clientWidth || 1, pane.clientHeight || 1];
}

function fit() {
  const z = ui.zoom;
  if (!z.w) return;
  const [pw, ph] = paneSize();
  z.fit = Math.min(pw / z.w, ph / z.h);
  z.s = z.fit;
  z.tx = (pw - z.w * z.s) / 2;
  z.ty = (ph - z.h * z.s) / 2;
  apply();
}

function zoomAt(factor, cx, cy) {
  const z = ui.zoom;
  if (!z.w) return;
  const s = Math.min(Math.max(z.s * factor, z.fit * 0.5), 32);
  const x = (cx - z.tx) / z.s, y = (cy - z.ty) / z.s;   // image point under the cursor stays
  z.s = s;
  z.tx = cx - x * s;
  z.ty = cy - y * s;
  apply();
}

function apply() {
  const z = ui.zoom;
  const transform = `translate(${z.tx}px, ${z.ty}px) scale(${z.s})`;
  for (const img of [$("img-before"), $("img-after")]) img.style.transform = transform;
  $("zoom-level").textContent = `${Math.round(z.s * 100)}%`;
  $("compare").classList.toggle("pixelated", z.s >= 4);
  // full resolution once zoomed in beyond the fitted view
  if (!z.full && z.s > z.fit * 1.05 && ui.photo) {
    z.full = true;
    const u = ui.photo.urls;
    if (u.original_full) $("img-before").src = u.original_full;
    if (u.final_full && !$("show-changes").checked) $("img-after").src = u.final_full;
  }
}

function setSlider(value) {
  $("pane-after").style.clipPath = $("compare").classList.contains("mode-slider")
    ? `inset(0 0 0 ${value}%)` : "none";
}

function setCompare(mode) {
  const box = $("compare");
  box.classList.toggle("mode-slider", mode === "slider");
  $("slider-label").hidden = mode !== "slider";
  setSlider($("slider").value);
  fit();
}

function row(...cells) {
  return el("tr", {}, ...cells.map((c) => el("td", {}, c)));
}

function renderDetails(photo) {
  const details = $("details");
  details.replaceChildren();
  // the decision
  const decided = el("section", {}, el("h2", { text: "Decision" }));
  if (photo.decision) {
    const d = photo.decision;
    decided.append(el("p", { class: `status-${d.action}`,
      text: `${d.action} by ${d.reviewer} at ${d.decided_at}` +
            (d.reason_label ? ` — ${d.reason_label}` : "") + (d.note ? `: ${d.note}` : "") }));
    if (d.new_settings) decided.append(el("p", { text: "new settings: " + JSON.stringify(d.new_settings) }));
  } else if (photo.superseded) {
    const d = photo.superseded;
    decided.append(el("p", { text: `pending: ${d.action} by ${d.reviewer} at ${d.decided_at}, ` +
                                   "but its final output changed since (rerun)" }));
  } else {
    decided.append(el("p", { text: photo.run_status === "restored" ? "pending" :
                                   `the run: ${photo.run_status}` }));
  }
  for (const reason of photo.reasons || [])
    decided.append(el("p", { class: "reason", text: reason }));
  for (const log of photo.logs || [])
    decided.append(el("p", {}, el("a", { href: "/files/" + log.split("/").map(encodeURIComponent).join("/"),
                                         target: "_blank", text: log })));
  details.append(decided);
  // settings
  const settings = el("section", {}, el("h2", { text: "Effective settings" }));
  if (photo.settings_error) settings.append(el("p", { class: "reason", text: photo.settings_error }));
  const table = el("table");
  table.append(el("tr", {}, el("th", { text: "setting" }), el("th", { text: "value" }),
                  el("th", { text: "from" })));
  for (const [key, value] of Object.entries(photo.settings || {})) {
    const fromSheet = photo.from_sheet.includes(key);
    const tr = row(key, value === null ? "—" : String(value), fromSheet ? "sheet" : "run");
    if (fromSheet) tr.className = "from-sheet";
    table.append(tr);
  }
  settings.append(table);
  details.append(settings);
  // triage and mode
  const triage = el("section", {}, el("h2", { text: "Mode and triage" }));
  triage.append(el("p", { text: `mode: ${photo.mode || "unknown"}; faces: ${photo.faces ?? "?"}; ` +
    `changed: ${photo.changed_fraction === null ? "?" : (photo.changed_fraction * 100).toFixed(1) + " %"}` }));
  if (photo.triage) {
    const t = el("table");
    for (const [k, v] of Object.entries(photo.triage)) t.append(row(k, JSON.stringify(v)));
    triage.append(t);
  } else {
    triage.append(el("p", { text: "no triage (with_scratch was not auto)" }));
  }
  details.append(triage);
  // provenance
  const prov = el("section", {}, el("h2", { text: "Provenance" }));
  if (photo.provenance) {
    const p = photo.provenance;
    const t = el("table");
    t.append(row("created", p.created || ""));
    t.append(row("software", p.software ? `${p.software.name} ${p.software.version}` : ""));
    t.append(row("backend", p.backend || ""));
    if (p.source) {
      t.append(row("master", p.source.file_name || ""));
      t.append(row("master sha256", p.source.sha256 || ""));
    }
    for (const [k, v] of Object.entries(p.checkpoints || {})) t.append(row(`checkpoint ${k}`, v));
    for (const [k, v] of Object.entries(p.settings || {})) t.append(row(`recorded ${k}`, String(v)));
    for (const [k, v] of Object.entries(p.changes || {})) t.append(row(`changes ${k}`, String(v)));
    prov.append(t);
  } else {
    prov.append(el("p", { text: "no provenance sidecar" }));
  }
  details.append(prov);
}

// -- decisions ----------------------------------------------------------------------------------
async function advance(fromId) {
  const next = await api(`/api/nav?from=${fromId}&dir=next&${filters()}`);
  if (next.id !== null) return show(next.id);
  const first = await api(`/api/photos?${filters()}&offset=0&limit=1`);
  return show(first.items.length ? first.items[0].id : null);
}

async function decide(action, extra = {}) {
  const photo = ui.photo;
  if (!photo) return;
  try {
    const result = await api(`/api/photo/${photo.id}/decision`,
                             { body: { action, version: photo.version, ...extra } });
    showCounts(result.counts);
    say(`${photo.photo}: ${action}`);
    closeReject();
    refreshRerun();
    await advance(photo.id);
  } catch (error) {
    if ($("reject-form").hidden) say(`not recorded: ${error.message}`);
    else $("reject-error").textContent = `not recorded: ${error.message}`;
    if (error.status === 409) await show(photo.id);
  }
}

function openReject() {
  if (!ui.photo || $("reject").disabled) return;
  $("reject-form").hidden = false;
  $("reject-error").textContent = "";
  $("reason").value = "";
  $("note").value = "";
  for (const column of ui.state.columns) {
    $(`set-${column.name}`).value = (ui.photo.sheet_row || {})[column.name] || "";
  }
  $("reason").focus();
}

function closeReject() { $("reject-form").hidden = true; }

async function submitReject(event) {
  event.preventDefault();
  const reason = $("reason").value;
  if (!reason) { $("reject-error").textContent = "Choose a reason."; $("reason").focus(); return; }
  const settings = {};
  for (const column of ui.state.columns) settings[column.name] = $(`set-${column.name}`).value;
  await decide("rejected", { reason, note: $("note").value, settings });
}

async function undo() {
  try {
    const result = await api("/api/undo", { body: {} });
    showCounts(result.counts);
    refreshRerun();
    if (result.id !== null) { await show(result.id); say(`undone: ${result.undone} is pending again`); }
    else say("nothing to undo");
  } catch (error) { say(`undo failed: ${error.message}`); }
}

async function step(dir) {
  const from = ui.photo ? ui.photo.id : -1;
  const target = await api(`/api/nav?from=${from}&dir=${dir}&${filters()}`);
  if (target.id !== null) await show(target.id);
  else say(dir === "next" ? "last photo of this filter" : "first photo of this filter");
}

// -- grid ---------------------------------------------------------------------------------------
async function loadGrid() {
  const ticket = ++ui.gridTicket;   // a later request wins over a slower earlier one
  const data = await api(`/api/photos?${filters()}&offset=${ui.gridOffset}&limit=${PAGE}`);
  if (ticket !== ui.gridTicket) return;
  const grid = $("grid");
  grid.replaceChildren();
  for (const item of data.items) {
    const button = el("button", { type: "button", "aria-label": `Open ${item.photo}` });
    if (item.run_status === "restored" && item.version)
      button.append(el("img", { loading: "lazy", width: "160", height: "160",
                                src: `/img/${item.id}/thumb?v=${item.version}`, alt: "" }));
    button.append(el("div", { text: item.photo }));
    button.append(el("div", { class: `status-${item.status}`, text: item.status +
      (item.changed_fraction !== null ? ` · ${(item.changed_fraction * 100).toFixed(1)} % changed` : "") }));
    for (const reason of item.reasons) button.append(el("div", { class: "reason", text: reason }));
    button.addEventListener("click", () => { setView("photo"); show(item.id); });
    grid.append(el("li", {}, button));
  }
  const last = Math.min(data.offset + data.items.length, data.total);
  $("grid-info").textContent = data.total ? `${data.offset + 1}–${last} of ${data.total}` : "no photo";
  $("grid-prev").disabled = data.offset === 0;
  $("grid-next").disabled = last >= data.total;
}

function setView(view) {
  ui.view = view;
  $("photo-view").hidden = view !== "photo";
  $("grid-view").hidden = view !== "grid";
  $("view-photo").setAttribute("aria-pressed", String(view === "photo"));
  $("view-grid").setAttribute("aria-pressed", String(view === "grid"));
  if (view === "grid") { ui.gridOffset = 0; loadGrid(); } else fit();
}

// -- rerun --------------------------------------------------------------------------------------
function showRerun(rerun) {
  const button = $("rerun"), status = $("rerun-status"), bar = $("rerun-progress");
  const current = rerun.current;
  const running = current && current.running;
  button.disabled = running || !rerun.available || rerun.due.length === 0;
  let text = rerun.available ? `${rerun.due.length} rejected with new settings` :
             (rerun.why_not || "");
  if (rerun.rejected_unchanged.length)
    text += `; ${rerun.rejected_unchanged.length} rejected without new settings (not rerun: ` +
            "the same settings give the same result)";
  if (current) {
    bar.hidden = !running;
    if (current.total) { bar.max = current.total; bar.value = current.done; }
    if (running) text = `rerunning ${current.photos.join(", ")}: ${current.done} of ${current.total || "?"} steps`;
    else text = `rerun of ${current.photos.join(", ")} ` +
                (current.returncode === 0 ? "finished" : `failed (exit ${current.returncode}); see its log`) +
                `. ${text}`;
  }
  status.textContent = text;
}

async function refreshRerun() {
  const state = await api("/api/rerun");
  showRerun(state);
  return state;
}

async function startRerun() {
  try {
    showRerun(await api("/api/rerun", { body: {} }));
  } catch (error) { $("rerun-status").textContent = `rerun not started: ${error.message}`; return; }
  if (ui.polling) clearInterval(ui.polling);
  ui.polling = setInterval(async () => {
    const state = await refreshRerun();
    if (!state.current || !state.current.running) {
      clearInterval(ui.polling);
      ui.polling = null;
      await loadState();                     // counts and the rerun's outcome
      if (ui.view === "grid") await loadGrid();
      if (ui.photo) await show(ui.photo.id); // the new result, without a reload
    }
  }, 1000);
}

// -- events -------------------------------------------------------------------------------------
function bind() {
  $("accept").addEventListener("click", () => decide("accepted"));
  $("reject").addEventListener("click", openReject);
  $("reject-form").addEventListener("submit", submitReject);
  $("reject-cancel").addEventListener("click", closeReject);
  $("undo").addEventListener("click", undo);
  $("next").addEventListener("click", () => step("next"));
  $("prev").addEventListener("click", () => step("prev"));
  $("view-photo").addEventListener("click", () => setView("photo"));
  $("view-grid").addEventListener("click", () => setView("grid"));
  $("grid-prev").addEventListener("click", () => { ui.gridOffset = Math.max(0, ui.gridOffset - PAGE); loadGrid(); });
  $("grid-next").addEventListener("click", () => { ui.gridOffset += PAGE; loadGrid(); });
  $("rerun").addEventListener("click", startRerun);
  for (const id of ["f-status", "f-mode", "f-faces", "f-order"]) {
    $(id).addEventListener("change", async () => {
      if (ui.view === "grid") { ui.gridOffset = 0; await loadGrid(); }
      else {
        const first = await api(`/api/photos?${filters()}&offset=0&limit=1`);
        await show(first.items.length ? first.items[0].id : null);
      }
    });
  }
  for (const radio of document.querySelectorAll('input[name="compare"]'))
    radio.addEventListener("change", () => setCompare(radio.value));
  $("slider").addEventListener("input", () => setSlider($("slider").value));
  $("zoom-fit").addEventListener("click", fit);
  $("zoom-100").addEventListener("click", () => {
    const [pw, ph] = paneSize();
    zoomAt(1 / ui.zoom.s, pw / 2, ph / 2);
  });
  $("zoom-in").addEventListener("click", () => { const [pw, ph] = paneSize(); zoomAt(1.5, pw / 2, ph / 2); });
  $("zoom-out").addEventListener("click", () => { const [pw, ph] = paneSize(); zoomAt(1 / 1.5, pw / 2, ph / 2); });
  $("show-changes").addEventListener("change", () => ui.photo && setImages(ui.photo));
  $("show-faces").addEventListener("change", () => {
    $("faces-box").hidden = !($("show-faces").checked && ui.photo && ui.photo.urls.faces);
  });
  const box = $("compare");
  box.addEventListener("wheel", (event) => {
    event.preventDefault();
    const pane = event.target.closest(".pane") || $("pane-before");
    const rect = pane.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - rect.left, event.clientY - rect.top);
  }, { passive: false });
  let drag = null;
  box.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY };
    box.classList.add("dragging");
    box.setPointerCapture(event.pointerId);
  });
  box.addEventListener("pointermove", (event) => {
    if (!drag) return;
    ui.zoom.tx += event.clientX - drag.x;
    ui.zoom.ty += event.clientY - drag.y;
    drag = { x: event.clientX, y: event.clientY };
    apply();
  });
  const stop = () => { drag = null; box.classList.remove("dragging"); };
  box.addEventListener("pointerup", stop);
  box.addEventListener("pointercancel", stop);
  window.addEventListener("resize", fit);
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select");
    if (event.key === "Escape") { closeReject(); return; }
    if (typing || event.ctrlKey || event.metaKey || event.altKey || ui.view !== "photo") return;
    if (event.key === "a") { event.preventDefault(); decide("accepted"); }
    else if (event.key === "r") { event.preventDefault(); openReject(); }
    else if (event.key === "u") { event.preventDefault(); undo(); }
    else if (event.key === "ArrowRight") { event.preventDefault(); step("next"); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); step("prev"); }
  });
}

async function start() {
  bind();
  // the state and the first entry of the queue at once: the first photo shows sooner
  const [state, first] = await Promise.all([
    loadState(), api(`/api/photos?${filters()}&offset=0&limit=1`)]);
  fillStaticControls(state);
  const wanted = parseInt(location.hash.slice(1), 10);
  if (!Number.isNaN(wanted)) return show(wanted);
  if (!first.items.length && state.counts.pending === 0 && state.counts.failed > 0) {
    $("f-status").value = "failed";
    const failed = await api(`/api/photos?${filters()}&offset=0&limit=1`);
    return show(failed.items.length ? failed.items[0].id : null);
  }
  return show(first.items.length ? first.items[0].id : null);
}

start();
