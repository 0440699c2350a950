// The live loss chart: a Vega-Lite line over the metric events, redrawn at most a few times a second.

const REDRAW_MS = 400;

export function lossChart(box) {
  const points = [];
  let timer = null, view = null, drawing = Promise.resolve();

  function schedule() {
    // one draw at a time: a new embed waits until the previous one has finished
    if (!timer) timer = setTimeout(() => { timer = null; drawing = drawing.then(draw, draw); }, REDRAW_MS);
  }

  async function draw() {
    if (!window.vegaEmbed) { schedule(); return; }  // the bundle is still loading
    const spec = {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      // a measured width: vega-embed's inline-block wrapper gives "container" nothing to fill
      width: Math.max(240, box.clientWidth - 24), height: 220, autosize: { type: "fit", contains: "padding" },
      data: { values: points },
      mark: { type: "line", point: points.length < 60, tooltip: true },
      encoding: {
        x: { field: "step", type: "quantitative", title: "step" },
        y: { field: "loss", type: "quantitative", title: "loss", scale: { zero: false } },
        color: { field: "split", type: "nominal", title: null },
      },
    };
    if (view) view.finalize();
    box.replaceChildren();
    view = await window.vegaEmbed(box, spec, { renderer: "svg", actions: false });
    box.dataset.points = String(points.length);
  }

  return {
    add(metric) {
      // training steps log `loss`; evaluations log `eval_loss`
      for (const [key, split] of [["loss", "train"], ["eval_loss", "eval"]]) {
        if (typeof metric[key] === "number") points.push({ step: metric.step ?? points.length, loss: metric[key], split });
      }
      schedule();
    },
    points,
  };
}
