// arrears dashboard: draws every chart of the page from its JSON data block with Chart.js,
// then marks the chart's container with data-drawn="true". No inline script anywhere: the
// pages' Content-Security-Policy is default-src 'self'.
(function () {
  "use strict";

  var COLOURS = ["#1f4e79", "#d9822b", "#3a7d44", "#a4262c", "#6b4c9a", "#2b8a99", "#8c6d1f", "#c2185b"];

  function percent(value) {
    return (value * 100).toFixed(value < 0.1 ? 1 : 0) + "%";
  }

  // Whether every value of the series on `axis` is a whole number (counts): no 0.5 ticks.
  function whole(spec, axis) {
    return spec.series.every(function (series) {
      return series.axis !== axis || series.data.every(function (value) {
        return value === null || Math.round(value) === value;
      });
    });
  }

  function config(spec) {
    var percentAxis = spec.percent;
    var hasRight = spec.y2_title !== "";
    var datasets = spec.series.map(function (series, index) {
      var colour = COLOURS[index % COLOURS.length];
      return {
        type: series.kind,
        label: series.label,
        data: series.data,
        yAxisID: spec.horizontal ? undefined : series.axis,
        xAxisID: spec.horizontal ? "x" : undefined,
        backgroundColor: series.kind === "line" ? colour : colour + "cc",
        borderColor: colour,
        borderWidth: series.kind === "line" ? 2 : 0,
        pointRadius: series.kind === "line" ? 2 : 0,
        spanGaps: true,
        order: series.kind === "line" ? 0 : 1
      };
    });
    var valueAxis = {
      beginAtZero: true,
      title: { display: spec.y_title !== "", text: spec.y_title },
      ticks: percentAxis
        ? { callback: function (value) { return percent(value); } }
        : (whole(spec, "y") ? { precision: 0 } : {})
    };
    var scales = {};
    if (spec.horizontal) {
      scales.x = valueAxis;
      scales.y = { ticks: { autoSkip: false } };
    } else {
      scales.x = { ticks: { maxRotation: 60, autoSkip: true } };
      scales.y = valueAxis;
      if (hasRight) {
        scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
          title: { display: true, text: spec.y2_title }, ticks: whole(spec, "y2") ? { precision: 0 } : {} };
      }
    }
    return {
      type: spec.kind,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (item) {
                var value = item.parsed[spec.horizontal ? "x" : "y"];
                var shown = percentAxis && item.dataset.yAxisID !== "y2" ? percent(value) : value.toLocaleString();
                return item.dataset.label + ": " + shown;
              }
            }
          }
        },
        scales: scales
      }
    };
  }

  function draw(container) {
    var source = document.getElementById(container.getAttribute("data-chart"));
    var canvas = container.querySelector("canvas");
    if (!source || !canvas) {
      console.error("chart " + container.id + ": no data block or canvas");
      return;
    }
    var spec = JSON.parse(source.textContent);
    new window.Chart(canvas, config(spec));
    container.setAttribute("data-drawn", "true");
  }

  function drawAll() {
    if (!window.Chart) {
      console.error("Chart.js did not load");
      return;
    }
    var containers = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < containers.length; i++) {
      draw(containers[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
