"""Figures for every result type, the offline HTML report and attention views.

- :mod:`~idiomlens.viz.heads`, :mod:`~idiomlens.viz.dla`, :mod:`~idiomlens.viz.ablation`,
  :mod:`~idiomlens.viz.patching`, :mod:`~idiomlens.viz.awareness`: plotly figures behind each result's ``.plot()``;
- :mod:`~idiomlens.viz.report`: the self-contained HTML report (``idiomlens demo``);
- :mod:`~idiomlens.viz.attention`: circuitsvis attention views of chosen heads on one
  example, offline (``idiomlens.attention_view``).
"""
