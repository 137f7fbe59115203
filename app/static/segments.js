// Segment editor: while the owner edits the rule, ask the server how many customers it holds now
// and show a sample of them (nothing is saved). One question at a time: edits made while one is
// being answered are asked about when it returns. No build step, no dependencies.
(function () {
  var form = document.getElementById("segment-form");
  if (!form) return;
  var count = document.getElementById("segment-count");
  var sample = document.getElementById("segment-sample");
  var problem = document.getElementById("segment-problem");
  var timer = null, busy = false, again = false;
  function show(doc) {
    count.textContent = doc.count === null ? "–" : doc.count;
    problem.textContent = doc.error || "";
    sample.textContent = "";
    doc.sample.forEach(function (c) {
      var li = document.createElement("li");
      li.textContent = c.customer + (c.first_name ? " (" + c.first_name + ")" : "") + " · " + c.clv +
        " · " + c.orders + " · " + (c.days_since_last === null ? "–" : c.days_since_last);
      sample.appendChild(li);
    });
  }
  function update() {
    if (busy) { again = true; return; }
    busy = true;
    again = false;
    fetch(form.dataset.count, {method: "POST", body: new FormData(form), credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (doc) { if (!again) show(doc); })
      .catch(function () {})
      .then(function () { busy = false; if (again) update(); });
  }
  function soon() { clearTimeout(timer); timer = setTimeout(update, 300); }
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  update();
})();
