// birdd web page: plain JavaScript over the BirdNET-Go-compatible /api/v2 (no build step, no CDN).
"use strict";

const API = "/api/v2";
const CARDS = 24;
const $ = (id) => document.getElementById(id);
const state = { day: "", species: "", refresh: 0, audio: null, review: null };
const VERDICTS = [
  { value: "correct", symbol: "\u2713", label: "correct" },
  { value: "false_positive", symbol: "\u2717", label: "false positive" },
];

function localDate(d = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${message}`);
  }
  return response.json();
}

function showError(error) {
  const box = $("error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

function strip(container, counts) {
  container.replaceChildren();
  const top = Math.max(1, ...counts);
  counts.forEach((count, hour) => {
    const cell = el("i");
    cell.title = `${String(hour).padStart(2, "0")}:00 - ${count} detection${count === 1 ? "" : "s"}`;
    if (count) cell.style.setProperty("background", `rgba(var(--heat), ${0.2 + 0.8 * count / top})`);
    container.append(cell);
  });
}

function kpi(label, value) {
  const box = el("div", "kpi");
  box.append(el("b", "", String(value)), el("span", "", label));
  return box;
}

async function loadKpis(speciesToday) {
  const k = await getJSON("/dashboard/kpis");
  $("kpis").replaceChildren(
    kpi(state.day === localDate() ? "detections today" : "detections that day", speciesToday.count),
    kpi("species that day", speciesToday.species),
    kpi("species ever", k.lifetime_species),
    kpi("day streak", k.detection_streak.days),
  );
}

function playButton(detection) {
  const button = el("button", "play", "\u25B6");
  button.type = "button";
  button.setAttribute("aria-label", `play ${detection.commonName}`);
  button.addEventListener("click", () => {
    if (state.audio && state.audio.button === button && !state.audio.paused) {
      state.audio.pause();
      return;
    }
    if (state.audio) state.audio.pause();
    const audio = new Audio(`${API}/audio/${detection.id}`);
    audio.button = button;
    const reset = () => { button.classList.remove("playing"); button.textContent = "\u25B6"; };
    audio.addEventListener("pause", reset);
    audio.addEventListener("ended", reset);
    audio.addEventListener("error", () => { reset(); button.disabled = true; button.title = "clip not available"; });
    state.audio = audio;
    button.classList.add("playing");
    button.textContent = "\u275A\u275A";
    audio.play().catch(reset);
  });
  return button;
}

async function loadAppConfig() {
  try {
    const config = await getJSON("/app/config");
    state.review = config.reviews ? { token: config.csrfToken } : null;
  } catch (_) {
    state.review = null;  // an older server, or no access: no review buttons
  }
}

async function postReview(id, verified) {
  const send = () => fetch(`${API}/detections/${id}/review`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": state.review.token },
    body: JSON.stringify({ verified }),
  });
  let response = await send();
  if (response.status === 403) {  // the server restarted: a new CSRF token
    await loadAppConfig();
    if (state.review) response = await send();
  }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    throw new Error(`review: ${message}`);
  }
}

function reviewButtons(detection) {
  const group = el("div", "review");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", `review ${detection.commonName} at ${detection.time}`);
  const buttons = VERDICTS.map((verdict) => {
    const button = el("button", `verdict ${verdict.value}`, verdict.symbol);
    button.type = "button";
    button.dataset.verdict = verdict.value;
    button.setAttribute("aria-label", `${verdict.label}: ${detection.commonName} at ${detection.time}`);
    button.title = detection.locked ? "locked" : verdict.label;
    button.disabled = !!detection.locked;
    return button;
  });
  const show = (verified) => buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.verdict === verified)));
  show(detection.verified);
  buttons.forEach((button) => button.addEventListener("click", async () => {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await postReview(detection.id, button.dataset.verdict);
      detection.verified = button.dataset.verdict;
      show(detection.verified);
      showError(null);
    } catch (error) {
      showError(error);
    } finally {
      buttons.forEach((b) => { b.disabled = !!detection.locked; });
      button.focus();
    }
  }));
  group.append(...buttons);
  return group;
}

function card(detection, fresh) {
  const item = el("li", fresh ? "card new" : "card");
  item.dataset.id = detection.id;
  let image = el("div", "spec none", "no clip kept");
  if (detection.clipName) {
    image = el("img", "spec");
    image.alt = `spectrogram of ${detection.commonName}`;
    image.loading = "lazy";
    image.src = `${API}/spectrogram/${detection.id}?size=sm`;
    image.addEventListener("error", () => image.replaceWith(el("div", "spec none", "clip deleted")));
  }
  const body = el("div", "body");
  const name = el("a", "name", detection.commonName);
  name.href = `#/species/${encodeURIComponent(detection.speciesCode)}?date=${detection.date}`;
  const confidence = el("div", "conf");
  const bar = el("i");
  bar.style.setProperty("width", `${Math.round(detection.confidence * 100)}%`);
  confidence.append(bar);
  confidence.title = `confidence ${Math.round(detection.confidence * 100)} %`;
  body.append(name, el("span", "sci", detection.scientificName),
    el("span", "when", `${detection.time} \u00B7 ${Math.round(detection.confidence * 100)} %`));
  if (detection.clipName) body.append(playButton(detection));
  body.append(confidence);
  if (state.review) body.append(reviewButtons(detection));
  item.append(image, body);
  return item;
}

