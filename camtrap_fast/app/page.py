"""The app's one page: a drop zone and file picker, and a result card per photo (inline style and script)."""

from __future__ import annotations

from camtrap_fast.html.assets import CSS
from camtrap_fast.html.page import esc

SCRIPT = r"""
"use strict";
const results = document.getElementById("results"), status = document.getElementById("status");
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({name: file.name, data: reader.result.split(",", 2)[1] || ""});
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
function card(answer) {
  const box = el("div", {class: "result", "data-file": answer.file});
  const left = el("div");
  left.appendChild(el("h3", {}, answer.file));
  if (answer.photo) left.appendChild(el("img", {src: answer.photo, alt: answer.file, class: "preview"}));
  box.appendChild(left);
  for (const animal of answer.animals) {
    const part = el("div", {class: "animal"});
    if (animal.number) part.appendChild(el("h3", {}, `animal ${animal.number} (detector conf ${Number(animal.conf).toFixed(2)})`));
    if (animal.error) { part.appendChild(el("p", {class: "error"}, animal.error)); box.appendChild(part); continue; }
    const figure = el("figure", {class: "input"});
    figure.appendChild(el("img", {src: animal.input, class: "crop", alt: "the model's input"}));
    figure.appendChild(el("figcaption", {class: "note"}, `the model's input (${animal.input_px} px)`));
    part.appendChild(figure);
    const table = el("table", {class: "top5"});
    const head = el("tr"); head.appendChild(el("th", {}, "species")); head.appendChild(el("th", {class: "n"}, "probability"));
    table.appendChild(head);
    for (const [name, p] of animal.top) {
      const row = el("tr"), cell = el("td");
      const bar = el("span", {class: "bar", style: `width:${Math.round(p * 120)}px`});
      cell.appendChild(bar); cell.appendChild(document.createTextNode(name));
      row.appendChild(cell); row.appendChild(el("td", {class: "n"}, p.toFixed(3)));
      table.appendChild(row);
    }
    part.appendChild(table);
    box.appendChild(part);
  }
  return box;
}
async function send(fileList) {
  const files = Array.from(fileList);
  if (!files.length) return;
  const md = files.filter(f => f.name.toLowerCase().endsWith(".json"));
  const photos = files.filter(f => !f.name.toLowerCase().endsWith(".json"));
  status.textContent = `classifying ${photos.length} photo(s)...`;
  status.className = "";
  try {
    const body = {photos: await Promise.all(photos.map(readFile)),
                  detections: md.length ? await readFile(md[0]) : null};
    const reply = await fetch("classify", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify(body)});
    const answer = await reply.json();
    if (!reply.ok) { status.textContent = answer.error; status.className = "error"; return; }
    for (const a of answer.results.slice().reverse()) results.prepend(card(a));  // newest batch on top, in order
    status.textContent = `classified ${answer.results.length} photo(s)`;
    document.body.dataset.done = String(Number(document.body.dataset.done || 0) + 1);
  } catch (error) {
    status.textContent = "failed: " + error; status.className = "error";
  }
}
const drop = document.getElementById("drop"), picker = document.getElementById("files");
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); send(e.dataTransfer.files); });
picker.addEventListener("change", () => { send(picker.files); picker.value = ""; });
document.body.dataset.ready = "1";
"""


def app_page(run_name: str, classes: list[str], crops: dict) -> str:
    detections = ("This run was trained on MegaDetector crops: drop the detector's JSON file with the photos to "
                  "classify each animal's crop, cut by the run's own rule." if crops.get("mode") == "detections"
                  else "Drop a MegaDetector JSON file (any boxes in its format) with the photos to classify each "
                  "animal's crop instead of the whole photo.")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>camtrap-fast app: {esc(run_name)}'
            f"</title><style>{CSS}</style></head><body><h1>camtrap-fast: classify photos with {esc(run_name)}</h1>"
            f'<p class="note">{len(classes)} species. Photos are classified exactly as <code>camtrap-fast predict</code> '
            f"does (the run's resize, crop and model); nothing leaves this machine. {esc(detections)}</p>"
            '<label class="drop" id="drop">Drop photos here, or <u>pick files</u>'
            '<input type="file" id="files" multiple accept="image/*,.json" hidden></label>'
            f'<p id="status"></p><div id="results"></div><script>{SCRIPT}</script></body></html>\n')
