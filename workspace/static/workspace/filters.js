// Show the date fields that the chosen period uses: "Containing" for day/week/month, "From"/"To" for custom.
(function () {
  "use strict";
  var select = document.getElementById("ws-period");
  if (!select) return;
  function update() {
    var kind = select.value;
    document.querySelectorAll(".ws-on").forEach(function (el) {
      el.style.display = ["day", "week", "month"].indexOf(kind) >= 0 ? "" : "none";
    });
    document.querySelectorAll(".ws-custom").forEach(function (el) {
      el.style.display = kind === "custom" ? "" : "none";
    });
  }
  select.addEventListener("change", update);
  update();
})();