function speciesRow(summary) {
  const row = el("tr");
  const name = el("td");
  const link = el("a", "", summary.common_name);
  link.href = `#/species/${encodeURIComponent(summary.species_code)}?date=${state.day}`;
  name.append(link, el("span", "sci", summary.scientific_name));
  const hours = el("td", "hours");
  const cells = el("div", "strip");
  strip(cells, summary.hourly_counts);
  hours.append(cells);
  row.append(name, el("td", "num", String(summary.count)), hours,
    el("td", "num", `${Math.round(summary.max_confidence * 100)} %`));
  return row;
}

async function loadSummary() {
  const species = await getJSON(`/analytics/species/daily?date=${state.day}`);
  $("species-table").querySelector("tbody").replaceChildren(...species.map(speciesRow));
  $("species-table").hidden = species.length === 0;
  $("species-none").hidden = species.length !== 0;
  const count = species.reduce((sum, s) => sum + s.count, 0);
  await loadKpis({ count, species: species.length });
}

async function loadDay() {
  const page = await getJSON(`/detections?date=${state.day}&limit=${CARDS}`);
  $("latest").replaceChildren(...page.data.map((d) => card(d, false)));
  await loadSummary();
}

async function loadSpecies() {
  const code = encodeURIComponent(state.species);
  const [page, species] = await Promise.all([
    getJSON(`/detections?species=${code}&date=${state.day}&limit=100`),
    getJSON(`/analytics/species/daily?date=${state.day}`),
  ]);
  const summary = species.find((s) => s.species_code === state.species);
  const first = page.data[0];
  $("species-title").textContent = summary ? summary.common_name : (first ? first.commonName : state.species);
  $("species-sub").textContent = summary
    ? `${summary.scientific_name} \u00B7 ${summary.count} detections on ${state.day}, first ${summary.first_heard}, latest ${summary.latest_heard}`
    : state.day;
  strip($("species-strip"), summary ? summary.hourly_counts : new Array(24).fill(0));
  $("species-detections").replaceChildren(...page.data.map((d) => card(d, false)));
  $("species-empty").hidden = page.data.length !== 0;
}

async function render() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  state.day = /^\d{4}-\d{2}-\d{2}$/.test(params.get("date") || "") ? params.get("date") : (state.day || localDate());
  const match = /^\/species\/(.+)$/.exec(path || "");
  state.species = match ? decodeURIComponent(match[1]) : "";
  $("day").value = state.day;
  $("species-view").hidden = !state.species;
  $("day-view").hidden = !!state.species;
  $("kpis").hidden = !!state.species;
  try {
    await (state.species ? loadSpecies() : loadDay());
    showError(null);
  } catch (error) {
    showError(error);
  }
}

function go(day) {
  const base = state.species ? `#/species/${encodeURIComponent(state.species)}` : "#/";
  location.hash = `${base}?date=${day}`;
}

function shiftDay(days) {
  const d = new Date(`${state.day}T12:00:00`);
  d.setDate(d.getDate() + days);
  go(localDate(d));
}

function onDetection(event) {
  const detection = JSON.parse(event.data);
  if (detection.date !== state.day) return;
  const list = state.species ? (detection.speciesCode === state.species ? $("species-detections") : null) : $("latest");
  if (list && !list.querySelector(`[data-id="${detection.id}"]`)) {
    list.prepend(card(detection, true));
    while (list.children.length > (state.species ? 100 : CARDS)) list.lastElementChild.remove();
  }
  clearTimeout(state.refresh);
  state.refresh = setTimeout(() => { if (!state.species) loadSummary().catch(showError); }, 1000);
}

function connect() {
  const live = $("live");
  const source = new EventSource(`${API}/detections/stream`);
  source.addEventListener("connected", () => { live.classList.add("on"); live.textContent = "live"; });
  source.addEventListener("detection", onDetection);
  source.addEventListener("error", () => { live.classList.remove("on"); live.textContent = "reconnecting"; });
}

document.addEventListener("DOMContentLoaded", () => {
  $("day").addEventListener("change", (e) => { if (e.target.value) go(e.target.value); });
  $("prev-day").addEventListener("click", () => shiftDay(-1));
  $("next-day").addEventListener("click", () => shiftDay(1));
  $("back").addEventListener("click", (e) => { e.preventDefault(); location.hash = `#/?date=${state.day}`; });
  window.addEventListener("hashchange", render);
  loadAppConfig().then(render);
  connect();
});
