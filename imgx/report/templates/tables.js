(function () {
  "use strict";
  function key(row, i) { var c = row.cells[i]; return c ? (c.getAttribute("data-v") || "") : ""; }
  function num(s) { return s !== "" && isFinite(s) ? parseFloat(s) : NaN; }
  function sortBy(table, i, th) {
    var body = table.tBodies[0]; if (!body) return;
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i), y = key(b, i);
      if (x === "" && y !== "") return 1;   // empty cells last in both directions
      if (y === "" && x !== "") return -1;
      var nx = num(x), ny = num(y), c;
      if (!isNaN(nx) && !isNaN(ny)) c = nx - ny; else c = x.localeCompare(y, undefined, {numeric: true});
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function filter(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var q = input.value.toLowerCase().trim(), shown = 0, rows = table.tBodies[0] ? table.tBodies[0].rows : [];
    Array.prototype.forEach.call(rows, function (r) {
      var hit = !q || r.textContent.toLowerCase().indexOf(q) >= 0;
      r.classList.toggle("hidden", !hit); if (hit) shown++;
    });
    var counter = document.getElementById(input.getAttribute("data-table") + "-count");
    if (counter) counter.textContent = shown + " of " + rows.length + " rows";
  }
  document.querySelectorAll("table.data").forEach(function (table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.title = "click to sort";
      th.addEventListener("click", function () { sortBy(table, i, th); });
    });
  });
  // CSV downloads are built from the table's exact values (data-v) on click: nothing is embedded twice.
  function csvCell(s) { return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  document.querySelectorAll("a[data-csv]").forEach(function (a) {
    a.addEventListener("click", function () {
      var table = document.getElementById(a.getAttribute("data-csv")), lines = [];
      lines.push(Array.prototype.map.call(table.tHead.rows[0].cells, function (c) {
        return csvCell(c.textContent); }).join(","));
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        lines.push(Array.prototype.map.call(r.cells, function (c) {
          return csvCell(c.getAttribute("data-v") || ""); }).join(","));
      });
      a.href = "data:text/csv;charset=utf-8," + encodeURIComponent(lines.join("\n") + "\n");
    });
  });
  document.querySelectorAll("input.tablefilter").forEach(function (input) {
    input.addEventListener("input", function () { filter(input); });
  });
})();
