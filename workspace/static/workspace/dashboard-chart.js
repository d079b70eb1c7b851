/* Draws the dashboard's revenue charts with Chart.js (vendored next to this file). Each <canvas data-chart="ID">
   reads its figures from the <script type="application/json" id="ID"> that Django's json_script wrote; no inline
   script, so the strict Content-Security-Policy holds. */
(function () {
  "use strict";
  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || typeof Chart === "undefined") { return; }
    var figures = JSON.parse(source.textContent);
    var number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
    new Chart(canvas, {
      type: "line",
      data: {
        labels: figures.labels,
        datasets: figures.datasets.map(function (d) {
          return {
            label: d.label,
            data: d.data.map(Number),
            borderColor: d.colour,
            backgroundColor: d.colour,
            borderWidth: 2,
            pointRadius: 0,
            tension: 0
          };
        })
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (ctx) { return ctx.dataset.label + ": " + number.format(ctx.parsed.y) + " " + figures.unit; }
            }
          }
        },
        scales: {
          x: { ticks: { maxTicksLimit: 8 } },
          y: { beginAtZero: true, title: { display: true, text: figures.unit } }
        }
      }
    });
    canvas.setAttribute("data-drawn", "true");
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
