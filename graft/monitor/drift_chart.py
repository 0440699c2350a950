"""The drift chart: a Vega-Lite v5 spec (pure data, no rendering) of the two prompt samples.

Left: both embedding clouds projected on their first two principal components; right: the
distributions of prompt lengths. Rendering is graft.bench.report's (vl-convert, offline).
"""

from __future__ import annotations

import numpy as np

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
GROUPS = ("train", "served")
COLOURS = ("#4c78a8", "#e45756")
TOOLTIP_CHARS = 80


def pca_2d(points: np.ndarray) -> np.ndarray:
    """[n, 2]: the points on their first two principal components (fewer when there are fewer dims)."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = np.zeros((len(points), 2))
    proj = centred @ vt[:2].T
    out[:, :proj.shape[1]] = proj
    return out


def drift_spec(train_emb: np.ndarray, served_emb: np.ndarray, train_texts: list[str], served_texts: list[str],
               train_lengths: np.ndarray, served_lengths: np.ndarray, title: str) -> dict:
    xy = pca_2d(np.concatenate([train_emb, served_emb]))
    groups = [GROUPS[0]] * len(train_emb) + [GROUPS[1]] * len(served_emb)
    texts = list(train_texts) + list(served_texts)
    lengths = np.concatenate([train_lengths, served_lengths])
    points = [{"group": g, "pc1": round(float(a), 4), "pc2": round(float(b), 4), "tokens": int(n),
               "prompt": t if len(t) <= TOOLTIP_CHARS else t[:TOOLTIP_CHARS - 1] + "…"}
              for g, (a, b), n, t in zip(groups, xy, lengths, texts)]
    colour = {"field": "group", "type": "nominal", "title": "Prompts",
              "scale": {"domain": list(GROUPS), "range": list(COLOURS)}}
    scatter = {"title": "MiniLM embeddings, first two principal components", "width": 380, "height": 320,
               "mark": {"type": "point", "filled": True, "opacity": 0.55, "tooltip": True},
               "encoding": {"x": {"field": "pc1", "type": "quantitative", "title": "PC 1"},
                            "y": {"field": "pc2", "type": "quantitative", "title": "PC 2"},
                            "color": colour,
                            "tooltip": [{"field": "group"}, {"field": "tokens"}, {"field": "prompt"}]}}
    # shares of each group, not counts: the two samples differ in size
    lengths_chart = {"title": "Prompt length (tokens)", "width": 380, "height": 320,
                     "transform": [{"joinaggregate": [{"op": "count", "as": "group_size"}], "groupby": ["group"]},
                                   {"bin": {"maxbins": 30}, "field": "tokens", "as": ["bin_start", "bin_end"]},
                                   {"aggregate": [{"op": "count", "as": "n"}],
                                    "groupby": ["group", "bin_start", "bin_end", "group_size"]},
                                   {"calculate": "datum.n / datum.group_size", "as": "share"}],
                     "mark": {"type": "bar", "opacity": 0.5, "tooltip": True},
                     "encoding": {"x": {"field": "bin_start", "type": "quantitative", "bin": {"binned": True},
                                        "title": "Tokens"},
                                  "x2": {"field": "bin_end"},
                                  "y": {"field": "share", "type": "quantitative", "stack": None,
                                        "title": "Share of prompts", "axis": {"format": "%"}},
                                  "color": colour}}
    return {"$schema": SCHEMA, "title": title, "data": {"values": points},
            "hconcat": [scatter, lengths_chart], "resolve": {"scale": {"color": "shared"}}}
