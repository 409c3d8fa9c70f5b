// hookd's UI script: small conveniences on top of plain links and forms. Every page
// works without it. No inline script anywhere (the Content-Security-Policy forbids it).
"use strict";
document.addEventListener("click", function (event) {
  var el = event.target.closest("[data-copy], [data-back]");
  if (!el) return;
  if (el.hasAttribute("data-back")) {
    if (history.length > 1) { event.preventDefault(); history.back(); }
    return;
  }
  // data-copy: the text of the element it names.
  event.preventDefault();
  var source = document.querySelector(el.getAttribute("data-copy"));
  if (!source) return;
  var text = source.value !== undefined ? source.value : source.textContent;
  var done = function () {
    var label = el.textContent;
    el.textContent = "Copied";
    setTimeout(function () { el.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () {});
  } else if (source.select) {
    source.select();
    document.execCommand("copy");
    done();
  }
});
