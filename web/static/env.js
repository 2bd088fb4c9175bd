// The environment editor: warn before leaving with unsaved changes.
// Everything works without this file; it only adds the warning.
(function () {
  "use strict";
  var dirty = false;
  // The review page carries a draft that is not saved yet.
  if (document.querySelector("form[data-env-unsaved]")) {
    dirty = true;
  }
  var editor = document.querySelector("form[data-env-editor]");
  if (editor) {
    // Back from an error or a view switch: what is in the form is not saved either.
    if (editor.getAttribute("data-env-dirty") === "1") {
      dirty = true;
    }
    editor.addEventListener("input", function () { dirty = true; });
    editor.addEventListener("change", function () { dirty = true; });
  }
  // Any submit of these forms carries the draft on; no warning for that.
  document.querySelectorAll("form[data-env-editor], form[data-env-unsaved]").forEach(function (form) {
    form.addEventListener("submit", function () { dirty = false; });
  });
  // A masked secret is replaced, not appended to: select it all on focus.
  document.querySelectorAll("textarea.masked").forEach(function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });
  window.addEventListener("beforeunload", function (event) {
    if (!dirty) { return; }
    event.preventDefault();
    // Older browsers want a value; the text itself is not shown any more.
    event.returnValue = "";
  });
})();
