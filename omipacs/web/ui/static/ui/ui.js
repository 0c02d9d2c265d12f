// The dashboard's only script: CSRF header for htmx, charts drawn with Vega-Lite from the
// numbers the page carries, and their PNG/SVG downloads. The numbers are also in a table
// next to each chart (what a screen reader reads), and as CSV from the server.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  function chartSpec(data) {
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      description: data.title + ": " + data.unit + " per " + data.category,
      width: "container",
      height: Math.max(120, 26 * data.rows.length),
      data: { values: data.rows },
      mark: { type: "bar", tooltip: true },
      encoding: {
        y: { field: "label", type: "nominal", sort: null, title: data.category },
        x: { field: "count", type: "quantitative", title: data.unit,
             axis: { format: "~s", tickMinStep: 1 } },
        color: { value: "#2a5d9f" }
      },
      config: { view: { stroke: null }, axis: { labelLimit: 220 } }
    };
  }

  function download(name, url) {
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  function drawChart(holder) {
    if (holder.dataset.drawn || !window.vega || !window.vegaLite) { return; }
    var source = holder.querySelector("script.chart-data");
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var target = holder.querySelector(".chart");
    holder.dataset.drawn = "1";
    if (!data.rows.length) {
      target.textContent = "No data.";
      return;
    }
    var compiled = vegaLite.compile(chartSpec(data)).spec;
    // The expression interpreter: no eval, so the page's Content-Security-Policy holds.
    var view = new vega.View(vega.parse(compiled, null, { ast: true }), {
      expr: vega.expressionInterpreter,
      renderer: "svg",
      container: target,
      hover: true
    });
    view.runAsync().then(function () {
      var svg = target.querySelector("svg");
      if (svg) {
        svg.setAttribute("role", "img");
        svg.setAttribute("aria-label", data.title + " (the table below has the numbers)");
      }
      holder.dataset.ready = "1";
    });
    holder.querySelectorAll("button[data-format]").forEach(function (button) {
      button.addEventListener("click", function () {
        var format = button.dataset.format;
        view.toImageURL(format, format === "png" ? 2 : 1).then(function (url) {
          download(data.name + "." + format, url);
        });
      });
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll(".chart-card").forEach(drawChart);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  // An outerHTML swap replaces the element the event names: look at the whole page.
  document.addEventListener("htmx:afterSettle", function () { drawAll(document); });
})();
