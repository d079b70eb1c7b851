"use strict";
// Sage X3 connection: show only the fieldsets of the chosen method (fieldsets carry x3-method-<method> classes).
// Without JavaScript every fieldset stays visible and X3Connection.clean() still requires the right fields.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".inline-related").forEach(function (group) {
    const select = group.querySelector('select[name$="-method"]');
    const fieldsets = group.querySelectorAll("fieldset.x3-method");
    if (!select || fieldsets.length === 0) {
      return;
    }
    const update = function () {
      fieldsets.forEach(function (fieldset) {
        fieldset.hidden = !fieldset.classList.contains("x3-method-" + select.value);
      });
    };
    select.addEventListener("change", update);
    update();
  });
});
