// The front end of comfy_nb's sweep grid (an anywidget ES module; see _grid_widget.py).
// Draws the labelled grid from the model's `axes` and `cells`, one zoom and pan shared by every
// cell (wheel or the slider to zoom, drag to pan), click a thumbnail to enlarge it, mark two
// cells A and B to compare them (swipe or toggle), and Pick, which asks the kernel to pick the
// cell (it answers in `message`).

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el: root }) {
  const view = { scale: 1, tx: 0, ty: 0, page: 0, a: -1, b: -1 };
  root.classList.add("comfy-nb-grid");

  const bar = el("div", "comfy-nb-grid-bar");
  const summary = el("span", "comfy-nb-grid-summary");
  const zoomLabel = el("label", "comfy-nb-grid-zoom-label", "zoom ");
  const zoom = el("input", "comfy-nb-grid-zoom");
  Object.assign(zoom, { type: "range", min: "1", max: "8", step: "0.25", value: "1" });
  zoom.title = "zoom every cell (or the mouse wheel over a cell; drag to pan)";
  zoomLabel.appendChild(zoom);
  const reset = el("button", "comfy-nb-grid-reset", "reset");
  reset.title = "zoom 1, no pan";
  const tabs = el("span", "comfy-nb-grid-tabs");
  bar.append(summary, zoomLabel, reset, tabs);
  const message = el("div", "comfy-nb-grid-message");
  const table = el("div", "comfy-nb-grid-pages");
  const overlay = el("div", "comfy-nb-grid-overlay");
  overlay.hidden = true;
  root.append(bar, message, overlay, table);

  function applyZoom() {
    const transform = `translate(${view.tx}px, ${view.ty}px) scale(${view.scale})`;
    for (const img of table.querySelectorAll("img.comfy-nb-grid-img")) {
      img.style.transform = transform;
    }
    zoom.value = String(view.scale);
  }

  function setZoom(scale) {
    view.scale = Math.min(Math.max(scale, 1), 8);
    if (view.scale === 1) { view.tx = 0; view.ty = 0; }
    applyZoom();
  }

  zoom.addEventListener("input", () => setZoom(parseFloat(zoom.value)));
  reset.addEventListener("click", () => { view.tx = 0; view.ty = 0; setZoom(1); });

  function cellsOfPage() {
    return (model.get("cells") || []).filter((cell) => cell.key[0] === view.page);
  }

  function showOverlay(content) {
    overlay.replaceChildren(content);
    overlay.hidden = false;
    overlay.scrollIntoView?.({ block: "nearest" });
  }

  overlay.addEventListener("click", (event) => {
    if (event.target === overlay || event.target.classList.contains("comfy-nb-grid-close")) {
      overlay.hidden = true;
    }
  });

  function enlarge(cell) {
    const box = el("div", "comfy-nb-grid-large");
    const img = el("img", "comfy-nb-grid-large-img");
    img.src = cell.thumb;
    img.dataset.index = String(cell.index);
    box.append(img, el("div", "comfy-nb-grid-caption", cell.caption),
      el("button", "comfy-nb-grid-close", "close"));
    showOverlay(box);
    model.send({ type: "enlarge", index: cell.index });
  }

  function compare() {
    const cells = model.get("cells") || [];
    const a = cells.find((cell) => cell.index === view.a);
    const b = cells.find((cell) => cell.index === view.b);
    if (!a || !b) return;
    const box = el("div", "comfy-nb-grid-compare");
    const stage = el("div", "comfy-nb-grid-stage");
    const under = el("img", "comfy-nb-grid-b");
    under.src = b.thumb;
    const over = el("img", "comfy-nb-grid-a");
    over.src = a.thumb;
    stage.append(under, over);
    const swipe = el("input", "comfy-nb-grid-swipe");
    Object.assign(swipe, { type: "range", min: "0", max: "100", value: "50" });
    swipe.title = "swipe between A (left) and B (right)";
    const clip = () => { over.style.clipPath = `inset(0 ${100 - swipe.value}% 0 0)`; };
    swipe.addEventListener("input", clip);
    clip();
    const toggle = el("button", "comfy-nb-grid-toggle", "toggle A/B");
    toggle.addEventListener("click", () => {
      swipe.value = swipe.value === "100" ? "0" : "100";
      clip();
    });
    box.append(stage, swipe, toggle,
      el("div", "comfy-nb-grid-caption", `A: ${a.caption} | B: ${b.caption}`),
      el("button", "comfy-nb-grid-close", "close"));
    showOverlay(box);
  }

  function mark(cell) {
    if (view.a === cell.index) view.a = -1;
    else if (view.b === cell.index) view.b = -1;
    else if (view.a < 0) view.a = cell.index;
    else view.b = cell.index;
    draw();
    if (view.a >= 0 && view.b >= 0) compare();
  }

  function cellNode(cell) {
    const td = el("td", `comfy-nb-grid-cell comfy-nb-${cell.status}`);
    td.dataset.index = String(cell.index);
    if (cell.index < 0) {
      td.append(el("i", "comfy-nb-grid-missing", "not in this sweep"));
      return td;
    }
    const frame = el("div", "comfy-nb-grid-frame");
    frame.style.width = frame.style.height = `${model.get("size")}px`;
    if (cell.thumb) {
      const img = el("img", "comfy-nb-grid-img");
      img.src = cell.thumb;
      img.alt = cell.caption;
      img.draggable = false;
      frame.append(img);
      let start = null;
      let moved = false;
      frame.addEventListener("pointerdown", (event) => {
        start = { x: event.clientX, y: event.clientY, tx: view.tx, ty: view.ty };
        moved = false;
        frame.setPointerCapture?.(event.pointerId);
      });
      frame.addEventListener("pointermove", (event) => {
        if (!start || view.scale === 1) return;
        const dx = event.clientX - start.x;
        const dy = event.clientY - start.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
        view.tx = start.tx + dx;
        view.ty = start.ty + dy;
        applyZoom();
      });
      frame.addEventListener("pointerup", () => {
        if (start && !moved) enlarge(cell);
        start = null;
      });
      frame.addEventListener("wheel", (event) => {
        event.preventDefault();
        setZoom(view.scale * (event.deltaY < 0 ? 1.25 : 0.8));
      }, { passive: false });
    } else if (cell.status === "failed") {
      const error = el("div", "comfy-nb-grid-error", `failed: ${cell.error}`);
      error.title = cell.error;
      frame.append(error);
    } else {
      frame.append(el("i", "comfy-nb-grid-status", cell.status));
    }
    td.append(frame, el("div", "comfy-nb-grid-caption", cell.caption));
    if (cell.server) td.append(el("div", "comfy-nb-grid-server", `on ${cell.server}`));
    const actions = el("div", "comfy-nb-grid-actions");
    const pick = el("button", "comfy-nb-grid-pick", "Pick");
    pick.title = `put these values back: ${cell.set_line}`;
    pick.addEventListener("click", () => {
      message.textContent = `picking ${cell.caption}…`;
      model.send({ type: "pick", index: cell.index });
    });
    const ab = el("button", "comfy-nb-grid-ab",
      view.a === cell.index ? "A" : view.b === cell.index ? "B" : "A/B");
    ab.title = "mark two cells to compare them (swipe or toggle)";
    if (view.a === cell.index || view.b === cell.index) ab.classList.add("comfy-nb-marked");
    ab.disabled = !cell.thumb;
    ab.addEventListener("click", () => mark(cell));
    actions.append(pick, ab);
    td.append(actions);
    return td;
  }

  function draw() {
    const axes = model.get("axes") || {};
    summary.textContent = model.get("summary") || "";
    message.textContent = model.get("message") || "";
    tabs.replaceChildren();
    if (axes.z) {
      axes.z.labels.forEach((label, index) => {
        const tab = el("button", "comfy-nb-grid-tab", label);
        if (index === view.page) tab.classList.add("comfy-nb-active");
        tab.addEventListener("click", () => { view.page = index; draw(); });
        tabs.append(tab);
      });
    }
    const grid = el("table", "comfy-nb-grid-table");
    const head = el("tr");
    if (axes.y) head.append(el("th", "comfy-nb-grid-corner", `${axes.y.name} \\ ${axes.x.name}`));
    for (const label of (axes.x ? axes.x.labels : [])) head.append(el("th", "comfy-nb-grid-x", label));
    grid.append(head);
    const rows = new Map();
    for (const cell of cellsOfPage()) {
      if (!rows.has(cell.key[1])) rows.set(cell.key[1], []);
      rows.get(cell.key[1]).push(cell);
    }
    for (const [row, cells] of [...rows.entries()].sort((p, q) => p[0] - q[0])) {
      const tr = el("tr");
      if (axes.y) tr.append(el("th", "comfy-nb-grid-y", axes.y.labels[row]));
      for (const cell of cells.sort((p, q) => p.key[2] - q.key[2])) tr.append(cellNode(cell));
      grid.append(tr);
    }
    table.replaceChildren(grid);
    applyZoom();
  }

  model.on("msg:custom", (content) => {
    if (content && content.type === "large" && content.src) {
      const img = overlay.querySelector(`img.comfy-nb-grid-large-img[data-index="${content.index}"]`);
      if (img) img.src = content.src;
    }
  });
  model.on("change:cells", draw);
  model.on("change:axes", draw);
  model.on("change:summary", () => { summary.textContent = model.get("summary") || ""; });
  model.on("change:message", () => { message.textContent = model.get("message") || ""; });
  draw();
}

export default { render };
