// Live preview: while the owner types a subject or intro, reload that step's preview with the text
// (not saved until "Save the text"). No build step, no dependencies.
document.querySelectorAll("form[data-preview]").forEach(function (form) {
  var frame = document.getElementById(form.dataset.preview);
  if (!frame) return;
  var base = frame.getAttribute("src");
  var timer = null;
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var params = new URLSearchParams();
      params.set("subject", form.elements.subject.value);
      params.set("intro", form.elements.intro.value);
      frame.setAttribute("src", base + (base.indexOf("?") < 0 ? "?" : "&") + params.toString());
    }, 400);
  });
});
