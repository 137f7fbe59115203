// Live preview: while the owner types any field of a step's copy, reload that step's preview with
// what is typed (not saved until "Save the text"). No build step, no dependencies.
var COPY_FIELDS = ["subject", "preheader", "heading", "intro", "reason", "button", "products"];
document.querySelectorAll("form[data-preview]").forEach(function (form) {
  var frame = document.getElementById(form.dataset.preview);
  if (!frame) return;
  var base = frame.getAttribute("src");
  var timer = null;
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var params = new URLSearchParams();
      COPY_FIELDS.forEach(function (name) {
        if (form.elements[name]) params.set(name, form.elements[name].value);
      });
      frame.setAttribute("src", base + (base.indexOf("?") < 0 ? "?" : "&") + params.toString());
    }, 400);
  });
});
