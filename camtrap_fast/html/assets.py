"""The style sheet and script every camtrap-fast page inlines (no network: a page opens from disk anywhere).

The script is generic: sortable tables (`table.sortable`), expandable rows (`tr.expander` followed by its
`tr.detail`), photo strips drawn from the page's embedded JSON (`data-photos`), the confusion matrix's cell
panel and a photo viewer with each photo's frame or sequence context.
"""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:0 18px 40px;color:#1d232a;background:#fff}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde3ea;
padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
p.note,.note{color:#5b6673;font-size:12.5px}
nav{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #eef1f4;z-index:5}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none;font-size:13px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th{white-space:nowrap}td:first-child{white-space:nowrap}
th,td{padding:3px 8px;border-bottom:1px solid #eef1f4;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;background:#f5f7f9;position:sticky;top:34px}
table.sortable th:after{content:" \\2195";color:#aab3bd;font-size:11px}
table.sortable th.asc:after{content:" \\25B2";color:#1d232a}table.sortable th.desc:after{content:" \\25BC";color:#1d232a}
.wide{overflow-x:auto;max-width:100%}.wide table.sortable th{position:static}
tr.expander{cursor:pointer}tr.expander:hover{background:#f3f8fd}tr.expander td:first-child:before{content:"\\25B8  ";
color:#8a96a3}tr.expander.open td:first-child:before{content:"\\25BE  "}
tr.detail>td{background:#fafbfc;padding:8px 10px}tr.detail[hidden]{display:none}
.bar{display:inline-block;height:9px;background:#4c8bd6;vertical-align:middle;margin-right:4px}
.strip{display:flex;flex-wrap:wrap;gap:6px;margin:4px 0 8px}
.photo{width:116px;font-size:11px;line-height:1.25;cursor:zoom-in}
.photo img{width:112px;height:112px;object-fit:contain;background:#222;border:2px solid #2e9d4f;border-radius:3px;
display:block}
.photo.wrong img{border-color:#d0463b}.photo.current img{box-shadow:0 0 0 3px #f0a500}.photo .cap{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.empty{color:#8a96a3;font-style:italic;font-size:12px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px;margin:6px 0}
dl.kv dt{color:#5b6673}dl.kv dd{margin:0}
details>summary{cursor:pointer;color:#1f5fa8}
pre{background:#f5f7f9;padding:8px;overflow:auto;font-size:12px;max-height:420px}
img.figure{max-width:100%;border:1px solid #eef1f4}
table.cm{font-size:9px;border-collapse:separate;border-spacing:1px}table.cm td{width:12px;min-width:12px;height:12px;padding:0;
border:0;cursor:pointer}table.cm td:hover{outline:2px solid #f0a500}
table.cm th{font-weight:normal;white-space:nowrap;padding:0 3px;border:0;font-size:10px}
table.cm th.col{writing-mode:vertical-rl;transform:rotate(180deg);height:auto;text-align:left;width:12px;
max-width:12px;padding:2px 0;line-height:12px;font-size:9px}
table.cm td.sel{outline:2px solid #d0463b}
.cm-layout{display:flex;gap:14px;align-items:flex-start}
#cm-panel{flex:1 0 250px;min-width:250px;position:sticky;top:44px;max-height:85vh;overflow:auto}
.cm-wrap{overflow:auto;flex:0 1 auto;min-width:0}
#viewer{position:fixed;inset:0;background:rgba(10,14,18,.82);display:flex;align-items:center;justify-content:center;
z-index:20}#viewer[hidden]{display:none}
#viewer .box{background:#fff;border-radius:6px;padding:14px 18px;max-width:min(960px,94vw);max-height:92vh;overflow:auto}
#viewer .big{width:256px;height:256px;object-fit:contain;background:#222;float:left;margin:0 14px 8px 0}
#viewer .frame{width:480px;max-width:100%;display:block;margin:6px 0;background:#222}
#viewer .close{float:right;cursor:pointer;font-size:20px;color:#5b6673}
.tag{display:inline-block;padding:0 6px;border-radius:8px;background:#eef1f4;font-size:12px;margin-right:4px}
.ok{color:#2e7d45}.bad{color:#c0392b}
.drop{display:block;border:2px dashed #9fb3c8;border-radius:8px;padding:28px;text-align:center;color:#5b6673;margin:12px 0}
.drop.over{background:#eef6ff;border-color:#1f5fa8}
.result{border:1px solid #dde3ea;border-radius:6px;padding:10px;margin:10px 0;display:flex;gap:14px;flex-wrap:wrap}
.result img{max-width:320px;max-height:240px;background:#222}
figure.input{margin:0 0 6px}.result .crop{width:160px;height:160px;image-rendering:auto;object-fit:contain}
.result table{min-width:260px}.error{color:#c0392b}
"""

JS = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("page-data").textContent);
const IMG = DATA.images || {}, PHOTOS = DATA.photos || {}, CONTEXT = DATA.context || {};

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function fmt(c) { return (c === null || c === undefined) ? "" : Number(c).toFixed(2); }

function photoCard(id) {
  const p = PHOTOS[id];
  const card = el("div", {class: "photo" + (p.t === p.p ? "" : " wrong"), title: p.k, "data-id": id});
  card.appendChild(el("img", {src: IMG[p.i] || "", alt: p.k}));
  card.appendChild(el("div", {class: "cap"}, p.t));
  card.appendChild(el("div", {class: "cap " + (p.t === p.p ? "ok" : "bad")},
                      (p.t === p.p ? "\u2713 " : "\u2192 " + p.p + " ") + fmt(p.c)));
  card.addEventListener("click", () => openViewer(id));
  return card;
}
function fillStrip(strip) {
  if (strip.dataset.filled) return;
  strip.dataset.filled = "1";
  const ids = JSON.parse(strip.dataset.photos || "[]");
  if (!ids.length) { strip.appendChild(el("span", {class: "empty"}, strip.dataset.none || "no photos")); return; }
  for (const id of ids) if (PHOTOS[id]) strip.appendChild(photoCard(id));
}

function cellValue(td) {
  const v = td.dataset.v !== undefined ? td.dataset.v : td.textContent.trim();
  const n = parseFloat(v);
  return (v !== "" && !isNaN(n) && /^[-+0-9.eE]+$/.test(v)) ? n : v.toLowerCase();
}
function makeSortable(table) {
  const body = table.tBodies[0];
  table.querySelectorAll("thead th").forEach((th, col) => th.addEventListener("click", () => {
    const desc = th.classList.contains("asc");
    table.querySelectorAll("thead th").forEach(h => h.classList.remove("asc", "desc"));
    th.classList.add(desc ? "desc" : "asc");
    // A row and its detail row move together.
    const groups = [];
    for (const row of Array.from(body.rows)) {
      if (row.classList.contains("detail") && groups.length) groups[groups.length - 1].push(row);
      else groups.push([row]);
    }
    groups.sort((a, b) => {
      const x = cellValue(a[0].cells[col]), y = cellValue(b[0].cells[col]);
      const blankX = x === "", blankY = y === "";
      if (blankX || blankY) return blankX - blankY;  // blanks last either way
      const order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return desc ? -order : order;
    });
    for (const g of groups) for (const r of g) body.appendChild(r);
  }));
}
function makeExpandable(row) {
  row.addEventListener("click", () => {
    const detail = row.nextElementSibling;
    if (!detail || !detail.classList.contains("detail")) return;
    detail.hidden = !detail.hidden;
    row.classList.toggle("open", !detail.hidden);
    if (!detail.hidden) detail.querySelectorAll(".strip").forEach(fillStrip);
  });
}

function showCell(td) {
  document.querySelectorAll("table.cm td.sel").forEach(c => c.classList.remove("sel"));
  td.classList.add("sel");
  const panel = document.getElementById("cm-panel");
  panel.textContent = "";
  const [t, p] = [td.dataset.t, td.dataset.p];
  const what = t === p ? `${t}: ${td.dataset.n} correct` : `true ${t} \u2192 predicted ${p}: ${td.dataset.n} photos`;
  panel.appendChild(el("h3", {}, what + ` (${td.dataset.f} of the true class)`));
  const strip = el("div", {class: "strip", "data-photos": td.dataset.photos || "[]",
                           "data-none": "no photos embedded for this cell"});
  panel.appendChild(strip);
  fillStrip(strip);
}

function openViewer(id) {
  const p = PHOTOS[id], ctx = CONTEXT[id] || {};
  const viewer = document.getElementById("viewer"), box = viewer.querySelector(".box");
  box.textContent = "";
  const close = el("span", {class: "close", title: "close"}, "\u2715");
  close.addEventListener("click", () => { viewer.hidden = true; });
  box.appendChild(close);
  box.appendChild(el("img", {class: "big", src: IMG[p.i] || "", alt: p.k}));
  const dl = el("dl", {class: "kv"});
  const rows = [["sample", p.k], ["true", p.t], ["predicted", p.p], ["confidence", fmt(p.c)]];
  if (p.s) rows.push(["sequence", p.s]);
  if (p.f) rows.push(["source", p.f]);
  for (const [k, v] of rows) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); }
  box.appendChild(dl);
  box.appendChild(el("div", {style: "clear:both"}));
  if (ctx.frame) {
    box.appendChild(el("h3", {}, "the crop in its frame (this box red, the frame's other crops white)"));
    box.appendChild(el("img", {class: "frame", src: IMG[ctx.frame], alt: "frame of " + p.k}));
  }
  if (ctx.seq && ctx.seq.length) {
    box.appendChild(el("h3", {}, `its sequence (${ctx.seq.length} samples of the same capture in this split)`));
    const strip = el("div", {class: "strip", "data-photos": JSON.stringify(ctx.seq)});
    box.appendChild(strip);
    fillStrip(strip);
    strip.querySelectorAll(".photo").forEach(c => c.classList.toggle("current", c.dataset.id === id));
  }
  if (!ctx.frame && !(ctx.seq && ctx.seq.length)) box.appendChild(el("p", {class: "note"}, ctx.why || ""));
  viewer.hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  document.querySelectorAll("tr.expander").forEach(makeExpandable);
  document.querySelectorAll(".strip.eager").forEach(fillStrip);
  document.querySelectorAll("table.cm td[data-t]").forEach(td => td.addEventListener("click", () => showCell(td)));
  const viewer = document.getElementById("viewer");
  if (viewer) viewer.addEventListener("click", e => { if (e.target === viewer) viewer.hidden = true; });
  document.addEventListener("keydown", e => { if (e.key === "Escape" && viewer) viewer.hidden = true; });
  document.body.dataset.ready = "1";
});
"""
